"""Argument checks that the Python-level kernels share (the Cython kernels make the
same checks, with the same messages, in C)."""
from __future__ import annotations

import numpy as np

from .codes import N_ACTIVATIONS


def check_predict_rows(X, Ws, bs, acts, alphas, Zs, As, out):
    """``predict_rows``' argument checks, with the Cython kernel's messages; returns
    the workspace rows."""
    L = len(Ws)
    if not (L == len(bs) == len(acts) == len(alphas) == len(Zs) == len(As)) or L == 0:
        raise ValueError("predict_rows: Ws, bs, acts, alphas, Zs and As need one entry per layer")
    if not isinstance(X, np.ndarray):
        raise TypeError(f"predict_rows: X must be a numpy array, got {type(X).__name__}")
    dtype = X.dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"predict_rows: X must be float32 or float64, got {dtype}")

    def array(name, a, ndim, writable=False):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"predict_rows: {name} must be a numpy array, got {type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"predict_rows: {name} has dtype {a.dtype}, expected {dtype}")
        if a.ndim != ndim:
            raise ValueError(f"predict_rows: {name} must be {ndim}-D, got shape {a.shape}")
        if not (a.flags.c_contiguous and a.flags.aligned):
            raise ValueError(f"predict_rows: {name} must be C-contiguous and aligned")
        if writable and not a.flags.writeable:
            raise ValueError(f"predict_rows: {name} is read-only")
        return a

    array("X", X, 2)
    width, rows = X.shape[1], -1
    for l in range(L):
        W = array(f"Ws[{l}]", Ws[l], 2)
        if W.shape[0] != width:
            raise ValueError(f"predict_rows: Ws[{l}] has shape {W.shape}, expected {width} rows")
        width = W.shape[1]
        b = array(f"bs[{l}]", bs[l], 1)
        if b.shape[0] not in (0, width):
            raise ValueError(f"predict_rows: bs[{l}] has shape {b.shape}, expected ({width},) or (0,)")
        if not 0 <= int(acts[l]) < N_ACTIVATIONS:
            raise ValueError(f"predict_rows: acts[{l}] = {int(acts[l])} is not an activation code")
        for name, arrays in (("Zs", Zs), ("As", As)):
            a = array(f"{name}[{l}]", arrays[l], 2, writable=True)
            if a.shape[1] != width or a.shape[0] < 1 or (rows >= 0 and a.shape[0] != rows):
                raise ValueError(f"predict_rows: {name}[{l}] has shape {a.shape}, "
                                 f"expected (rows, {width}) with the same rows in every layer")
            rows = a.shape[0]
    array("out", out, 2, writable=True)
    if out.shape != (X.shape[0], width):
        raise ValueError(f"predict_rows: out has shape {out.shape}, expected {(X.shape[0], width)}")
    return rows

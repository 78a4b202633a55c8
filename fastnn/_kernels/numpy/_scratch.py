"""Reusable temporary buffers for the NumPy kernels.

Elementwise kernels that need a temporary take it from here: one buffer per
(row shape, dtype, slot) and per thread, so the training loop's steady state
allocates nothing and two models trained or used in two threads never share
a buffer.  The row count is not part of the key: a buffer serves any number
of rows up to its own as a leading view, and grows when more are asked for,
so predicting or fitting on many different row counts keeps one buffer per
row shape, not one per count.  At most ``MAX_BUFFERS`` row shapes are kept per
thread; the least recently used one is dropped first.
"""
from __future__ import annotations

import threading

import numpy as np

MAX_BUFFERS = 64

_local = threading.local()


def _buffers() -> dict:
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    return buffers


def _buffer(key, shape, dtype) -> np.ndarray:
    """A ``shape`` view of this thread's buffer for ``key`` (most recently used last)."""
    buffers = _buffers()
    buf = buffers.pop(key, None)
    rows = shape[0] if shape else 1
    if buf is None or buf.shape[0] < rows:
        buf = None  # let the smaller one go before allocating its successor
        if len(buffers) >= MAX_BUFFERS:
            del buffers[next(iter(buffers))]
        buf = np.empty((rows,) + shape[1:], dtype)
    buffers[key] = buf
    if not shape:
        return buf[0, ...]
    return buf if buf.shape[0] == rows else buf[:rows]


def scratch(like: np.ndarray, slot: int = 0) -> np.ndarray:
    """A reusable buffer with the shape and dtype of ``like`` (contents undefined)."""
    return _buffer((like.ndim, like.shape[1:], like.dtype.str, slot), like.shape, like.dtype)


def positive_mask(Z):
    """``Z > 0`` into a reusable boolean buffer."""
    mask = _buffer((Z.ndim, Z.shape[1:], "mask"), Z.shape, np.bool_)
    return np.greater(Z, 0, out=mask)

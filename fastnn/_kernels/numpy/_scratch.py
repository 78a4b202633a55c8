"""Reusable temporary buffers for the NumPy kernels.

Elementwise kernels that need a temporary take it from here: one buffer per
(shape, dtype, slot) and per thread, so the training loop's steady state
allocates nothing and two models trained or used in two threads never share
a buffer.
"""
from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def _buffers() -> dict:
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    return buffers


def scratch(like: np.ndarray, slot: int = 0) -> np.ndarray:
    """A reusable buffer with the shape and dtype of ``like`` (contents undefined)."""
    buffers = _buffers()
    key = (like.shape, like.dtype.str, slot)
    buf = buffers.get(key)
    if buf is None:
        buf = buffers[key] = np.empty_like(like)
    return buf


def positive_mask(Z):
    """``Z > 0`` into a reusable boolean buffer."""
    buffers = _buffers()
    mask = buffers.get((Z.shape, "mask"))
    if mask is None:
        mask = buffers[(Z.shape, "mask")] = np.empty(Z.shape, np.bool_)
    return np.greater(Z, 0, out=mask)

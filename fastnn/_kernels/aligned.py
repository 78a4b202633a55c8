"""Arrays whose data start on a 64-byte boundary: a cache line, and an AVX-512 vector.

The model owns the memory the kernels read and write (``fastnn._kernels``), so it
allocates its parameters, their gradients and optimizer slots, and its layers'
workspaces here.  NumPy aligns a large array to 16 bytes only; the compiled
kernels load and store whole vectors of a row at a time, and a vector that
straddles two cache lines costs two accesses: the sparse first layer's row
kernels ran 1.7-2 times slower on rows 16 bytes off a line (``docs/performance.md``,
"Aligned parameters and workspaces").  The arrays are ordinary C-contiguous
NumPy arrays (views of a slightly larger byte buffer).
"""
from __future__ import annotations

import math

import numpy as np

ALIGNMENT = 64


def empty(shape, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array of ``shape`` and ``dtype`` at a 64-byte boundary."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def zeros(shape, dtype) -> np.ndarray:
    """As ``empty``, filled with zeros."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def full(shape, value, dtype) -> np.ndarray:
    """As ``empty``, filled with ``value``."""
    out = empty(shape, dtype)
    out.fill(value)
    return out


def copy(a) -> np.ndarray:
    """A C-contiguous copy of array ``a`` (same shape and dtype) at a 64-byte boundary."""
    a = np.asarray(a)
    out = empty(a.shape, a.dtype)
    out[...] = a
    return out

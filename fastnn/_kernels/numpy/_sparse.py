"""The first layer on sparse (CSR) input (NumPy/SciPy reference).

The batch's rows are cut out of the CSR arrays with NumPy and multiplied with
SciPy's sparse products; this allocates per batch (the batch's stored values
and the products), unlike the other NumPy kernels.
"""
from __future__ import annotations

import numpy as np

from ._activations import activation_forward


def _batch(indptr, indices, data, rows, n_in):
    """Rows ``rows`` of the CSR matrix as a SciPy CSR matrix ``(m, n_in)``."""
    import scipy.sparse as sp

    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    offsets = np.zeros(rows.shape[0] + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    # position of each of the batch's stored values in indices/data, row after row
    pos = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
    return sp.csr_matrix((data[pos], indices[pos], offsets), shape=(rows.shape[0], n_in))


def sparse_dense_forward(indptr, indices, data, rows, W, b, act, alpha, Z_out, A_out):
    Z_out[...] = _batch(indptr, indices, data, rows, W.shape[0]) @ W
    if b is not None:
        Z_out += b
    activation_forward(act, alpha, Z_out, A_out)


def sparse_dense_backward(indptr, indices, data, rows, dZ, l2, W, dW_out, db_out):
    dW_out[...] = _batch(indptr, indices, data, rows, W.shape[0]).T @ dZ
    if l2:
        dW_out += l2 * W
    if db_out is not None:
        np.sum(dZ, axis=0, out=db_out)

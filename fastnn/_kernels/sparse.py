"""Sparse input: scipy.sparse matrices in the layout the sparse kernels read.

``fit``, ``predict`` and ``evaluate`` accept any ``scipy.sparse`` matrix or
array (CSR, CSC, COO, ...).  It is converted once to a canonical CSR matrix of
the model's dtype (duplicates summed, indices sorted) and checked like dense
input (shape, finite stored values, values that fit the dtype).  Batches are
rows of it, never a dense copy: the first layer reads them through the
backend's ``sparse_dense_forward`` / ``sparse_dense_backward`` kernels, which
take the CSR arrays and the batch's row numbers (see ``fastnn._kernels``).
"""
from __future__ import annotations

import numpy as np

INDEX_LIMIT = 2 ** 31 - 1  # column indices are int32 in the kernels


class SparseInput:
    """A canonical CSR matrix ``(n, n_features)``: ``indptr (n + 1,)`` int64,
    ``indices (nnz,)`` int32 (sorted within each row), ``data (nnz,)`` of the
    model's dtype.  ``X[a:b]`` is a row slice (a new ``SparseInput``)."""

    def __init__(self, matrix):
        self.matrix = matrix  # scipy CSR, kept for slicing
        self.indptr = np.ascontiguousarray(matrix.indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(matrix.indices, dtype=np.int32)
        self.data = np.ascontiguousarray(matrix.data)
        self.shape = matrix.shape
        self.dtype = self.data.dtype

    @classmethod
    def from_dense(cls, X, convert=None, block_values=2 ** 22) -> "SparseInput":
        """The canonical CSR of a dense, finite ``X (n, n_features)`` (its dtype kept).

        ``convert``: a backend's ``csr_from_dense`` (see ``fastnn._kernels``), used for a
        C-contiguous float ``X``; otherwise NumPy builds it a block of about
        ``block_values`` values at a time, with no temporary as large as ``X``."""
        import scipy.sparse as sp

        n, d = X.shape
        if convert is not None and X.flags.c_contiguous and X.dtype in (np.float32, np.float64):
            indptr, indices, data = convert(X)
        else:
            indptr, indices, data = _csr_blocks(X, block_values)
        if indptr[-1] <= INDEX_LIMIT:  # int32 throughout: SciPy would widen the indices to int64
            indptr = indptr.astype(np.int32)
        return cls(sp.csr_matrix((data, indices, indptr), shape=(n, d)))

    @property
    def ndim(self):
        return 2

    @property
    def nnz(self):
        return int(self.indptr[-1])

    @property
    def density(self):
        return self.nnz / max(self.shape[0] * self.shape[1], 1)

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError("SparseInput: only row slices X[a:b] are supported")
        return SparseInput(self.matrix[rows])

    def batch(self, rows) -> "SparseBatch":
        """The rows ``rows`` (int64 row numbers) as a batch for the kernels."""
        return SparseBatch(self, rows)

    def __repr__(self):
        return f"SparseInput(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype})"


class SparseBatch:
    """Rows ``rows (m,)`` of a ``SparseInput``, as the first layer's input: no copy."""

    __slots__ = ("indptr", "indices", "data", "rows", "shape", "dtype")

    def __init__(self, source: SparseInput, rows):
        self.indptr, self.indices, self.data = source.indptr, source.indices, source.data
        self.rows = rows
        self.shape = (rows.shape[0], source.shape[1])
        self.dtype = source.dtype


def _csr_blocks(X, block_values):
    """``(indptr, indices, data)`` of ``X``'s canonical CSR with NumPy, a block of
    about ``block_values`` values at a time."""
    n, d = X.shape
    block_rows = max(1, block_values // max(d, 1))
    indptr = np.zeros(n + 1, np.int64)
    indices, data = [], []
    columns = np.arange(d, dtype=np.int32)
    for start in range(0, n, block_rows):
        block = X[start:start + block_rows]
        stored = block != 0  # read row by row, ascending columns: canonical order
        indptr[start + 1:start + 1 + block.shape[0]] = np.count_nonzero(stored, axis=1)
        indices.append(np.broadcast_to(columns, block.shape)[stored])
        data.append(block[stored])
    np.cumsum(indptr, out=indptr)
    if not data:  # no rows
        return indptr, np.zeros(0, np.int32), np.zeros(0, X.dtype)
    return indptr, np.concatenate(indices), np.concatenate(data)

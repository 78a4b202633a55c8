"""A first Dense layer that reads a CSR matrix without densifying it (Numba).

``X (N, n_in)`` is given by its CSR arrays: ``indptr (N + 1,)`` int64,
``indices (nnz,)`` int32 and ``data (nnz,)`` of ``W``'s dtype; ``rows (m,)``
int64 are the rows of ``X`` that form the batch (any order, repeats allowed).
The model validates the CSR arrays once, so the kernels trust ``indptr`` and
``indices``; only ``rows`` (O(m)) and the shapes are checked.

The forward adds ``data[k] * W[indices[k]]`` to a row of ``Z_out`` for each
stored value (an axpy over ``n_out``, vectorized), then applies bias and
activation a block of rows at a time with ``_dense``'s epilogue block size and
``_activations``' functions, as ``dense_forward`` does.  The backward sets
``dW_out := l2 W`` (or zero) in one pass and scatter-adds ``data[k] * dZ[i]``
into row ``indices[k]``; the training loop's threads each take a range of rows
of ``dW_out`` (``sparse_weight_grad_rows``), so no two write one row.  Neither kernel uses
``prange``: in training it would alternate with the next layers' multi-threaded
BLAS calls, the pattern that collapses on two cores ("BLAS and OpenMP thread
pools" in ``docs/performance.md``, as in ``_dense``); and a jitted function
that calls ``numba.get_num_threads`` to choose a parallel path cannot be cached.
"""
import numpy as np

from ..codes import SOFTMAX
from ._activations import _act_flat, _softmax_rows
from ._dense import _CHUNK_BYTES, bias_grad
from ._jit import jit


@jit
def _rows_in_range(indptr, rows):
    """Whether every rows[i] is a row of X: 0 <= rows[i] < N."""
    N = indptr.shape[0] - 1
    ok = True
    for i in range(rows.shape[0]):
        r = rows[i]
        ok &= (r >= 0) & (r < N)
    return ok


@jit
def sparse_dense_forward(indptr, indices, data, rows, W, b, act, alpha, Z_out, A_out):
    """Z_out := X[rows] @ W + b; A_out := act(Z_out), X the CSR (indptr, indices, data).

    # IN: indptr, indices, data, rows, W, b  OUT: Z_out, A_out
    """
    m, n_out = Z_out.shape
    if A_out.shape[0] != m or A_out.shape[1] != n_out:
        raise ValueError("sparse_dense_forward: A_out must have the shape of Z_out")
    if rows.shape[0] != m or W.shape[1] != n_out:
        raise ValueError("sparse_dense_forward: expected rows (m,), W (n_in, n_out) and Z_out (m, n_out)")
    if b is not None:
        if b.shape[0] != n_out:
            raise ValueError("sparse_dense_forward: b must have shape (n_out,)")
    if not _rows_in_range(indptr, rows):
        raise IndexError("sparse_dense_forward: rows out of range")
    alpha_ = Z_out.dtype.type(alpha)  # a new name: one type per variable
    zero = Z_out.dtype.type(0.0)
    z = Z_out.reshape(m * n_out)
    a = A_out.reshape(m * n_out)
    # Rows, bias then activation, a chunk of rows at a time while it is in L1.
    block = max(1, _CHUNK_BYTES // max(n_out * Z_out.itemsize, 1))
    for i0 in range(0, m, block):
        i1 = min(m, i0 + block)
        for i in range(i0, i1):
            zi = Z_out[i]
            for j in range(n_out):
                zi[j] = zero
            r = rows[i]
            for k in range(indptr[r], indptr[r + 1]):
                v = data[k]
                wk = W[indices[k]]
                for j in range(n_out):
                    zi[j] += v * wk[j]
            if b is not None:
                for j in range(n_out):
                    zi[j] += b[j]
        if act == SOFTMAX:
            _softmax_rows(Z_out[i0:i1], A_out[i0:i1])
        else:
            _act_flat(act, alpha_, z[i0 * n_out:i1 * n_out], a[i0 * n_out:i1 * n_out])


@jit
def sparse_dense_backward(indptr, indices, data, rows, dZ, l2, W, dW_out, db_out):
    """dW_out := X[rows].T @ dZ + l2 W; db_out := sum(dZ, 0), X the CSR (indptr, indices, data).

    # IN: indptr, indices, data, rows, dZ, W  OUT: dW_out, db_out (or None)
    """
    m, n_out = dZ.shape
    if rows.shape[0] != m or dW_out.shape[1] != n_out:
        raise ValueError("sparse_dense_backward: expected rows (m,), dZ (m, n_out) and dW_out (n_in, n_out)")
    if W.shape[0] != dW_out.shape[0] or W.shape[1] != dW_out.shape[1]:
        raise ValueError("sparse_dense_backward: W and dW_out must have one shape")
    if not _rows_in_range(indptr, rows):
        raise IndexError("sparse_dense_backward: rows out of range")
    sparse_weight_grad_rows(indptr, indices, data, rows, dZ, l2, W, dW_out, 0, W.shape[0])
    if db_out is not None:
        bias_grad(dZ, db_out)


@jit
def sparse_weight_grad_rows(indptr, indices, data, rows, dZ, l2, W, dW_out, r0, r1):
    """Rows r0 .. r1 - 1 of ``dW_out := X[rows].T @ dZ + l2 W`` (the caller checks the
    shapes and ``rows``), the other rows untouched: one thread's share of the weight
    gradient in the training loop's batch split.  Every thread reads all of the batch's
    stored values and adds those of its rows of ``dW_out``, in batch order, so the sums
    do not depend on the thread count."""
    n_out = dW_out.shape[1]
    g = dW_out.reshape(dW_out.size)
    if l2 != 0:
        c = dW_out.dtype.type(l2)
        w = W.reshape(W.size)
        for i in range(r0 * n_out, r1 * n_out):
            g[i] = c * w[i]
    else:
        for i in range(r0 * n_out, r1 * n_out):
            g[i] = 0
    for i in range(dZ.shape[0]):
        dzi = dZ[i]
        r = rows[i]
        for k in range(indptr[r], indptr[r + 1]):
            f = indices[k]
            if f >= r0 and f < r1:
                v = data[k]
                gk = dW_out[f]
                for j in range(n_out):
                    gk[j] += v * dzi[j]


@jit
def _count_rows(X, indptr):
    """indptr[i + 1] := indptr[i] + the non-zeros of row i; returns indptr[n]."""
    n, d = X.shape
    for i in range(n):
        c = 0
        for j in range(d):
            c += X[i, j] != 0
        indptr[i + 1] = indptr[i] + c
    return indptr[n]


@jit
def _place_rows(X, indptr, indices, data):
    """Every non-zero of X in row order, ascending columns, at indptr's places; the first
    row whose count differs from indptr (X changed since it was counted), or -1.  Each
    position is checked, so a changed X cannot write past the arrays."""
    n, d = X.shape
    for i in range(n):
        p = indptr[i]
        end = indptr[i + 1]
        for j in range(d):
            v = X[i, j]
            if v != 0:
                if p >= end:
                    return i
                indices[p] = j
                data[p] = v
                p += 1
        if p != end:
            return i
    return -1


def csr_from_dense(X):
    """``(indptr, indices, data)`` of the canonical CSR of ``X (n, d)``, C-contiguous
    float32 or float64: every value that is not zero (NaN included, -0.0 not) in row
    order and ascending columns; ``indptr`` int64 ``(n + 1,)``, ``indices`` int32,
    ``data`` of X's dtype.  Two compiled passes over X (count, then place)."""
    if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.flags.c_contiguous
            and X.dtype in (np.float32, np.float64)):
        raise TypeError("csr_from_dense: X must be a C-contiguous 2-D float32 or float64 array, "
                        f"got {type(X).__name__} {getattr(X, 'dtype', '')} {getattr(X, 'shape', '')}")
    if X.shape[1] > 2 ** 31 - 1:
        raise ValueError(f"csr_from_dense: X has {X.shape[1]} columns, more than int32 indices hold")
    indptr = np.zeros(X.shape[0] + 1, np.int64)
    nnz = _count_rows(X, indptr)
    indices = np.empty(nnz, np.int32)
    data = np.empty(nnz, X.dtype)
    changed = _place_rows(X, indptr, indices, data)
    if changed >= 0:
        raise ValueError(f"csr_from_dense: row {changed} of X changed while it was converted "
                         "(another thread wrote to X)")
    return indptr, indices, data

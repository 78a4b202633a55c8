"""The Numba backend's first-layer kernels on CSR input, held to the dense computation.

``sparse_dense_forward`` and ``sparse_dense_backward`` must give what
``X.toarray()[rows] @ W + b`` (and its gradients) gives, for sparse and
fairly dense matrices with empty rows, batches with repeated and unordered
rows, with and without bias and l2, and the activations of ``dense_forward``.
"""
import re

import numpy as np
import pytest

numba = pytest.importorskip("numba")
sp = pytest.importorskip("scipy.sparse")

from fastnn import _kernels as K  # noqa: E402
from fastnn._kernels import numba as N  # noqa: E402
from fastnn._kernels import numpy as R  # noqa: E402

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ACTIVATIONS = ("LINEAR", "RELU", "SOFTMAX", "SIGMOID", "TANH", "LEAKY_RELU", "ELU", "GELU")


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def _csr(n, n_in, density, dtype, seed, empty=(), unsorted=False):
    """A random CSR matrix with signed values, the rows ``empty`` and the last two
    columns holding nothing; returns it and its (indptr int64, indices int32, data) arrays."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, n_in, density=density, format="lil", dtype=dtype, random_state=rng,
                  data_rvs=rng.standard_normal)
    for r in empty:
        X[r, :] = 0
    X[:, n_in - 2:] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    indptr, indices, data = X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data.astype(dtype)
    if unsorted:  # reverse each row's entries: the kernels must not rely on sorted indices
        for r in range(n):
            s = slice(indptr[r], indptr[r + 1])
            indices[s], data[s] = indices[s][::-1].copy(), data[s][::-1].copy()
    for r in empty:
        assert indptr[r] == indptr[r + 1]
    return X, (indptr, indices, data)


def _close(actual, expected, dtype):
    """Within the dtype's tolerance, relative to the size of the values."""
    rtol = RTOL[dtype]
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def _batch(n, m, seed, empty):
    """Unordered rows with repeats, including the empty rows."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.integers(0, n, m - 2 * len(empty)), list(empty) * 2]).astype(np.int64)
    rng.shuffle(rows)
    assert len(np.unique(rows)) < len(rows)
    return rows


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize("density", [0.05, 0.5])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_forward_equals_dense(dtype, density, bias):
    n, n_in, n_out, m = 60, 40, 7, 50
    empty = (3, 17, 41)
    X, csr = _csr(n, n_in, density, dtype, seed=1, empty=empty, unsorted=density > 0.1)
    rng = np.random.default_rng(2)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    rows = _batch(n, m, 3, empty)
    Xd = X.toarray()[rows]
    Z_expected = Xd.astype(np.float64) @ W.astype(np.float64)
    if bias:
        Z_expected += b
    for name in ACTIVATIONS:
        act = getattr(K, name)
        alpha = 0.3 if name in ("LEAKY_RELU", "ELU") else 0.0
        Z = np.full((m, n_out), np.nan, dtype)  # Z_out is written before it is read
        A = np.full((m, n_out), np.nan, dtype)
        N.sparse_dense_forward(*csr, rows, W, b, act, alpha, Z, A)
        _close(Z, Z_expected, dtype)
        # The dense computation of the reference backend ...
        Z_ref, A_ref = np.empty_like(Z), np.empty_like(A)
        R.dense_forward(Xd, W, b, act, alpha, Z_ref, A_ref)
        _close(A, A_ref, dtype)
        # ... and exactly the activation dense_forward applies to the same Z (Z @ I = Z).
        A_same = np.empty_like(A)
        N.dense_forward(Z, np.eye(n_out, dtype=dtype), None, act, alpha, np.empty_like(Z), A_same)
        np.testing.assert_array_equal(A, A_same, err_msg=name)
        if name == "SOFTMAX":
            _close(A.sum(axis=1), np.ones(m), dtype)


def test_forward_linear_in_place_and_one_output(dtype):
    """LINEAR with Z_out is A_out, n_out == 1, and a batch of empty rows only."""
    X, csr = _csr(30, 20, 0.2, dtype, seed=4, empty=(0, 5))
    W = np.random.default_rng(5).standard_normal((20, 1)).astype(dtype)
    b = np.array([0.25], dtype)
    rows = np.array([7, 0, 7, 29, 5, 12], np.int64)
    Z = np.full((6, 1), np.nan, dtype)
    N.sparse_dense_forward(*csr, rows, W, b, K.LINEAR, 0.0, Z, Z)
    _close(Z, X.toarray()[rows].astype(np.float64) @ W + b, dtype)
    for act in (K.SOFTMAX, K.RELU):
        A = np.empty_like(Z)
        N.sparse_dense_forward(*csr, rows, W, b, act, 0.0, np.empty_like(Z), A)
        np.testing.assert_array_equal(A, np.ones_like(A) if act == K.SOFTMAX else np.maximum(Z, 0))
    only_empty = np.array([5, 0, 5], np.int64)
    Z = np.full((3, 1), np.nan, dtype)
    N.sparse_dense_forward(*csr, only_empty, W, None, K.LINEAR, 0.0, Z, Z)
    np.testing.assert_array_equal(Z, np.zeros((3, 1), dtype))


def test_forward_empty_batch(dtype):
    _, csr = _csr(10, 8, 0.3, dtype, seed=6)
    W = np.ones((8, 4), dtype)
    Z = np.empty((0, 4), dtype)
    A = np.empty((0, 4), dtype)
    N.sparse_dense_forward(*csr, np.empty(0, np.int64), W, np.zeros(4, dtype), K.SOFTMAX, 0.0, Z, A)


# ----------------------------------------------------------------- backward
@pytest.mark.parametrize("density", [0.05, 0.5])
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_backward_equals_dense(dtype, density, l2):
    n, n_in, n_out, m = 60, 300 if density < 0.1 else 40, 9, 50
    empty = (3, 17, 41)
    X, csr = _csr(n, n_in, density, dtype, seed=7, empty=empty, unsorted=density > 0.1)
    rng = np.random.default_rng(8)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    dZ = rng.standard_normal((m, n_out)).astype(dtype)
    rows = _batch(n, m, 9, empty)
    Xd = X.toarray()[rows].astype(np.float64)
    dW_expected = Xd.T @ dZ.astype(np.float64) + l2 * W.astype(np.float64)
    for with_db in (True, False):
        dW = np.full((n_in, n_out), np.nan, dtype)  # fully overwritten
        db = np.full(n_out, np.nan, dtype) if with_db else None
        N.sparse_dense_backward(*csr, rows, dZ, l2, W, dW, db)
        _close(dW, dW_expected, dtype)
        if with_db:
            _close(db, dZ.astype(np.float64).sum(axis=0), dtype)
        # Features absent from the batch get exactly l2 * W (zero without l2).
        absent = np.flatnonzero(np.abs(Xd).sum(axis=0) == 0)
        assert absent.size > 0
        np.testing.assert_array_equal(dW[absent], dtype(l2) * W[absent] if l2 else 0)


def test_backward_empty_batch_and_one_output(dtype):
    _, csr = _csr(10, 8, 0.3, dtype, seed=10, empty=(2,))
    W = np.random.default_rng(11).standard_normal((8, 1)).astype(dtype)
    dW = np.full_like(W, np.nan)
    db = np.full(1, np.nan, dtype)
    N.sparse_dense_backward(*csr, np.empty(0, np.int64), np.empty((0, 1), dtype), 0.5, W, dW, db)
    np.testing.assert_array_equal(dW, dtype(0.5) * W)
    np.testing.assert_array_equal(db, np.zeros(1, dtype))
    rows = np.array([2, 2], np.int64)  # empty rows only: no gradient but the l2 term
    N.sparse_dense_backward(*csr, rows, np.ones((2, 1), dtype), 0.0, W, dW, db)
    np.testing.assert_array_equal(dW, np.zeros_like(W))
    np.testing.assert_array_equal(db, np.full(1, 2, dtype))


# --------------------------------------------------------- checks, dtypes
def test_bad_rows_and_shapes_raise():
    _, csr = _csr(10, 8, 0.3, np.float64, seed=12)
    W = np.ones((8, 3))
    Z = np.empty((2, 3))
    with pytest.raises(IndexError):
        N.sparse_dense_forward(*csr, np.array([0, 10], np.int64), W, None, K.RELU, 0.0, Z, Z.copy())
    with pytest.raises(IndexError):
        N.sparse_dense_backward(*csr, np.array([-1, 0], np.int64), Z, 0.0, W, np.empty_like(W), None)
    with pytest.raises(ValueError):
        N.sparse_dense_forward(*csr, np.array([0], np.int64), W, None, K.RELU, 0.0, Z, Z.copy())
    with pytest.raises(ValueError):
        N.sparse_dense_forward(*csr, np.array([0, 1], np.int64), W, np.zeros(2), K.RELU, 0.0, Z, Z.copy())
    with pytest.raises(ValueError):
        N.sparse_dense_backward(*csr, np.array([0, 1], np.int64), Z, 0.0, W, np.empty((8, 2)), None)


def test_float32_stays_float32():
    """No float32 value is widened to float64 in either kernel, and their loops have SIMD code."""
    _, csr = _csr(10, 8, 0.3, np.float32, seed=13)
    rows = np.array([1, 3, 1], np.int64)
    W = np.ones((8, 16), np.float32)
    Z = np.empty((3, 16), np.float32)
    cases = [
        (N.sparse_dense_forward, (*csr, rows, W, np.zeros(16, np.float32), K.RELU, 0.1, Z, Z.copy())),
        (N.sparse_dense_backward, (*csr, rows, Z, 0.1, W, np.empty_like(W), np.empty(16, np.float32))),
    ]
    for kernel, args in cases:
        fresh = numba.njit(fastmath={"contract"}, error_model="numpy")(kernel.py_func)
        fresh(*args)
        ir = fresh.inspect_llvm(fresh.signatures[0])
        assert "fpext float" not in ir
        assert re.search(r"<\d+ x float>", ir), "no float32 loop vectorized"

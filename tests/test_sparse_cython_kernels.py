"""The Cython backend's CSR first-layer kernels against the dense computation.

``sparse_dense_forward`` and ``sparse_dense_backward`` read the batch's rows of
a SciPy CSR matrix; they must give what the NumPy reference's ``dense_forward``
and ``dense_backward`` give on ``X.toarray()[rows]``.  The reference runs in
float64, so the tolerance measures only the kernels' own rounding.
"""
import inspect

import numpy as np
import pytest

from _x86 import levels
from fastnn import _kernels as K
from fastnn._kernels import numpy as ref

sp = pytest.importorskip("scipy.sparse")
cy = pytest.importorskip("fastnn._kernels.cython", reason="Cython extensions not built")

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
DENSITIES = pytest.mark.parametrize("density", [0.05, 0.5])
ACTS = pytest.mark.parametrize(
    "act,alpha",
    [(K.LINEAR, 0.0), (K.RELU, 0.0), (K.SOFTMAX, 0.0), (K.TANH, 0.0), (K.LEAKY_RELU, 0.2),
     (K.ELU, 1.0), (K.SIGMOID, 0.0)],
    ids=["linear", "relu", "softmax", "tanh", "leaky_relu", "elu", "sigmoid"],
)
N, N_IN, N_OUT = 40, 60, 9
EMPTY_ROWS = [0, 7, 21]  # no stored entries
EMPTY_FEATURES = [5, 33]  # in no row of X


def close(actual, expected, dtype):
    tol = RTOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * max(1.0, np.abs(expected).max()))


def csr(dtype, density, seed=0, n=N, n_in=N_IN):
    rng = np.random.default_rng(seed)
    X = sp.random(n, n_in, density=density, format="csr", dtype=np.float64,
                  random_state=rng, data_rvs=rng.standard_normal).toarray()
    X[[r for r in EMPTY_ROWS if r < n]] = 0
    X[:, [f for f in EMPTY_FEATURES if f < n_in]] = 0
    return sp.csr_matrix(X.astype(dtype))


def parts(X):
    """The CSR arrays in the kernels' dtypes."""
    return X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data


def batch(seed=1, m=25):
    """Unordered rows with repeats and empty rows."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.integers(0, N, m - 5), [7, 3, 3, 0, 7]])
    rng.shuffle(rows)
    return rows.astype(np.int64)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def reference_forward(Xd, W, b, act, alpha):
    n, n_out = Xd.shape[0], W.shape[1]
    Z, A = np.empty((n, n_out)), np.empty((n, n_out))
    ref.dense_forward(Xd.astype(np.float64), W.astype(np.float64),
                      None if b is None else b.astype(np.float64), act, alpha, Z, A)
    return Z, A


def reference_backward(Xd, W, dZ, l2):
    dW, db = np.empty(W.shape), np.empty(W.shape[1])
    ref.dense_backward(Xd.astype(np.float64), W.astype(np.float64), dZ.astype(np.float64), l2,
                       dW, db, None)
    return dW, db


def test_signatures():
    assert list(inspect.signature(cy.sparse_dense_forward).parameters) == [
        "indptr", "indices", "data", "rows", "W", "b", "act", "alpha", "Z_out", "A_out"]
    assert list(inspect.signature(cy.sparse_dense_backward).parameters) == [
        "indptr", "indices", "data", "rows", "dZ", "l2", "W", "dW_out", "db_out"]


# --------------------------------------------------------------------- forward
@DTYPES
@DENSITIES
@ACTS
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_forward_equals_dense(dtype, density, act, alpha, bias):
    rng = np.random.default_rng(2)
    X, rows = csr(dtype, density), batch()
    W = rand(rng, (N_IN, N_OUT), dtype)
    b = rand(rng, N_OUT, dtype) if bias else None
    Z = np.full((len(rows), N_OUT), np.nan, dtype)
    A = np.full_like(Z, np.nan)
    cy.sparse_dense_forward(*parts(X), rows, W, b, act, alpha, Z, A)
    Z_ref, A_ref = reference_forward(X.toarray()[rows], W, b, act, alpha)
    close(Z, Z_ref, dtype)
    close(A, A_ref, dtype)
    assert Z.dtype == dtype and A.dtype == dtype
    if b is not None:  # an empty row is the bias alone
        np.testing.assert_array_equal(Z[rows == 7], np.broadcast_to(b, (2, N_OUT)))


@DTYPES
def test_forward_activation_is_dense_forwards_epilogue(dtype):
    """Same activation code path as the Cython dense_forward: from the same Z, the same A."""
    rng = np.random.default_rng(3)
    X, rows = csr(dtype, 0.3), batch()
    W, b = rand(rng, (N_IN, N_OUT), dtype), rand(rng, N_OUT, dtype)
    for act in range(K.N_ACTIVATIONS):
        Z, A = np.empty((len(rows), N_OUT), dtype), np.empty((len(rows), N_OUT), dtype)
        cy.sparse_dense_forward(*parts(X), rows, W, b, act, 0.3, Z, A)
        A2 = np.empty_like(A)
        cy.dense_forward(Z, np.eye(N_OUT, dtype=dtype), None, act, 0.3, np.empty_like(Z), A2)
        np.testing.assert_array_equal(A, A2, err_msg=f"activation {act}")


@DTYPES
def test_forward_linear_in_place_and_softmax_rows_sum_to_one(dtype):
    rng = np.random.default_rng(4)
    X, rows = csr(dtype, 0.5), batch()
    W, b = rand(rng, (N_IN, N_OUT), dtype), rand(rng, N_OUT, dtype)
    Z = np.empty((len(rows), N_OUT), dtype)
    cy.sparse_dense_forward(*parts(X), rows, W, b, K.LINEAR, 0.0, Z, Z)
    close(Z, reference_forward(X.toarray()[rows], W, b, K.LINEAR, 0.0)[0], dtype)
    A = np.empty_like(Z)
    cy.sparse_dense_forward(*parts(X), rows, 30 * W, b, K.SOFTMAX, 0.0, Z, A)  # large logits
    assert np.isfinite(A).all()
    close(A.sum(axis=1), np.ones(len(rows)), dtype)


@DTYPES
def test_unsorted_and_duplicate_entries_are_summed_like_toarray(dtype):
    """A non-canonical CSR (unsorted columns, a repeated column in a row) is what toarray() says."""
    indptr = np.array([0, 3, 3, 5], np.int64)
    indices = np.array([4, 1, 4, 0, 2], np.int32)
    data = np.array([1.0, 2.0, -0.5, 3.0, 1.5], dtype)
    X = sp.csr_matrix((data, indices, indptr), shape=(3, 5))
    rows = np.array([2, 0, 1, 0], np.int64)
    rng = np.random.default_rng(5)
    W, dZ = rand(rng, (5, 4), dtype), rand(rng, (4, 4), dtype)
    Z, A = np.empty((4, 4), dtype), np.empty((4, 4), dtype)
    cy.sparse_dense_forward(indptr, indices, data, rows, W, None, K.RELU, 0.0, Z, A)
    Xd = X.toarray()[rows]
    close(Z, reference_forward(Xd, W, None, K.RELU, 0.0)[0], dtype)
    dW = np.empty_like(W)
    cy.sparse_dense_backward(indptr, indices, data, rows, dZ, 0.0, W, dW, None)
    close(dW, reference_backward(Xd, W, dZ, 0.0)[0], dtype)


# -------------------------------------------------------------------- backward
@DTYPES
@DENSITIES
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("with_db", [True, False], ids=["db", "no-db"])
def test_backward_equals_dense(dtype, density, l2, with_db):
    rng = np.random.default_rng(6)
    X, rows = csr(dtype, density), batch()
    W, dZ = rand(rng, (N_IN, N_OUT), dtype), rand(rng, (len(rows), N_OUT), dtype)
    dW = np.full((N_IN, N_OUT), np.nan, dtype)  # must be fully overwritten
    db = np.full(N_OUT, np.nan, dtype) if with_db else None
    cy.sparse_dense_backward(*parts(X), rows, dZ, l2, W, dW, db)
    dW_ref, db_ref = reference_backward(X.toarray()[rows], W, dZ, l2)
    close(dW, dW_ref, dtype)
    if with_db:
        close(db, db_ref, dtype)
    # Features absent from the batch get exactly l2 * W (zero when l2 == 0).
    absent = np.setdiff1d(np.arange(N_IN), X[rows].indices)
    assert set(EMPTY_FEATURES) <= set(absent)
    np.testing.assert_array_equal(dW[absent], dtype(l2) * W[absent])
    if l2 == 0:
        assert not dW[absent].any()


# ------------------------------------------------------------------ edge cases
@DTYPES
def test_empty_batch(dtype):
    rng = np.random.default_rng(7)
    X = csr(dtype, 0.2)
    W, b = rand(rng, (N_IN, N_OUT), dtype), rand(rng, N_OUT, dtype)
    rows = np.empty(0, np.int64)
    Z, A = np.empty((0, N_OUT), dtype), np.empty((0, N_OUT), dtype)
    cy.sparse_dense_forward(*parts(X), rows, W, b, K.SOFTMAX, 0.0, Z, A)
    dW, db = np.full_like(W, np.nan), np.full(N_OUT, np.nan, dtype)
    cy.sparse_dense_backward(*parts(X), rows, np.empty((0, N_OUT), dtype), 0.5, W, dW, db)
    np.testing.assert_array_equal(dW, dtype(0.5) * W)
    np.testing.assert_array_equal(db, np.zeros(N_OUT, dtype))


@DTYPES
@pytest.mark.parametrize("act", [K.SOFTMAX, K.RELU, K.SIGMOID], ids=["softmax", "relu", "sigmoid"])
def test_one_output_column(dtype, act):
    rng = np.random.default_rng(8)
    X, rows = csr(dtype, 0.3), batch()
    W, b = rand(rng, (N_IN, 1), dtype), rand(rng, 1, dtype)
    Z, A = np.empty((len(rows), 1), dtype), np.empty((len(rows), 1), dtype)
    cy.sparse_dense_forward(*parts(X), rows, W, b, act, 0.0, Z, A)
    Z_ref, A_ref = reference_forward(X.toarray()[rows], W, b, act, 0.0)
    close(Z, Z_ref, dtype)
    close(A, A_ref, dtype)
    dZ = rand(rng, (len(rows), 1), dtype)
    dW, db = np.empty_like(W), np.empty(1, dtype)
    cy.sparse_dense_backward(*parts(X), rows, dZ, 0.1, W, dW, db)
    dW_ref, db_ref = reference_backward(X.toarray()[rows], W, dZ, 0.1)
    close(dW, dW_ref, dtype)
    close(db, db_ref, dtype)


@DTYPES
def test_matrix_without_stored_entries(dtype):
    """nnz == 0: Z is the bias, dW is l2 * W, db still sums dZ."""
    X = sp.csr_matrix((4, 6), dtype=dtype)
    rng = np.random.default_rng(9)
    W, b = rand(rng, (6, 3), dtype), rand(rng, 3, dtype)
    rows = np.array([3, 0, 3], np.int64)
    Z, A = np.empty((3, 3), dtype), np.empty((3, 3), dtype)
    cy.sparse_dense_forward(*parts(X), rows, W, b, K.RELU, 0.0, Z, A)
    np.testing.assert_array_equal(Z, np.broadcast_to(b, (3, 3)))
    np.testing.assert_array_equal(A, np.maximum(Z, 0))
    dZ = rand(rng, (3, 3), dtype)
    dW, db = np.full_like(W, np.nan), np.empty(3, dtype)
    cy.sparse_dense_backward(*parts(X), rows, dZ, 0.0, W, dW, db)
    assert not dW.any()
    close(db, dZ.astype(np.float64).sum(axis=0), dtype)


def test_read_only_inputs_are_accepted():
    rng = np.random.default_rng(10)
    X, rows = csr(np.float64, 0.2), batch()
    arrays = [*parts(X), rows, rand(rng, (N_IN, N_OUT), np.float64), rand(rng, N_OUT, np.float64)]
    for a in arrays:
        a.flags.writeable = False
    Z, A = np.empty((len(rows), N_OUT)), np.empty((len(rows), N_OUT))
    cy.sparse_dense_forward(*arrays[:6], K.TANH, 0.0, Z, A)
    close(Z, reference_forward(X.toarray()[rows], arrays[4], arrays[5], K.TANH, 0.0)[0], np.float64)


# ------------------------------------------------------------- bad arguments
def _forward_args(dtype=np.float32):
    """Valid forward arguments for X (5, 4) with 4 stored entries, batch of 3, n_out 2."""
    indptr = np.array([0, 1, 1, 3, 3, 4], np.int64)
    indices = np.array([0, 1, 3, 2], np.int32)
    data = np.array([1.0, 2.0, 3.0, 4.0], dtype)
    rows = np.array([4, 2, 0], np.int64)
    W, b = np.ones((4, 2), dtype), np.ones(2, dtype)
    return dict(indptr=indptr, indices=indices, data=data, rows=rows, W=W, b=b, act=K.RELU,
                alpha=0.0, Z_out=np.empty((3, 2), dtype), A_out=np.empty((3, 2), dtype))


def _backward_args(dtype=np.float32):
    f = _forward_args(dtype)
    return dict(indptr=f["indptr"], indices=f["indices"], data=f["data"], rows=f["rows"],
                dZ=np.ones((3, 2), dtype), l2=0.0, W=f["W"], dW_out=np.empty((4, 2), dtype),
                db_out=np.empty(2, dtype))


def test_valid_small_arguments_run():
    cy.sparse_dense_forward(**_forward_args())
    cy.sparse_dense_backward(**_backward_args())


BAD = [
    # (argument, bad value, error, message)
    ("indptr", lambda a: a["indptr"].astype(np.int32), TypeError, "indptr has dtype int32"),
    ("indices", lambda a: a["indices"].astype(np.int64), TypeError, "indices has dtype int64"),
    ("data", lambda a: a["data"].astype(np.float64), TypeError, "data has dtype float64"),
    ("rows", lambda a: a["rows"].astype(np.int32), TypeError, "rows has dtype int32"),
    ("rows", lambda a: list(a["rows"]), TypeError, "rows must be a numpy array"),
    ("W", lambda a: a["W"].astype(np.int64), TypeError, "W must be float32 or float64"),
    ("rows", lambda a: np.array([4, 5, 0], np.int64), IndexError, r"rows\[1\] = 5"),
    ("rows", lambda a: np.array([-1], np.int64), IndexError, r"rows\[0\] = -1"),
    ("indices", lambda a: np.array([0, 1, 4, 2], np.int32), IndexError, r"indices\[2\] = 4"),
    ("indices", lambda a: np.array([0, 1, -3, 2], np.int32), IndexError, r"indices\[2\] = -3"),
    ("indptr", lambda a: np.array([0, 1, 1, 3, 3], np.int64), ValueError, "indptr must start at 0"),
    ("indptr", lambda a: np.array([1, 1, 1, 3, 3, 4], np.int64), ValueError, "indptr must start"),
    ("indptr", lambda a: np.array([0, 1, 3, 1, 3, 4], np.int64), ValueError, "at row 2"),
    ("indptr", lambda a: np.array([0, 1, 1, 9, 3, 4], np.int64), ValueError, "at row 2"),
    ("indptr", lambda a: np.empty(0, np.int64), ValueError, "indptr must have"),
    ("indices", lambda a: a["indices"][:3].copy(), ValueError, "indices has 3 entries"),
    ("data", lambda a: a["data"][:3].copy(), ValueError, "data 3"),
    ("data", lambda a: np.ones((2, 2), a["data"].dtype), ValueError, "data must be 1-D"),
    ("rows", lambda a: np.array([[0]], np.int64), ValueError, "rows must be 1-D"),
    ("rows", lambda a: np.arange(6, dtype=np.int64)[::2], ValueError, "rows must be C-contiguous"),
]
BAD_FORWARD = [
    ("Z_out", lambda a: np.empty((2, 2), np.float32), ValueError, "Z_out"),
    ("A_out", lambda a: np.empty((3, 3), np.float32), ValueError, "A_out"),
    ("A_out", lambda a: np.empty((3, 2), np.float64), TypeError, "A_out has dtype float64"),
    ("Z_out", lambda a: np.empty((2, 3), np.float32).T, ValueError, "Z_out must be C-contiguous"),
    ("Z_out", lambda a: _read_only(np.empty((3, 2), np.float32)), ValueError, "Z_out is read-only"),
    ("b", lambda a: np.ones(3, np.float32), ValueError, "b has 3 entries"),
    ("b", lambda a: np.ones(2, np.float64), TypeError, "b has dtype float64"),
    ("act", lambda a: 99, ValueError, "unknown activation code 99"),
    ("W", lambda a: np.ones((3, 2), np.float32), IndexError, r"indices\[2\] = 3 .*W with 3 rows"),
]
BAD_BACKWARD = [
    ("dZ", lambda a: np.ones((2, 2), np.float32), ValueError, "dZ is"),
    ("dZ", lambda a: np.ones((3, 2), np.float64), TypeError, "dZ has dtype float64"),
    ("dW_out", lambda a: np.empty((4, 3), np.float32), ValueError, "dW_out is"),
    ("dW_out", lambda a: _read_only(np.empty((4, 2), np.float32)), ValueError, "dW_out is read-only"),
    ("dW_out", lambda a: np.empty((2, 4), np.float32).T, ValueError, "dW_out must be C-contiguous"),
    ("db_out", lambda a: np.empty(3, np.float32), ValueError, "db_out has 3 entries"),
    ("db_out", lambda a: np.empty(2, np.float64), TypeError, "db_out has dtype float64"),
]


def _read_only(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("name,bad,error,message", BAD + BAD_FORWARD,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD + BAD_FORWARD)])
def test_forward_bad_arguments_raise(name, bad, error, message):
    args = _forward_args()
    args[name] = bad(args)
    Z_before = args["Z_out"].copy()
    with pytest.raises(error, match=message) as info:
        cy.sparse_dense_forward(*args.values())
    assert "sparse_dense_forward" in str(info.value)
    if name != "Z_out":  # nothing written before the error
        np.testing.assert_array_equal(args["Z_out"], Z_before)


@pytest.mark.parametrize("name,bad,error,message", BAD + BAD_BACKWARD,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD + BAD_BACKWARD)])
def test_backward_bad_arguments_raise(name, bad, error, message):
    args = _backward_args()
    args[name] = bad(args)
    with pytest.raises(error, match=message) as info:
        cy.sparse_dense_backward(*args.values())
    assert "sparse_dense_backward" in str(info.value)


# ------------------------------------------------------------- the x86 levels
def _levels():
    """The x86 levels of ``_simd_rows.h`` this CPU runs."""
    from fastnn._kernels.cython import _sparse

    return levels(_sparse._set_rows_level)


@pytest.fixture
def rows_level():
    """Sets the row kernels' level for one test, then the CPU's best again."""
    from fastnn._kernels.cython import _sparse

    yield _sparse._set_rows_level
    _sparse._set_rows_level(0)


def test_levels_are_checked():
    from fastnn._kernels.cython import _sparse

    assert 1 in _levels()
    with pytest.raises(ValueError, match="level 2"):
        _sparse._set_rows_level(2)


@pytest.mark.parametrize("level", _levels())
@DTYPES
# widths that take each block of the kernels' ladder (8, 4, 2 and 1 vectors) and the tail
@pytest.mark.parametrize("n_out", [3, 24, 91, 200])
def test_every_x86_level_equals_dense(level, dtype, n_out, rows_level):
    """Each level the CPU runs (vector widths 64 and 32 bytes, with and without fused
    multiply-adds) gives the reference's forward pass and weight gradient."""
    rows_level(level)
    rng = np.random.default_rng(11)
    X, rows = csr(dtype, 0.3), batch()
    W, b = rand(rng, (N_IN, n_out), dtype), rand(rng, n_out, dtype)
    Z = np.full((len(rows), n_out), np.nan, dtype)
    cy.sparse_dense_forward(*parts(X), rows, W, b, K.LINEAR, 0.0, Z, Z)
    close(Z, reference_forward(X.toarray()[rows], W, b, K.LINEAR, 0.0)[0], dtype)
    dZ = rand(rng, (len(rows), n_out), dtype)
    dW, db = np.full_like(W, np.nan), np.full(n_out, np.nan, dtype)
    cy.sparse_dense_backward(*parts(X), rows, dZ, 0.01, W, dW, db)
    dW_ref, db_ref = reference_backward(X.toarray()[rows], W, dZ, 0.01)
    close(dW, dW_ref, dtype)
    close(db, db_ref, dtype)


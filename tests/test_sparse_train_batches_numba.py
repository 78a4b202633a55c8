"""The Numba ``train_batches`` on a plan whose ``X`` is sparse (a ``SparseInput``).

The plan is built as ``fit`` builds it (``make_plan``; ``plan.Xb`` has no rows,
so the first layer must read the CSR rows in place) and the kernel is called
directly, over two calls per epoch on a shuffled ``perm`` whose last batch is
short.  It must agree with the NumPy backend's ``train_batches`` (the reference
step, which reads sparse batches through ``sparse_dense_*``) on the same sparse
plan, and with the Numba ``train_batches`` on the same data given dense:
weights, optimizer state and the ``TrainResult`` totals.

Tolerances as in ``test_training_paths.py``: 1e-9 (relative) in float64,
2e-4 in float32 (the sparse kernels add in another order than BLAS).
"""
import numpy as np
import pytest

numba = pytest.importorskip("numba")
sp = pytest.importorskip("scipy.sparse")

import fastnn as fn  # noqa: E402
from fastnn import _validation as check  # noqa: E402
from fastnn._kernels import numba as N  # noqa: E402
from fastnn._kernels import numpy as R  # noqa: E402
from fastnn._kernels.numba import _training as NT  # noqa: E402
from fastnn._kernels.sparse import SparseInput  # noqa: E402
from fastnn._training import make_plan  # noqa: E402

N_ROWS, N_FEATURES, BATCH = 203, 40, 32  # 7 batches, the last of 11 rows
TOL = {"float32": 2e-4, "float64": 1e-9}
OPTIMIZERS = {
    "adam": lambda: fn.optimizers.Adam(0.01),
    "momentum": lambda: fn.optimizers.SGD(0.05, momentum=0.9),
}
TARGETS = {  # loss, whether rows carry sample weights
    "labels-weighted": ("sparse_categorical_crossentropy", True),
    "onehot": ("categorical_crossentropy", False),
}


def _data(seed=0):
    """A sparse X with an empty row and two empty columns, 3 classes, sample weights."""
    rng = np.random.default_rng(seed)
    X = sp.random(N_ROWS, N_FEATURES, density=0.15, format="lil", random_state=seed,
                  data_rvs=rng.standard_normal)
    X[7, :] = 0
    X[:, N_FEATURES - 2:] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    dense = X.toarray()
    label = (dense[:, 0] + dense[:, 1] - dense[:, 2] > 0).astype(np.int64) + (dense[:, 3] > 0.5)
    w = rng.uniform(0.5, 2.0, N_ROWS)
    return X, label, w


def _model(dtype, opt, loss, first_bias=True):
    model = fn.Sequential([
        fn.Dense(9, activation="relu", input_dim=N_FEATURES, use_bias=first_bias),
        fn.Dense(6, activation="elu"),
        fn.Dense(3, activation="softmax"),
    ], backend="numpy", dtype=dtype, seed=3)
    model.compile(optimizer=OPTIMIZERS[opt](), loss=loss, metrics=["accuracy"])
    model.build(N_FEATURES)
    model.optimizer.build(model._params)
    model.layers[0].l2 = 1e-3
    model.layers[1].l2 = 5e-4
    return model


def _train(kernels, model, X, y, w, epochs=2):
    """``epochs`` passes of ``kernels.train_batches`` over the plan of ``(X, y, w)``, each
    on a new shuffle and in two calls (4 batches, then the 3 left); the summed totals."""
    dtype = np.dtype(model.dtype)
    y = check.check_y(y, model.loss, model.output_dim, X.shape[0], dtype)
    w = check.check_sample_weight(w, X.shape[0], dtype)
    perm = np.arange(X.shape[0], dtype=np.int64)
    plan = make_plan(model, X, y, w, BATCH, perm, model._workspace(BATCH))
    if isinstance(X, SparseInput):
        assert plan.Xb.shape[0] == 0  # nothing to gather into: the rows are read in place
    rng = np.random.default_rng(5)
    opt = model.optimizer
    totals = np.zeros(5)
    for _ in range(epochs):
        rng.shuffle(perm)
        for first, count in ((0, 4), (4, 3)):
            lrs = opt.learning_rates(np.empty(count))
            result = kernels.train_batches(plan, first, count, lrs, opt.iterations)
            assert result.batches == count
            opt.iterations += count
            assert result.ends_finite
            totals += np.array([result.batches, *result.totals], np.float64)
    return totals


def _assert_same(model, totals, ref_model, ref_totals, tol, what):
    np.testing.assert_allclose(totals, ref_totals, rtol=tol, atol=tol, err_msg=f"{what}: TrainResult")
    for a, b in zip(model.get_weights(), ref_model.get_weights()):
        assert a.dtype == b.dtype == np.dtype(model.dtype)
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10, err_msg=f"{what}: weights")
    assert model.optimizer.iterations == ref_model.optimizer.iterations
    for a, b in zip(model.optimizer.get_state(), ref_model.optimizer.get_state()):
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10, err_msg=f"{what}: optimizer state")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_plan_matches_the_numpy_reference_and_dense_input(dtype, opt, target):
    loss, weighted = TARGETS[target]
    Xs, label, w = _data()
    y = label if loss == "sparse_categorical_crossentropy" else np.eye(3)[label]
    w = w if weighted else None
    X = check.check_X(Xs, N_FEATURES, np.dtype(dtype), accept_sparse=True)
    assert isinstance(X, SparseInput)
    X_dense = check.check_X(Xs.toarray(), N_FEATURES, np.dtype(dtype))
    runs = {}
    for name, kernels, Xi in (("numba-sparse", N, X), ("numpy-sparse", R, X), ("numba-dense", N, X_dense)):
        model = _model(dtype, opt, loss)
        runs[name] = model, _train(kernels, model, Xi, y, w)
    tol = TOL[dtype]
    _assert_same(*runs["numba-sparse"], *runs["numpy-sparse"], tol, "against the NumPy reference")
    _assert_same(*runs["numba-sparse"], *runs["numba-dense"], tol, "against dense input")
    assert runs["numba-sparse"][1][0] == 2 * 7  # batches completed


def test_first_layer_without_bias():
    Xs, label, w = _data(1)
    X = check.check_X(Xs, N_FEATURES, np.float64, accept_sparse=True)
    runs = {}
    for name, kernels in (("numba", N), ("numpy", R)):
        model = _model("float64", "adam", "sparse_categorical_crossentropy", first_bias=False)
        runs[name] = model, _train(kernels, model, X, label, w, epochs=1)
    _assert_same(*runs["numba"], *runs["numpy"], TOL["float64"], "no bias")


def test_dense_and_sparse_input_are_two_specializations_of_one_loop():
    """The dense call keeps its argument types; a sparse X arrives as its three CSR arrays."""
    Xs, label, w = _data()
    for X in (check.check_X(Xs, N_FEATURES, np.float64, accept_sparse=True),
              check.check_X(Xs.toarray(), N_FEATURES, np.float64)):
        _train(N, _model("float64", "adam", "sparse_categorical_crossentropy"), X, label, w, epochs=1)
    first = {str(sig[0]) for sig in NT._train_batches.signatures}
    assert "array(float64, 2d, C)" in first
    assert "Tuple(array(int64, 1d, C), array(int32, 1d, C), array(float64, 1d, C))" in first


def test_out_of_range_rows_raise_index_error():
    Xs, label, _ = _data()
    X = check.check_X(Xs, N_FEATURES, np.float64, accept_sparse=True)
    model = _model("float64", "adam", "sparse_categorical_crossentropy")
    y = check.check_y(label, model.loss, model.output_dim, N_ROWS, np.float64)
    perm = np.arange(N_ROWS, dtype=np.int64)
    perm[3] = N_ROWS
    plan = make_plan(model, X, y, None, BATCH, perm, model._workspace(BATCH))
    with pytest.raises(IndexError):
        N.train_batches(plan, 0, 1, np.full(1, 0.01), 0)

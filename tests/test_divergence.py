"""A model never ends ``fit`` holding non-finite weights or producing non-finite outputs."""
import warnings

import numpy as np
import pytest

import fastnn as fn

BACKENDS = fn.backends.available()


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_never_returns_a_model_whose_outputs_overflow(backend):
    """The last update of an epoch can blow the weights up after the last loss check;
    fit must notice it and roll the epoch back."""
    rolled_back = 0
    for seed in range(60):
        X = np.random.default_rng(seed).standard_normal((13, 3)) * 1e3
        y = np.random.default_rng(seed + 1000).standard_normal(13)
        model = fn.Sequential([fn.Dense(8, activation="relu", input_dim=3), fn.Dense(1)],
                              backend=backend, seed=seed)
        model.compile(fn.optimizers.SGD(0.1, momentum=0.9), "mse")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with np.errstate(all="ignore"):
                model.fit(X, y, epochs=2, verbose=0)
        rolled_back += any("training stopped" in str(w.message) for w in caught)
        assert all(np.isfinite(w).all() for w in model.get_weights()), seed
        assert all(np.isfinite(s).all() for s in model.optimizer.get_state()), seed
        assert np.isfinite(model.predict(X)).all(), seed
    assert rolled_back > 0  # the case is real: most seeds diverge


def test_metrics_that_compare_values_are_refused_with_class_labels():
    model = fn.Sequential([fn.Dense(3, activation="softmax", input_dim=4)])
    for metric in ("mae", "mse", fn.metrics.MeanAbsoluteError()):
        with pytest.raises(ValueError, match="metrics: .* class labels; use 'accuracy'"):
            model.compile("adam", "sparse_categorical_crossentropy", metrics=[metric])
    model.compile("adam", "categorical_crossentropy", metrics=["mae"])  # one-hot targets: fine


def test_a_value_metric_refuses_targets_of_another_size():
    with pytest.raises(ValueError, match=r"y_true: expected 6 values .* got shape \(2,\)"):
        fn.metrics.get("mae")(np.zeros(2), np.zeros((2, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", ["binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
                                  "mse", "half_squared_error", "mae"])
def test_losses_propagate_nan_instead_of_clipping_it_away(backend, loss):
    K = fn.backends.resolve(backend)
    code = fn.losses.get(loss).code
    A = np.full((4, 3), 1 / 3)
    A[1, 1] = np.nan  # at row 1's label, so that every loss reads it
    Y = np.array([0, 1, 2, 1]) if loss.startswith("sparse") else np.eye(3)[[0, 1, 2, 1]]
    assert np.isnan(K.loss_value(code, A, Y, None))
    assert np.isnan(K.loss_value(code, A, Y, np.ones(4)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_fit_ends_with_finite_weights_and_says_so(backend):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    model = fn.Sequential([fn.Dense(64, activation="relu", input_dim=64), fn.Dense(64, activation="relu"),
                           fn.Dense(10, activation="softmax")], backend=backend, seed=0)
    model.compile(fn.optimizers.SGD(1e6, momentum=0.9), "sparse_categorical_crossentropy")
    with pytest.warns(RuntimeWarning, match="training stopped"), np.errstate(all="ignore"):
        history = model.fit(X, y, epochs=3, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(np.isfinite(v) for v in history.history.get("loss", []))


def _plan(backend, dtype, sparse_input):
    """A 2-batch epoch of 12 rows on ``backend``, Adam, as ``fit`` plans it."""
    import scipy.sparse as sp

    from fastnn._kernels.sparse import SparseInput
    from fastnn._training import make_plan

    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 5)).astype(dtype)
    X[X < 0] = 0
    y = rng.integers(0, 3, 12)
    model = fn.Sequential([fn.Dense(4, activation="relu", input_dim=5), fn.Dense(3, activation="softmax")],
                          backend=backend, dtype=dtype, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.build(5)
    model.optimizer.build(model._params)
    data = SparseInput(sp.csr_matrix(X)) if sparse_input else X
    perm = np.arange(12, dtype=np.int64)
    return model, make_plan(model, data, y, None, 6, perm, model._workspace(6))


@pytest.mark.parametrize("sparse_input", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_batches_checks_what_the_epochs_last_update_left(backend, dtype, sparse_input):
    """TrainResult.ends_finite: False when the epoch's last batch was run and a parameter,
    a slot or an output is then not finite; a call that stops short of the epoch's end
    does not check (its next batch's loss will)."""
    K = fn.backends.resolve(backend)
    lrs = np.full(2, 1e-3)
    model, plan = _plan(backend, dtype, sparse_input)
    assert K.train_batches(plan, 0, 2, lrs, 0).ends_finite
    # an optimizer slot gone NaN: the loss before the update is finite, the update is not
    model, plan = _plan(backend, dtype, sparse_input)
    plan.S1W[1][0, 0] = np.nan
    result = K.train_batches(plan, 0, 1, lrs, 0)  # batch 0 of 2: not the end of the epoch
    assert result.batches == 1 and result.ends_finite
    assert np.isnan(plan.Ws[1][0, 0])
    model, plan = _plan(backend, dtype, sparse_input)
    plan.S1W[1][0, 0] = np.nan
    result = K.train_batches(plan, 1, 1, lrs, 0)  # the epoch's last batch
    assert result.batches == 1 and not result.ends_finite
    # a slot alone (second moment infinite: this update is finite, the slot is not)
    model, plan = _plan(backend, dtype, sparse_input)
    plan.S2b[0][1] = np.inf
    result = K.train_batches(plan, 0, 2, lrs, 0)
    assert result.batches == 2 and not result.ends_finite


@pytest.mark.parametrize("sparse_input", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_batches_checks_the_outputs_under_the_last_update(backend, dtype, sparse_input):
    """Every parameter and slot finite after the epoch's last update, yet the last batch's
    outputs under them not (its step so large that the logits overflow): ends_finite is
    False, from the forward pass of that check alone."""
    K = fn.backends.resolve(backend)
    huge = 1e30 if dtype == "float32" else 1e200  # finite weights, overflowing products
    model, plan = _plan(backend, dtype, sparse_input)
    with np.errstate(all="ignore"):
        result = K.train_batches(plan, 0, 2, np.array([1e-3, huge]), 0)
    assert result.batches == 2
    for arrays in (plan.Ws, plan.bs, plan.S1W, plan.S1b, plan.S2W, plan.S2b):
        assert all(np.isfinite(a).all() for a in arrays)
    assert not result.ends_finite
    model, plan = _plan(backend, dtype, sparse_input)
    assert K.train_batches(plan, 0, 2, np.array([1e-3, 1e-3]), 0).ends_finite

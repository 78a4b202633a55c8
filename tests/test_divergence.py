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

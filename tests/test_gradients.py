"""Finite-difference checks of the backward pass, in float64.

For every activation x loss x layer combination the analytic gradient that
``fit`` uses is compared with central differences of the loss:
``(L(w + h) - L(w - h)) / 2h`` for every parameter, ``h = 1e-6``.
"""
import numpy as np
import pytest

import fastnn as fn
from fastnn._kernels import codes

ACTIVATIONS = [name.lower() for name in codes.ACTIVATIONS]  # every activation, by its registry name
REGRESSION_LOSSES = ["mse", "half_squared_error", "mae"]
PROBABILISTIC = {
    "binary_crossentropy": ["sigmoid", "softmax"],
    "categorical_crossentropy": ["softmax", "sigmoid"],
    "sparse_categorical_crossentropy": ["softmax", "sigmoid"],
}
PAIRS = [(act, loss) for loss in REGRESSION_LOSSES for act in ACTIVATIONS] + [
    (act, loss) for loss, acts in PROBABILISTIC.items() for act in acts
]


def targets(rng, loss, n, k):
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, k, n)
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, (n, k)).astype(float)
    return rng.standard_normal((n, k))


def check_gradients(model, X, y, w=None, h=1e-6, tol=1e-6):
    """Compare the model's backprop gradients with central differences.

    Tolerance: ``|analytic - numeric| <= tol * max(1, |numeric|)``; central
    differences in float64 are accurate to about ``h**2 + eps / h ~ 1e-10``.
    """
    Xc = np.ascontiguousarray(X, dtype=np.float64)
    yc = fn._validation.check_y(y, model.loss, model.output_dim, len(X), np.float64)
    wc = None if w is None else np.ascontiguousarray(w, dtype=np.float64)
    ws = model._workspace(len(X))
    model._loss_and_gradients(Xc, yc, wc, ws)
    analytic = [g.copy() for g in model._grads]

    def loss():
        return model._kernels.loss_value(model.loss.code, model._forward(Xc, ws), yc, wc)

    worst = 0.0
    for p, g in zip(model._params, analytic):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = loss()
            flat[i] = old - h
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * h)
            err = abs(numeric - gflat[i])
            assert err <= tol * max(1.0, abs(numeric)), (
                f"param {p.shape} index {i}: analytic {gflat[i]:.10g} vs numeric {numeric:.10g}"
            )
            worst = max(worst, err)
    return worst


@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("output,loss", PAIRS, ids=[f"{a}-{l}" for a, l in PAIRS])
def test_dense_gradients(hidden, output, loss):
    rng = np.random.default_rng(0)
    k = 1 if (loss == "binary_crossentropy" and output == "sigmoid") else 3
    model = fn.Sequential([
        fn.Dense(4, activation=hidden, input_dim=3, kernel_initializer="glorot_normal",
                 bias_initializer=fn.initializers.RandomNormal(stddev=0.5)),
        fn.Dense(k, activation=output, kernel_initializer="glorot_normal",
                 bias_initializer=fn.initializers.RandomNormal(stddev=0.5)),
    ], backend="numpy", dtype="float64", seed=1)
    model.compile(optimizer="sgd", loss=loss)
    X = rng.standard_normal((5, 3))
    check_gradients(model, X, targets(rng, loss, 5, k))


@pytest.mark.parametrize("loss", ["mse", "categorical_crossentropy", "binary_crossentropy"])
def test_gradients_without_bias_and_with_sample_weight(loss):
    rng = np.random.default_rng(1)
    output = "softmax" if loss == "categorical_crossentropy" else "sigmoid"
    model = fn.Sequential([
        fn.Dense(5, activation="tanh", use_bias=False, input_dim=4),
        fn.Dense(3, activation="elu"),
        fn.Dense(2, activation=output, use_bias=False),
    ], backend="numpy", dtype="float64", seed=2)
    model.compile(optimizer="sgd", loss=loss)
    X = rng.standard_normal((6, 4))
    check_gradients(model, X, targets(rng, loss, 6, 2), w=rng.uniform(0.2, 2.0, 6))


@pytest.mark.parametrize("position", ["hidden", "output"])
def test_maxout_gradients(position):
    rng = np.random.default_rng(3)
    if position == "hidden":
        layers = [fn.Maxout(4, pieces=3, input_dim=3), fn.Dense(2, activation="softmax")]
        loss, y = "sparse_categorical_crossentropy", rng.integers(0, 2, 7)
    else:
        layers = [fn.Dense(4, activation="tanh", input_dim=3), fn.Maxout(2, pieces=2)]
        loss, y = "mse", rng.standard_normal((7, 2))
    model = fn.Sequential(layers, backend="numpy", dtype="float64", seed=4)
    model.compile(optimizer="sgd", loss=loss)
    check_gradients(model, rng.standard_normal((7, 3)), y)


def test_compiled_backends_give_the_same_gradients(backend):
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((9, 6)), rng.integers(0, 4, 9)
    grads = {}
    for name in ("numpy", backend):
        model = fn.Sequential([fn.Dense(7, activation="gelu", input_dim=6), fn.Dense(4, activation="softmax")],
                              backend=name, dtype="float64", seed=6)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        ws = model._workspace(9)
        model._loss_and_gradients(X, y.astype(np.int64), None, ws)
        grads[name] = [g.copy() for g in model._grads]
    for g0, g1 in zip(grads["numpy"], grads[backend]):
        np.testing.assert_allclose(g1, g0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_gradient_for_targets_that_do_not_sum_to_one(backend, weighted):
    """softmax + categorical cross-entropy takes the fused gradient a * sum(y) - y: a - y only
    for rows that sum to 1 (smoothed, partial, several-hot or all-zero rows here)."""
    rng = np.random.default_rng(7)
    model = fn.Sequential([fn.Dense(4, activation="tanh", input_dim=3),
                           fn.Dense(3, activation="softmax")], backend=backend, dtype="float64", seed=8)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    Y = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0], [0.5, 0, 0], [0.2, 0.3, 0.4], [0.9, 0.05, 0.05]])
    w = rng.uniform(0.2, 2.0, len(Y)) if weighted else None
    check_gradients(model, rng.standard_normal((len(Y), 3)), Y, w=w)


def test_a_batch_whose_weights_add_up_to_zero_has_no_loss_and_no_gradient(backend):
    rng = np.random.default_rng(9)
    model = fn.Sequential([fn.Dense(4, activation="tanh", input_dim=3),
                           fn.Dense(2, activation="softmax")], backend=backend, dtype="float64", seed=10)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    X, y, w = rng.standard_normal((5, 3)), rng.integers(0, 2, 5), np.zeros(5)
    ws = model._workspace(5)
    assert model._loss_and_gradients(X, y.astype(np.int64), w, ws) == 0.0
    assert all(np.all(g == 0) for g in model._grads)

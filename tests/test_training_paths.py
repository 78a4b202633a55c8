"""The compiled training path (``train_batches``) against the general
per-kernel path, and every backend against the NumPy backend over whole fits.

Tolerances: float64 runs must agree to 1e-9 (relative); float32 runs to 2e-4
after a few epochs (rounding differs between BLAS calls and fused loops, and
training amplifies it a little).
"""
import platform

import numpy as np
import pytest

import fastnn as fn
from fastnn._training import CompiledLoop

OPTIMIZERS = {
    "sgd": lambda: fn.optimizers.SGD(0.05),
    "momentum": lambda: fn.optimizers.SGD(0.05, momentum=0.9),
    "nesterov": lambda: fn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adagrad": lambda: fn.optimizers.Adagrad(0.05),
    "rmsprop": lambda: fn.optimizers.RMSprop(0.005),
    "adam": lambda: fn.optimizers.Adam(0.005),
    "adam+cosine": lambda: fn.optimizers.Adam(fn.schedules.CosineDecay(0.01, decay_steps=20)),
}
# The teaching material's forms (tests/test_optimizer_forms.py has their hand-computed steps).
FORMS = {
    "momentum-classic+cosine": lambda: fn.optimizers.SGD(fn.schedules.CosineDecay(0.05, decay_steps=20),
                                                         momentum=0.9, momentum_form="classic"),
    "nesterov-classic": lambda: fn.optimizers.SGD(0.05, momentum=0.9, nesterov=True, momentum_form="classic"),
    "adagrad-material": lambda: fn.optimizers.Adagrad(0.05, initial_accumulator_value=0.0,
                                                      epsilon_inside_sqrt=True),
    "rmsprop-eps-inside": lambda: fn.optimizers.RMSprop(0.005, epsilon_inside_sqrt=True),
    "adam-eps-inside": lambda: fn.optimizers.Adam(0.005, epsilon_inside_sqrt=True),
}
OPTIMIZERS_AND_FORMS = {**OPTIMIZERS, **FORMS}
TASKS = {
    "softmax-sce": ("softmax", "sparse_categorical_crossentropy", ["accuracy"]),
    "softmax-cce": ("softmax", "categorical_crossentropy", ["accuracy"]),
    "sigmoid-bce": ("sigmoid", "binary_crossentropy", ["accuracy"]),
    "linear-mse": ("linear", "mse", ["mae", "mse"]),
    "tanh-mae": ("tanh", "mae", ["mae"]),
}


class ForceKernelLoop(fn.callbacks.Callback):
    """A per-batch hook: fit then takes the general per-kernel path."""

    def on_batch_end(self, batch, logs=None):
        pass


def data(task, n=203, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 7))
    label = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    if task in ("softmax-sce",):
        return X, label, 3
    if task == "softmax-cce":
        return X, np.eye(3)[label], 3
    if task == "sigmoid-bce":
        return X, (label > 0).astype(float), 1
    return X, np.tanh(X[:, :2] @ np.array([[1.0, -0.5], [0.3, 0.8]])), 2


def make(task, opt, backend="numpy", dtype="float64", use_bias=True, hidden="relu"):
    output, loss, metrics = TASKS[task]
    _, _, k = data(task)
    model = fn.Sequential([
        fn.Dense(9, activation=hidden, input_dim=7, use_bias=use_bias),
        fn.Dense(6, activation="elu"),
        fn.Dense(k, activation=output, use_bias=use_bias),
    ], backend=backend, dtype=dtype, seed=3)
    model.compile(optimizer=OPTIMIZERS_AND_FORMS[opt](), loss=loss, metrics=metrics)
    return model


def fit(model, task, force_kernel_loop=False, weighted=False, **kwargs):
    X, y, _ = data(task)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X)) if weighted else None
    callbacks = [ForceKernelLoop()] if force_kernel_loop else []
    return model.fit(X, y, epochs=3, batch_size=32, sample_weight=w, callbacks=callbacks, verbose=0, **kwargs)


def test_the_numpy_backend_takes_the_compiled_path():
    model = make("softmax-sce", "adam")
    assert CompiledLoop.supports(model, [], np.zeros(3, np.int64))
    assert not CompiledLoop.supports(model, [ForceKernelLoop()], np.zeros(3, np.int64))
    maxout = fn.Sequential([fn.Maxout(3, input_dim=2), fn.Dense(1)])
    maxout.compile(optimizer="sgd", loss="mse")
    assert not CompiledLoop.supports(maxout, [], np.zeros((3, 1)))


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("task", TASKS)
def test_compiled_path_equals_kernel_path(backend, task, opt):
    if not hasattr(fn.backends.resolve(backend), "train_batches"):
        pytest.skip(f"backend {backend!r} has no train_batches kernel")
    a, b = make(task, opt, backend), make(task, opt, backend)
    ha = fit(a, task, force_kernel_loop=True)
    hb = fit(b, task)
    for key in ha.history:
        np.testing.assert_allclose(hb.history[key], ha.history[key], rtol=1e-9, atol=1e-12, err_msg=key)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wb, wa, rtol=1e-9, atol=1e-12)
    assert a.optimizer.iterations == b.optimizer.iterations == 3 * 7
    for sa, sb in zip(a.optimizer.get_state(), b.optimizer.get_state()):
        np.testing.assert_allclose(sb, sa, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("opt", FORMS)
@pytest.mark.parametrize("task", ["softmax-sce", "linear-mse"])
def test_compiled_path_equals_kernel_path_for_the_material_forms(backend, task, opt):
    test_compiled_path_equals_kernel_path(backend, task, opt)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", FORMS)
def test_every_backend_follows_the_numpy_loss_curve_with_the_material_forms(backend, dtype, opt):
    test_every_backend_follows_the_numpy_loss_curve(backend, dtype, "softmax-sce", opt)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_compiled_path_with_weights_and_without_bias(backend, weighted, use_bias):
    if not hasattr(fn.backends.resolve(backend), "train_batches"):
        pytest.skip(f"backend {backend!r} has no train_batches kernel")
    a = make("softmax-sce", "adam", backend, use_bias=use_bias)
    b = make("softmax-sce", "adam", backend, use_bias=use_bias)
    ha = fit(a, "softmax-sce", force_kernel_loop=True, weighted=weighted, validation_split=0.2)
    hb = fit(b, "softmax-sce", weighted=weighted, validation_split=0.2)
    for key in ha.history:
        np.testing.assert_allclose(hb.history[key], ha.history[key], rtol=1e-9, err_msg=key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("task,opt", [("softmax-sce", "adam"), ("sigmoid-bce", "nesterov"),
                                      ("linear-mse", "rmsprop"), ("softmax-cce", "adagrad")])
def test_every_backend_follows_the_numpy_loss_curve(backend, dtype, task, opt):
    tol = 2e-4 if dtype == "float32" else 1e-9
    curves, weights = {}, {}
    for name in ("numpy", backend):
        model = make(task, opt, name, dtype)
        curves[name] = fit(model, task).history
        weights[name] = model.get_weights()
        assert all(w.dtype == np.dtype(dtype) for w in weights[name])
    for key in curves["numpy"]:
        np.testing.assert_allclose(curves[backend][key], curves["numpy"][key], rtol=tol, atol=tol, err_msg=key)
    for w0, w1 in zip(weights["numpy"], weights[backend]):
        np.testing.assert_allclose(w1, w0, rtol=tol * 10, atol=tol * 10)


def test_divergence_is_rolled_back_on_the_compiled_path(backend):
    X, y, _ = data("linear-mse")
    model = fn.Sequential([fn.Dense(8, activation="relu", input_dim=7), fn.Dense(2)], backend=backend, seed=0)
    model.compile(optimizer=fn.optimizers.SGD(1e4), loss="mse")
    with pytest.warns(RuntimeWarning, match="restored"):
        history = model.fit(X, y * 1e20, epochs=5, batch_size=16, verbose=0)
    assert len(history.epoch) < 5
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert all(np.all(np.isfinite(s)) for s in model.optimizer.get_state())


def _has_denormal_slot(model):
    tiny = np.finfo(model.dtype).tiny
    return any(np.any((s != 0) & (np.abs(s) < tiny)) for s in map(np.asarray, model.optimizer.get_state())
               if s.dtype.kind == "f")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_backends_flush_denormals_only_while_training(backend, dtype):
    """Weights whose gradient turns zero (here: an input column that goes silent) have
    Adam slots decaying by beta_1 each step into the denormal range, where the NumPy
    backend computes with them (a hundred times slower on x86); the compiled backends
    flush them to zero and leave the caller's floating-point state as it was."""
    if backend == "numpy" or not hasattr(fn.backends.resolve(backend), "train_batches"):
        pytest.skip("only the compiled training paths flush denormals")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("denormals are flushed on x86-64 only")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    models = {}
    for name in ("numpy", backend):
        models[name] = fn.Sequential([fn.Dense(4, activation="tanh", input_dim=3),
                                      fn.Dense(2, activation="softmax")], backend=name, dtype=dtype, seed=0)
        models[name].compile(optimizer=fn.optimizers.Adam(1e-3, beta_1=0.8), loss="sparse_categorical_crossentropy")
        models[name].fit(X, y, epochs=1, batch_size=64, verbose=0)
    X[:, 2] = 0.0  # from now on the gradient of W[2, :] is exactly zero
    epochs = 0
    while not _has_denormal_slot(models["numpy"]) and epochs < 4000:
        models["numpy"].fit(X, y, epochs=10, batch_size=64, verbose=0)
        epochs += 10
    assert _has_denormal_slot(models["numpy"]), "the test's premise: the reference computes with denormals"
    models[backend].fit(X, y, epochs=epochs, batch_size=64, verbose=0)
    assert not _has_denormal_slot(models[backend]), "denormal left in an optimizer slot"
    tiny = np.finfo(dtype).tiny
    assert (np.array([tiny], dtype) * np.array([0.5], dtype))[0] != 0, "the caller's FP state was not restored"


@pytest.mark.parametrize("kernel_loop", [False, True])
def test_batches_whose_weights_add_up_to_zero_train_on(backend, kernel_loop):
    """A batch whose sample weights are all zero has loss 0 and no gradient: the fit goes on
    (it stopped as diverged), on the compiled path and the per-kernel path alike."""
    X, y, _ = data("softmax-sce", n=40)
    w = np.ones(len(X))
    w[8:16] = 0.0  # the second batch of 8, unshuffled
    model = make("softmax-sce", "sgd", backend)
    callbacks = [ForceKernelLoop()] if kernel_loop else []
    history = model.fit(X, y, epochs=2, batch_size=8, sample_weight=w, shuffle=False, verbose=0,
                        callbacks=callbacks)
    assert len(history.epoch) == 2 and model.optimizer.iterations == 10
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("kernel_loop", [False, True])
def test_the_weighted_training_loss_is_the_weighted_mean_that_evaluate_reports(backend, kernel_loop):
    """With sample weights the epoch's loss is sum(w * loss) / sum(w) over its rows, as
    evaluate and val_loss compute it (it was the row-count mean of the batches' weighted
    means, which changes with batch_size)."""
    X, y, _ = data("softmax-sce", n=40)
    w = np.where(y > 0, 10.0, 1.0)
    model = make("softmax-sce", "sgd", backend)
    # the weights all but stay: every batch sees the same model
    model.compile(optimizer=fn.optimizers.SGD(1e-12), loss="sparse_categorical_crossentropy")
    callbacks = [ForceKernelLoop()] if kernel_loop else []
    history = model.fit(X, y, epochs=1, batch_size=8, sample_weight=w, validation_data=(X, y, w),
                        verbose=0, callbacks=callbacks)
    np.testing.assert_allclose(history.history["loss"], history.history["val_loss"], rtol=1e-9)
    np.testing.assert_allclose(history.history["loss"][0], model.evaluate(X, y, sample_weight=w)["loss"],
                               rtol=1e-9)


def test_evaluate_with_a_zero_weight_chunk_does_not_depend_on_batch_size(backend):
    X, y, _ = data("softmax-sce", n=20)
    w = np.ones(len(X))
    w[3] = 0.0
    model = make("softmax-sce", "sgd", backend)
    whole = model.evaluate(X, y, sample_weight=w)["loss"]
    np.testing.assert_allclose(model.evaluate(X, y, sample_weight=w, batch_size=1)["loss"], whole, rtol=1e-9)


@pytest.mark.parametrize("zero", ["training", "validation"])
def test_validation_split_refuses_a_part_without_weight(zero):
    X, y, _ = data("softmax-sce", n=20)
    w = np.ones(len(X))
    if zero == "validation":
        w[16:] = 0.0
    else:
        w[:16] = 0.0
    model = make("softmax-sce", "sgd")
    with pytest.raises(ValueError, match=f"sample_weight: .*\\({zero}\\).*validation_split=0.2"):
        model.fit(X, y, epochs=1, sample_weight=w, validation_split=0.2, verbose=0)


@pytest.mark.parametrize("task", ["softmax-sce", "softmax-cce", "sigmoid-bce"])
def test_class_weight_is_a_sample_weight_per_class(backend, task):
    """fit(class_weight={class: weight}) trains as the sample weights of the rows' classes (the
    label, the argmax of a one-hot row, y > 0.5 for one output; a class left out weighs 1), as
    Keras's; the validation rows are not weighted."""
    X, y, k = data(task)
    labels = np.asarray(y).argmax(axis=1) if task == "softmax-cce" else np.asarray(y).astype(int)
    class_weight = {0: 0.5, 1: 3.0}  # class 2 (if any) left out
    by_hand = np.array([class_weight.get(int(c), 1.0) for c in labels])
    histories, weights = [], []
    for kwargs in ({"class_weight": class_weight}, {"sample_weight": by_hand}):
        model = make(task, "adam", backend)
        histories.append(model.fit(X, y, epochs=2, batch_size=32, validation_data=(X, y), verbose=0,
                                   **kwargs).history)
        weights.append(model.get_weights())
    for key in histories[0]:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-12, err_msg=key)
    for w0, w1 in zip(*weights):
        np.testing.assert_array_equal(w0, w1)


@pytest.mark.parametrize("class_weight,kwargs,match", [
    ({0: 1.0}, {"sample_weight": np.ones(203)}, "class_weight: cannot be combined with sample_weight"),
    ([1.0, 2.0], {}, "class_weight: expected a dict"),
    ({3: 1.0}, {}, r"class_weight: expected class indices in \[0, 3\)"),
    ({"0": 1.0}, {}, "class_weight: expected class indices"),
    ({0: -1.0}, {}, r"class_weight\[0\]: expected a finite weight >= 0, got -1.0"),
    ({0: float("inf")}, {}, r"class_weight\[0\]: expected a finite weight"),
    ({0: 0.0, 1: 0.0, 2: 0.0}, {}, "class_weight: every training row's class has weight 0"),
])
def test_bad_class_weight_is_a_clear_error(class_weight, kwargs, match):
    X, y, _ = data("softmax-sce")
    model = make("softmax-sce", "sgd")
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, y, epochs=1, class_weight=class_weight, verbose=0, **kwargs)


def test_class_weight_needs_a_classification_loss():
    X, y, _ = data("linear-mse")
    model = make("linear-mse", "sgd")
    with pytest.raises(ValueError, match="class_weight: needs a classification loss .* got mse"):
        model.fit(X, y, epochs=1, class_weight={0: 1.0}, verbose=0)


@pytest.mark.parametrize("targets", ["smoothed", "multilabel"])
def test_accuracy_of_several_outputs_is_categorical_on_every_path(backend, targets):
    # Keras's "accuracy" for several outputs: argmax of the outputs vs argmax of the
    # targets, whatever the targets' row sums (label smoothing, several labels).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    label = rng.integers(0, 3, 120)
    if targets == "smoothed":
        Y, output, loss = np.eye(3)[label] * 0.9 + 0.01, "softmax", "categorical_crossentropy"
    else:
        Y, output, loss = (rng.random((120, 3)) < 0.4).astype(float), "sigmoid", "binary_crossentropy"
    expected = None
    for force_kernel_loop in (False, True):
        model = fn.Sequential([fn.Dense(8, "tanh", input_dim=5), fn.Dense(3, output)],
                              backend=backend, dtype="float64", seed=2)
        model.compile(optimizer=fn.optimizers.SGD(1e-12), loss=loss, metrics=["accuracy"])
        truth = float(np.mean(model.predict(X).argmax(axis=1) == Y.argmax(axis=1)))
        expected = truth if expected is None else expected
        h = model.fit(X, Y, batch_size=16, shuffle=False, validation_data=(X, Y), verbose=0,
                      callbacks=[ForceKernelLoop()] if force_kernel_loop else [])
        assert h.history["accuracy"][0] == pytest.approx(truth)
        assert h.history["val_accuracy"][0] == pytest.approx(truth)
        for batch_size in (7, 1000):
            assert model.evaluate(X, Y, batch_size=batch_size)["accuracy"] == pytest.approx(truth)
    assert 0 < expected < 1

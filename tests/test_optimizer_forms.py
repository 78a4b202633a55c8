"""The teaching material's optimizer formulas, against steps computed by hand.

``Adagrad(initial_accumulator_value=0.0, epsilon_inside_sqrt=True)``,
``RMSprop(epsilon_inside_sqrt=True)``, ``Adam(epsilon_inside_sqrt=True)`` and
``SGD(momentum_form="classic")`` (with and without Nesterov), on every
backend, float32 and float64, through ``Optimizer.apply`` and through ``fit``
(the compiled ``train_batches`` path and the per-kernel path).  The expected
values are written out below with the arithmetic that gives them; epsilon is
0.01 so that where it sits changes the numbers.
"""
import numpy as np
import pytest

import fastnn as fn
from fastnn import _kernels as K
from fastnn._training import CompiledLoop

BACKENDS = K.available()
TOL = {"float32": dict(rtol=2e-6, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-12)}

P0 = [1.0, 2.0]
# Optimizer.apply: three different gradients.
GRADS = [[0.5, -1.0], [-0.25, 0.5], [0.5, -1.0]]

# -- AdaGrad (material): acc0 = 0; acc += g^2; p -= lr * g / sqrt(acc + eps); lr = 0.1, eps = 0.01
# step 1: acc = [0.25, 1.0];   sqrt(acc + eps) = [0.5099020, 1.0049876]
#         p = [1 - 0.05/0.5099020, 2 + 0.1/1.0049876] = [0.9019419, 2.0995037]
# step 2: acc = [0.3125, 1.25]; sqrt(acc + eps) = [0.5678908, 1.1224972]
#         p = [0.9019419 + 0.0440225, 2.0995037 - 0.0445435] = [0.9459645, 2.0549602]
# step 3: acc = [0.5625, 2.25]; sqrt(acc + eps) = [0.7566373, 1.5033296]
#         p = [0.9459645 - 0.0660819, 2.0549602 + 0.0665190] = [0.8798826, 2.1214792]
ADAGRAD_STEPS = [[0.901941932430908, 2.099503719020999],
                 [0.9459644777471893, 2.0549601787022618],
                 [0.8798826177016803, 2.1214791892260356]]
ADAGRAD_SLOTS = [[0.5625, 2.25]]

# -- RMSprop (material): ms = rho ms + (1 - rho) g^2; p -= lr * g / sqrt(ms + eps); rho = 0.9
# step 1: ms = [0.025, 0.1];       sqrt(ms + eps) = [0.1870829, 0.3316625]
#         p = [1 - 0.05/0.1870829, 2 + 0.1/0.3316625] = [0.7327388, 2.3015113]
# step 2: ms = [0.02875, 0.115];   sqrt(ms + eps) = [0.1968502, 0.3535534]
#         p = [0.7327388 + 0.1270001, 2.3015113 - 0.1414214] = [0.8597389, 2.1600900]
# step 3: ms = [0.050875, 0.2035]; sqrt(ms + eps) = [0.2467286, 0.4620606]
#         p = [0.8597389 - 0.2026518, 2.1600900 + 0.2164218] = [0.6570871, 2.3765118]
RMSPROP_STEPS = [[0.7327387580875756, 2.3015113445777637],
                 [0.8597388850877661, 2.160089988340454],
                 [0.6570870609978223, 2.3765118160153564]]
RMSPROP_SLOTS = [[0.050875, 0.2035]]

# -- Adam (material): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; m_hat = m / (1 - b1^t);
#    v_hat = v / (1 - b2^t); p -= lr * m_hat / sqrt(v_hat + eps); b1 = 0.9, b2 = 0.999
# step 1: m = [0.05, -0.1], v = [0.00025, 0.001]; m_hat = [0.5, -1], v_hat = [0.25, 1]
#         sqrt(v_hat + eps) = [0.5099020, 1.0049876]; p = [0.9019419, 2.0995037]
# step 2: m = [0.02, -0.04], v = [0.00031225, 0.001249]; m_hat = [0.1052632, -0.2105263],
#         v_hat = [0.1562031, 0.6248124]; sqrt(v_hat + eps) = [0.4076801, 0.7967512]
#         p = [0.9019419 - 0.0258200, 2.0995037 + 0.0264231] = [0.8761219, 2.1259268]
# step 3: m = [0.068, -0.136], v = [0.00056193775, 0.002247751];
#         m_hat = [0.2509225, -0.5018450], v_hat = [0.1875000, 0.7500001]
#         sqrt(v_hat + eps) = [0.4444097, 0.8717798]
#         p = [0.8761219 - 0.0564620, 2.1259268 + 0.0575656] = [0.8196599, 2.1834924]
ADAM_STEPS = [[0.9019419324309079, 2.099503719020999],
              [0.8761218970690499, 2.1259268141035936],
              [0.8196599242101519, 2.183492382542946]]
ADAM_SLOTS = [[0.068, -0.136], [0.00056193775, 0.002247751]]

MATERIAL = {
    "adagrad": (lambda lr: fn.optimizers.Adagrad(lr, initial_accumulator_value=0.0, epsilon=0.01,
                                                 epsilon_inside_sqrt=True), ADAGRAD_STEPS, ADAGRAD_SLOTS),
    "rmsprop": (lambda lr: fn.optimizers.RMSprop(lr, rho=0.9, epsilon=0.01, epsilon_inside_sqrt=True),
                RMSPROP_STEPS, RMSPROP_SLOTS),
    "adam": (lambda lr: fn.optimizers.Adam(lr, beta_1=0.9, beta_2=0.999, epsilon=0.01,
                                           epsilon_inside_sqrt=True), ADAM_STEPS, ADAM_SLOTS),
}

# -- Momentum with a schedule: lr_t = 0.1 * 0.5^t (0.1, 0.05, 0.025), mu = 0.9, g = [0.5, -1] each step.
# classic: h = mu h + g; p -= lr_t h
#   h1 = [0.5, -1];     p1 = [1 - 0.05, 2 + 0.1]          = [0.95, 2.1]
#   h2 = [0.95, -1.9];  p2 = [0.95 - 0.0475, 2.1 + 0.095] = [0.9025, 2.195]
#   h3 = [1.355, -2.71]; p3 = [0.9025 - 0.033875, 2.195 + 0.06775] = [0.868625, 2.26275]
CLASSIC_STEPS = [[0.95, 2.1], [0.9025, 2.195], [0.868625, 2.26275]]
# keras: v = mu v - lr_t g; p += v
#   v1 = [-0.05, 0.1];     p1 = [0.95, 2.1]
#   v2 = [-0.045 - 0.025, 0.09 + 0.05] = [-0.07, 0.14];     p2 = [0.88, 2.24]
#   v3 = [-0.063 - 0.0125, 0.126 + 0.025] = [-0.0755, 0.151]; p3 = [0.8045, 2.391]
KERAS_STEPS = [[0.95, 2.1], [0.88, 2.24], [0.8045, 2.391]]
# classic Nesterov (PyTorch's): h = mu h + g; p -= lr_t (g + mu h)
#   h1 = [0.5, -1];      p1 = [1, 2] - 0.1 * [0.95, -1.9]              = [0.905, 2.19]
#   h2 = [0.95, -1.9];   p2 = p1 - 0.05 * [1.355, -2.71]               = [0.83725, 2.3255]
#   h3 = [1.355, -2.71]; p3 = p2 - 0.025 * [1.7195, -3.439]            = [0.7942625, 2.411475]
CLASSIC_NESTEROV_STEPS = [[0.905, 2.19], [0.83725, 2.3255], [0.7942625, 2.411475]]

MOMENTUM = {
    "classic": (dict(momentum_form="classic"), CLASSIC_STEPS, [[1.355, -2.71]]),
    "keras": (dict(), KERAS_STEPS, [[-0.0755, 0.151]]),
    "classic-nesterov": (dict(momentum_form="classic", nesterov=True), CLASSIC_NESTEROV_STEPS,
                         [[1.355, -2.71]]),
}


def halving():
    return fn.schedules.ExponentialDecay(0.1, decay_rate=0.5, decay_steps=1)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


def close(actual, expected, dtype):
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), **TOL[dtype])


# ------------------------------------------------------------- Optimizer.apply
@pytest.mark.parametrize("name", MATERIAL)
def test_material_forms_by_apply(backend, dtype, name):
    make, steps, slots = MATERIAL[name]
    opt = make(0.1)
    p = np.array(P0, dtype)
    opt.build([p])
    kernels = fn.backends.resolve(backend)
    for g, expected in zip(GRADS, steps):
        opt.apply(kernels, [p], [np.array(g, dtype)])
        assert p.dtype == np.dtype(dtype)
        close(p, expected, dtype)
    for state, expected in zip(opt.get_state(), slots):
        close(state, expected, dtype)


@pytest.mark.parametrize("form", MOMENTUM)
def test_momentum_forms_by_apply(backend, dtype, form):
    kwargs, steps, velocity = MOMENTUM[form]
    opt = fn.optimizers.SGD(halving(), momentum=0.9, **kwargs)
    p = np.array(P0, dtype)
    opt.build([p])
    kernels = fn.backends.resolve(backend)
    for expected in steps:
        opt.apply(kernels, [p], [np.array([0.5, -1.0], dtype)])
        close(p, expected, dtype)
    close(opt.get_state()[0], velocity[0], dtype)


def test_the_keras_defaults_are_unchanged():
    """Default options take the Keras steps: epsilon outside the root, acc from 0.1."""
    kernels = fn.backends.resolve("numpy")
    # Adagrad(lr=0.1, eps=0.01): acc = 0.1 + 0.25 = 0.35; p = 1 - 0.1 * 0.5 / (sqrt(0.35) + 0.01)
    opt = fn.optimizers.Adagrad(0.1, epsilon=0.01)
    p = np.array([1.0])
    opt.build([p])
    opt.apply(kernels, [p], [np.array([0.5])])
    np.testing.assert_allclose(p, [1 - 0.05 / (0.35 ** 0.5 + 0.01)], rtol=1e-14)
    # RMSprop(lr=0.1, eps=0.01): ms = 0.025; p = 1 - 0.05 / (sqrt(0.025) + 0.01)
    opt = fn.optimizers.RMSprop(0.1, epsilon=0.01)
    p = np.array([1.0])
    opt.build([p])
    opt.apply(kernels, [p], [np.array([0.5])])
    np.testing.assert_allclose(p, [1 - 0.05 / (0.025 ** 0.5 + 0.01)], rtol=1e-14)
    # Adam(lr=0.1, eps=0.01), step 1: p = 1 - 0.1 * sqrt(0.001) / 0.1 * 0.05 / (sqrt(0.00025) + 0.01)
    opt = fn.optimizers.Adam(0.1, epsilon=0.01)
    p = np.array([1.0])
    opt.build([p])
    opt.apply(kernels, [p], [np.array([0.5])])
    np.testing.assert_allclose(p, [1 - 0.001 ** 0.5 * 0.05 / (0.00025 ** 0.5 + 0.01)], rtol=1e-12)
    for cls in (fn.optimizers.Adagrad, fn.optimizers.RMSprop, fn.optimizers.Adam):
        assert cls().get_config()["epsilon_inside_sqrt"] is False
        assert cls().kernel_spec()[1].epsilon_inside_sqrt is False
    assert fn.optimizers.Adagrad().initial_accumulator_value == 0.1
    assert fn.optimizers.SGD(momentum=0.9).momentum_form == "keras"
    assert fn.optimizers.SGD(momentum=0.9).kernel_spec()[1].classic_momentum is False


def test_momentum_forms_agree_at_a_constant_rate():
    """h = lr * (-v) while the rate is constant: the two forms take the same steps."""
    kernels = fn.backends.resolve("numpy")
    params = {}
    for form in ("keras", "classic"):
        opt = fn.optimizers.SGD(0.1, momentum=0.9, momentum_form=form)
        p = np.array(P0)
        opt.build([p])
        for g in GRADS:
            opt.apply(kernels, [p], [np.array(g)])
        params[form] = p
    np.testing.assert_allclose(params["classic"], params["keras"], rtol=1e-14)


# ------------------------------------------------------------------------ fit
class PerBatch(fn.callbacks.Callback):
    """A per-batch hook: fit then takes the per-kernel path."""

    def on_batch_end(self, batch, logs=None):
        pass


def fit_three_steps(optimizer, backend, dtype, per_kernel):
    """Three updates of W (2, 1) with gradient [0.5, -1]: one linear unit, no bias, MAE
    against a far target (d loss / dW = x * sign(a - y) = x), three equal rows, batch 1."""
    model = fn.Sequential([fn.Dense(1, input_dim=2, use_bias=False)], backend=backend, dtype=dtype)
    model.compile(optimizer=optimizer, loss="mae")
    model.set_weights([np.array([[P0[0]], [P0[1]]])])
    X = np.tile([[0.5, -1.0]], (3, 1))
    y = np.full((3, 1), -100.0)
    callbacks = [PerBatch()] if per_kernel else []
    assert CompiledLoop.supports(model, callbacks, y) != per_kernel
    model.fit(X, y, epochs=1, batch_size=1, callbacks=callbacks, verbose=0)
    assert model.optimizer.iterations == 3
    return model


def constant_gradient_steps(name):
    """The hand-computed steps above again, for a gradient of [0.5, -1] at every step."""
    return {
        # AdaGrad: acc = [0.25, 1], [0.5, 2], [0.75, 3]; p -= 0.1 * g / sqrt(acc + 0.01)
        #   sqrt(acc + eps) = [0.5099020, 1.0049876], [0.7141428, 1.4177447], [0.8717798, 1.7349352]
        "adagrad": [1 - 0.05 / 0.26 ** 0.5 - 0.05 / 0.51 ** 0.5 - 0.05 / 0.76 ** 0.5,
                    2 + 0.1 / 1.01 ** 0.5 + 0.1 / 2.01 ** 0.5 + 0.1 / 3.01 ** 0.5],
        # RMSprop: ms = [0.025, 0.1], [0.0475, 0.19], [0.06775, 0.271]
        "rmsprop": [1 - 0.05 / 0.035 ** 0.5 - 0.05 / 0.0575 ** 0.5 - 0.05 / 0.07775 ** 0.5,
                    2 + 0.1 / 0.11 ** 0.5 + 0.1 / 0.2 ** 0.5 + 0.1 / 0.281 ** 0.5],
        # Adam: with a constant gradient m_hat = g and v_hat = g^2 at every step, so each step is
        #   0.1 * g / sqrt(g^2 + 0.01) = [0.0980581, -0.0995037]
        "adam": [1 - 3 * 0.05 / 0.26 ** 0.5, 2 + 3 * 0.1 / 1.01 ** 0.5],
    }[name]


@pytest.mark.parametrize("per_kernel", [False, True], ids=["compiled", "per-kernel"])
@pytest.mark.parametrize("name", MATERIAL)
def test_material_forms_by_fit(backend, dtype, name, per_kernel):
    make, _, _ = MATERIAL[name]
    model = fit_three_steps(make(0.1), backend, dtype, per_kernel)
    close(model.get_weights()[0][:, 0], constant_gradient_steps(name), dtype)


@pytest.mark.parametrize("per_kernel", [False, True], ids=["compiled", "per-kernel"])
@pytest.mark.parametrize("form", MOMENTUM)
def test_momentum_forms_by_fit_with_a_schedule(backend, dtype, form, per_kernel):
    kwargs, steps, velocity = MOMENTUM[form]
    model = fit_three_steps(fn.optimizers.SGD(halving(), momentum=0.9, **kwargs), backend, dtype, per_kernel)
    close(model.get_weights()[0][:, 0], steps[-1], dtype)
    close(model.optimizer.get_state()[0][:, 0], velocity[0], dtype)


def test_classic_and_keras_momentum_differ_under_a_schedule(backend):
    finals = {form: fit_three_steps(fn.optimizers.SGD(halving(), momentum=0.9, momentum_form=form),
                                    backend, "float64", False).get_weights()[0][:, 0]
              for form in ("keras", "classic")}
    np.testing.assert_allclose(finals["classic"], CLASSIC_STEPS[-1], rtol=1e-12)
    np.testing.assert_allclose(finals["keras"], KERAS_STEPS[-1], rtol=1e-12)
    assert np.abs(finals["classic"] - finals["keras"]).min() > 0.05


# ------------------------------------------------- configuration and saving
@pytest.mark.parametrize("optimizer", [
    fn.optimizers.Adagrad(0.05, initial_accumulator_value=0.0, epsilon_inside_sqrt=True),
    fn.optimizers.RMSprop(0.01, epsilon_inside_sqrt=True),
    fn.optimizers.Adam(0.01, epsilon_inside_sqrt=True),
    fn.optimizers.SGD(0.05, momentum=0.9, momentum_form="classic"),
    fn.optimizers.SGD(0.05, momentum=0.9, nesterov=True, momentum_form="classic"),
], ids=["adagrad", "rmsprop", "adam", "classic", "classic-nesterov"])
def test_forms_round_trip_through_a_model_file(tmp_path, optimizer):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 1))
    config = optimizer.get_config()
    assert config == type(optimizer)(**config).get_config()
    model = fn.Sequential([fn.Dense(4, activation="tanh", input_dim=3), fn.Dense(1)],
                          backend="numpy", dtype="float64", seed=0)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = fn.load_model(tmp_path / "m.fastnn")
    assert loaded.optimizer.get_config() == config
    model.fit(X, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(X, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_options_are_refused():
    with pytest.raises(TypeError, match="epsilon_inside_sqrt"):
        fn.optimizers.Adam(epsilon_inside_sqrt=1)
    with pytest.raises(TypeError, match="epsilon_inside_sqrt"):
        fn.optimizers.RMSprop(epsilon_inside_sqrt="yes")
    with pytest.raises(TypeError, match="epsilon_inside_sqrt"):
        fn.optimizers.Adagrad(epsilon_inside_sqrt=None)
    with pytest.raises(ValueError, match="momentum_form"):
        fn.optimizers.SGD(momentum=0.9, momentum_form="pytorch")
    with pytest.raises(ValueError, match="momentum_form"):
        fn.optimizers.SGD(momentum=0.9, momentum_form=1)
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        fn.optimizers.Adagrad(initial_accumulator_value=-0.1)
    assert fn.optimizers.Adagrad(initial_accumulator_value=0.0).initial_accumulator_value == 0.0

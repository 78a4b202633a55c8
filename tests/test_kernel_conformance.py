"""Every kernel of every compiled backend against the NumPy reference backend.

Tolerances (relative to the reference, with an absolute floor of the same
size for values near zero): float32 ``RTOL[float32]``, float64
``RTOL[float64]``.  Shapes include a single row, odd sizes, sizes that are
not multiples of any block size, and extreme values (large logits, exact
zeros for ReLU).
"""
import numpy as np
import pytest

from fastnn import _kernels as K
from fastnn._kernels import codes
from fastnn._kernels import numpy as ref

RTOL = {np.float32: 2e-5, np.float64: 1e-11}
COMPILED = [name for name in ("numba", "cython") if name in K.BACKEND_MODULES]
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 3, 2), (17, 33, 9), (64, 129, 31), (130, 784, 16)]
# Every activation code, by its registry name, with a parameter where it has one.
ALPHAS = {"LEAKY_RELU": 0.1, "ELU": 1.0}
ACTIVATIONS = {name.lower(): (code, ALPHAS.get(name, 0.0)) for code, name in enumerate(codes.ACTIVATIONS)}
LOSSES = {
    "binary_crossentropy": K.BINARY_CROSSENTROPY,
    "categorical_crossentropy": K.CATEGORICAL_CROSSENTROPY,
    "sparse_categorical_crossentropy": K.SPARSE_CATEGORICAL_CROSSENTROPY,
    "mse": K.MSE,
    "half_squared_error": K.HALF_SQUARED_ERROR,
    "mae": K.MAE,
}


@pytest.fixture(params=COMPILED)
def backend(request):
    try:
        return K.load(request.param)
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def close(actual, expected, dtype, scale=1.0):
    tol = RTOL[dtype] * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_dense_forward(backend, dtype, shape, act, bias):
    n, n_in, n_out = shape
    rng = np.random.default_rng(0)
    X, W = rand(rng, (n, n_in), dtype), rand(rng, (n_in, n_out), dtype, 0.3)
    b = rand(rng, n_out, dtype) if bias else None
    code, alpha = ACTIVATIONS[act]
    Z0, A0 = np.empty((n, n_out), dtype), np.empty((n, n_out), dtype)
    Z1, A1 = np.full((n, n_out), np.nan, dtype), np.full((n, n_out), np.nan, dtype)
    ref.dense_forward(X, W, b, code, alpha, Z0, A0)
    backend.dense_forward(X, W, b, code, alpha, Z1, A1)
    scale = max(1.0, np.sqrt(n_in))  # accumulated rounding grows with the dot length
    close(Z1, Z0, dtype, scale)
    close(A1, A0, dtype, scale)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_extremes(backend, dtype, act):
    """Large logits, exact zeros and tiny values: finite and equal to the reference."""
    code, alpha = ACTIVATIONS[act]
    Z = np.array([[-1e4, -50.0, -1.0, 0.0, 1e-30, 1.0, 50.0, 1e4]] * 3, dtype)
    A0, A1 = np.empty_like(Z), np.empty_like(Z)
    Z0c, Z1c = np.empty_like(Z), np.empty_like(Z)
    ref.dense_forward(Z, np.eye(Z.shape[1], dtype=dtype), None, code, alpha, Z0c, A0)
    backend.dense_forward(Z, np.eye(Z.shape[1], dtype=dtype), None, code, alpha, Z1c, A1)
    assert np.all(np.isfinite(A1))
    close(A1, A0, dtype)
    dA = np.linspace(-1, 1, Z.size).reshape(Z.shape).astype(dtype)
    d0, d1 = np.empty_like(Z), np.empty_like(Z)
    ref.activation_backward(code, alpha, Z, A0, dA, d0)
    backend.activation_backward(code, alpha, Z, A1, dA, d1)
    assert np.all(np.isfinite(d1))
    close(d1, d0, dtype)


@pytest.mark.parametrize("name", ["numpy"] + COMPILED)
def test_float64_gelu_keeps_its_left_tail(name):
    """GELU's z * Phi(z) and Phi(z) + z * phi(z) relative to exact float64 math down to
    z = -37 (where Phi underflows): 1 + erf(z / sqrt 2) would cancel to 0 below z = -8."""
    from scipy.special import ndtr

    backend = ref if name == "numpy" else K.load(name)
    z = -np.linspace(0.5, 37.0, 600).reshape(-1, 8)
    A, dZ, Zc = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    backend.dense_forward(z, np.eye(8), None, K.GELU, 0.0, Zc, A)
    backend.activation_backward(K.GELU, 0.0, z, A, np.ones_like(z), dZ)
    phi = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(A, z * ndtr(z), rtol=1e-13, atol=0)
    np.testing.assert_allclose(dZ, ndtr(z) + z * phi, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (33, 17), (128, 10)], ids=str)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_backward(backend, dtype, shape, act):
    rng = np.random.default_rng(1)
    code, alpha = ACTIVATIONS[act]
    Z = rand(rng, shape, dtype, 2.0)
    Z[0, 0] = 0.0  # exact zero: ReLU-family derivative is taken as 0 there
    A = np.empty_like(Z)
    ref.dense_forward(Z, np.eye(shape[1], dtype=dtype), None, code, alpha, np.empty_like(Z), A)
    dA = rand(rng, shape, dtype)
    d0, d1 = np.empty_like(Z), np.empty_like(Z)
    ref.activation_backward(code, alpha, Z, A, dA, d0)
    backend.activation_backward(code, alpha, Z, A, dA, d1)
    close(d1, d0, dtype)
    in_place = dA.copy()
    backend.activation_backward(code, alpha, Z, A, in_place, in_place)  # dZ_out may alias dA
    close(in_place, d0, dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("first_layer", [False, True])
def test_dense_backward(backend, dtype, shape, l2, first_layer):
    n, n_in, n_out = shape
    rng = np.random.default_rng(2)
    X, W, dZ = rand(rng, (n, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, (n, n_out), dtype)
    outs = []
    for impl in (ref, backend):
        dW, db = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
        dX = None if first_layer else np.empty((n, n_in), dtype)
        impl.dense_backward(X, W, dZ, l2, dW, db, dX)
        outs.append((dW, db, dX))
    scale = max(1.0, np.sqrt(max(n, n_out)))
    close(outs[1][0], outs[0][0], dtype, scale)
    close(outs[1][1], outs[0][1], dtype, scale)
    if not first_layer:
        close(outs[1][2], outs[0][2], dtype, scale)
    dW = np.empty((n_in, n_out), dtype)
    backend.dense_backward(X, W, dZ, l2, dW, None, None)  # no bias, no input gradient
    close(dW, outs[0][0], dtype, scale)


@pytest.mark.parametrize("n,units,pieces", [(1, 1, 2), (7, 3, 4), (64, 16, 3)])
def test_maxout(backend, dtype, n, units, pieces):
    rng = np.random.default_rng(3)
    Z = rand(rng, (n, units * pieces), dtype)
    Z[0, :pieces] = 1.0  # a tie: the first piece wins
    A0, A1 = np.empty((n, units), dtype), np.empty((n, units), dtype)
    i0, i1 = np.empty((n, units), np.int64), np.empty((n, units), np.int64)
    ref.maxout_forward(Z, pieces, A0, i0)
    backend.maxout_forward(Z, pieces, A1, i1)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(A1, A0)
    dA = rand(rng, (n, units), dtype)
    d0, d1 = np.empty_like(Z), np.full_like(Z, np.nan)
    ref.maxout_backward(dA, i0, pieces, d0)
    backend.maxout_backward(dA, i1, pieces, d1)
    np.testing.assert_array_equal(d1, d0)


def _targets(rng, loss, n, k, dtype):
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, k, n).astype(np.int64)
    if loss == "categorical_crossentropy":
        return np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, (n, k)).astype(dtype)
    return rand(rng, (n, k), dtype)


# Cross-entropies need probabilities: compile() rejects them after linear or ReLU outputs.
LOSS_PAIRS = [(loss, act) for loss in LOSSES for act in ("softmax", "sigmoid", "linear", "relu")
              if not loss.endswith("crossentropy") or act in ("softmax", "sigmoid")]


@pytest.mark.parametrize("loss,act", LOSS_PAIRS)
@pytest.mark.parametrize("n,k", [(1, 2), (9, 3), (128, 10)])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss(backend, dtype, loss, act, n, k, weighted):
    rng = np.random.default_rng(4)
    code, alpha = ACTIVATIONS[act]
    Z = rand(rng, (n, k), dtype, 3.0)
    Z[0, 0] = 60.0  # a large logit: softmax saturates, the loss must stay finite
    A = np.empty_like(Z)
    ref.dense_forward(Z, np.eye(k, dtype=dtype), None, code, alpha, np.empty_like(Z), A)
    Y = _targets(rng, loss, n, k, dtype)
    w = rng.uniform(0.1, 2.0, n).astype(dtype) if weighted else None
    v0 = ref.loss_value(LOSSES[loss], A, Y, w)
    v1 = backend.loss_value(LOSSES[loss], A, Y, w)
    assert np.isfinite(v1)
    assert v1 == pytest.approx(v0, rel=RTOL[dtype] * 10, abs=RTOL[dtype] * 10)
    d0, d1 = np.empty_like(Z), np.empty_like(Z)
    ref.loss_output_delta(LOSSES[loss], code, alpha, Z, A, Y, w, d0)
    backend.loss_output_delta(LOSSES[loss], code, alpha, Z, A, Y, w, d1)
    assert np.all(np.isfinite(d1))
    close(d1, d0, dtype, scale=10 if dtype == np.float32 else 1e3)


@pytest.mark.parametrize("shape", [(1,), (5,), (60, 784), (7, 3)], ids=str)
def test_gather_rows(backend, dtype, shape):
    rng = np.random.default_rng(5)
    X = rand(rng, shape, dtype)
    idx = rng.permutation(shape[0]).astype(np.int64)[: max(1, shape[0] // 2)]
    out = np.empty((len(idx),) + shape[1:], dtype)
    backend.gather_rows(X, idx, out)
    np.testing.assert_array_equal(out, X[idx])
    labels = rng.integers(0, 10, shape[0]).astype(np.int64)
    lab_out = np.empty(len(idx), np.int64)
    backend.gather_rows(labels, idx, lab_out)
    np.testing.assert_array_equal(lab_out, labels[idx])


OPTIMIZERS = {
    "sgd": ("sgd_update", dict(lr=0.1, momentum=0.0, nesterov=False), 0),
    "momentum": ("sgd_update", dict(lr=0.1, momentum=0.9, nesterov=False), 1),
    "nesterov": ("sgd_update", dict(lr=0.1, momentum=0.9, nesterov=True), 1),
    "adagrad": ("adagrad_update", dict(lr=0.01, epsilon=1e-7), 1),
    "rmsprop": ("rmsprop_update", dict(lr=0.001, rho=0.9, epsilon=1e-7), 1),
    "adam": ("adam_update", dict(lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3), 2),
}
# The teaching material's forms: the same kernels with their last (optional) argument,
# ``classic`` for sgd_update and ``epsilon_inside_sqrt`` for the others, set.
FORMS = {
    "momentum_classic": OPTIMIZERS["momentum"],
    "nesterov_classic": OPTIMIZERS["nesterov"],
    "adagrad_eps_inside": ("adagrad_update", dict(lr=0.01, epsilon=1e-3), 1),
    "rmsprop_eps_inside": ("rmsprop_update", dict(lr=0.001, rho=0.9, epsilon=1e-3), 1),
    "adam_eps_inside": ("adam_update", dict(lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-3, step=3), 2),
}
ALL_OPTIMIZERS = {**{k: v + (False,) for k, v in OPTIMIZERS.items()},
                  **{k: v + (True,) for k, v in FORMS.items()}}


def _run_update(kernels, opt, p, g, slots):
    name, hyper, n_slots, form = ALL_OPTIMIZERS[opt]
    args = list(hyper.values())
    extra = [True] if form else []  # the default forms are called without the argument
    if name == "sgd_update":
        getattr(kernels, name)(p, g, *args, slots[0] if slots else None, *extra)
    else:
        getattr(kernels, name)(p, g, *args, *slots, *extra)


@pytest.mark.parametrize("opt", ALL_OPTIMIZERS)
@pytest.mark.parametrize("shape", [(1,), (10,), (7, 3), (784, 128), (100_003,)], ids=str)
def test_optimizer_update(backend, dtype, opt, shape):
    n_slots = ALL_OPTIMIZERS[opt][2]
    rng = np.random.default_rng(6)
    p0, g = rand(rng, shape, dtype), rand(rng, shape, dtype)
    slots0 = [np.abs(rand(rng, shape, dtype)) for _ in range(n_slots)]
    p1, slots1 = p0.copy(), [s.copy() for s in slots0]
    _run_update(ref, opt, p0, g, slots0)
    _run_update(backend, opt, p1, g, slots1)
    close(p1, p0, dtype)
    for s1, s0 in zip(slots1, slots0):
        close(s1, s0, dtype)
    assert p1.dtype == dtype


@pytest.mark.parametrize("opt", FORMS)
def test_forms_differ_from_the_defaults(dtype, opt):
    """The flag reaches the reference kernel: with it the parameter moves differently.
    (Classic momentum differs from Keras's once the velocity is not zero and lr != 1.)"""
    name, hyper, n_slots, _ = ALL_OPTIMIZERS[opt]
    rng = np.random.default_rng(9)
    p0, g = rand(rng, (50,), dtype), rand(rng, (50,), dtype)
    slots0 = [np.abs(rand(rng, (50,), dtype)) * 1e-3 for _ in range(n_slots)]
    p1, slots1 = p0.copy(), [s.copy() for s in slots0]
    _run_update(ref, opt, p0, g, slots0)
    args = list(hyper.values())
    first_slots = slots1[:1] if name == "sgd_update" else slots1
    getattr(ref, name)(p1, g, *args, *first_slots)  # without the flag: the Keras form
    assert not np.allclose(p0, p1, rtol=1e-6, atol=0)


@pytest.mark.parametrize("opt", ALL_OPTIMIZERS)
def test_cython_updates_equal_the_reference_bit_for_bit(dtype, opt):
    """The Cython update loops (one clone per x86 level, no fused multiply-adds) do the
    reference's operations in its order, so whichever clone this CPU runs, the result is
    the reference's exactly."""
    if "cython" not in K.available():
        pytest.skip("the Cython backend is not built")
    cy = K.load("cython")
    n_slots = ALL_OPTIMIZERS[opt][2]
    rng = np.random.default_rng(8)
    p0, g = rand(rng, (100_003,), dtype), rand(rng, (100_003,), dtype)
    slots0 = [np.abs(rand(rng, (100_003,), dtype)) for _ in range(n_slots)]
    p1, slots1 = p0.copy(), [s.copy() for s in slots0]
    _run_update(ref, opt, p0, g, slots0)
    _run_update(cy, opt, p1, g, slots1)
    np.testing.assert_array_equal(p1, p0)
    for s1, s0 in zip(slots1, slots0):
        np.testing.assert_array_equal(s1, s0)


def test_non_contiguous_inputs_are_rejected_or_handled(backend, dtype):
    """A transposed (Fortran-ordered) X gives the reference result or a clear error."""
    rng = np.random.default_rng(7)
    X = np.asfortranarray(rand(rng, (9, 5), dtype))
    W = rand(rng, (5, 4), dtype)
    Z0, A0 = np.empty((9, 4), dtype), np.empty((9, 4), dtype)
    ref.dense_forward(np.ascontiguousarray(X), W, None, K.RELU, 0.0, Z0, A0)
    Z1, A1 = np.empty((9, 4), dtype), np.empty((9, 4), dtype)
    try:
        backend.dense_forward(X, W, None, K.RELU, 0.0, Z1, A1)
    except (ValueError, TypeError) as exc:
        assert "contiguous" in str(exc).lower() or "buffer" in str(exc).lower()
    else:
        close(A1, A0, dtype)

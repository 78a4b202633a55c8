"""Numba-specific checks: the vectorizable transcendentals, float32 staying
float32 in the compiled loops, laziness and ``warmup``.

The kernels themselves are held to the NumPy reference by
``test_kernel_conformance.py``; these tests cover what only this backend has.
"""
import re
import subprocess
import sys

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from fastnn import _kernels as K  # noqa: E402
from fastnn._kernels import numba as N  # noqa: E402
from fastnn._kernels.numba import _activations, _math, _warmup  # noqa: E402

# Compile options of the backend's elementwise kernels, for fresh (uncached)
# copies whose LLVM IR can be inspected.
JIT_OPTIONS = dict(fastmath={"contract"}, error_model="numpy")


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


# ----------------------------------------------- vectorizable transcendentals
@numba.njit
def _apply(which, x, out):
    for i in range(x.size):
        if which == 0:
            out[i] = _math._exp(x[i])
        elif which == 1:
            out[i] = _math._expm1(x[i])
        elif which == 2:
            out[i] = _math._tanh(x[i])
        else:
            out[i] = _math._log1p_unit(x[i])


MATH = {"exp": (0, np.exp), "expm1": (1, np.expm1), "tanh": (2, np.tanh), "log1p_unit": (3, np.log1p)}


def _domain(name, dtype):
    rng = np.random.default_rng(12)
    if name == "log1p_unit":
        return np.concatenate([np.linspace(0, 1, 10001), rng.uniform(0, 1e-6, 1000)]).astype(dtype)
    big = 88.0 if dtype == np.float32 else 709.0
    return np.concatenate(
        [np.linspace(-big, big, 20001), rng.standard_normal(5000), rng.standard_normal(1000) * 1e-4]
    ).astype(dtype)


@pytest.mark.parametrize("name", MATH)
def test_transcendentals_within_a_few_ulps(dtype, name):
    which, np_fn = MATH[name]
    x = _domain(name, dtype)
    out = np.empty_like(x)
    _apply(which, x, out)
    exact = np_fn(x.astype(np.float64))  # float64 libm: exact enough for a float32 check
    keep = np.abs(exact) > np.finfo(dtype).tiny  # ulps are not meaningful for subnormals
    ulp = np.spacing(np.abs(exact[keep]).astype(dtype)).astype(np.float64)
    err = np.abs(out[keep].astype(np.float64) - exact[keep]) / ulp
    assert err.max() <= 4, f"max error {err.max():.1f} ulps at x={x[keep][np.argmax(err)]!r}"


@pytest.mark.parametrize("name", MATH)
def test_transcendentals_special_values(dtype, name):
    which, np_fn = MATH[name]
    info = np.finfo(dtype)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, info.tiny, -info.tiny, 1e4, -1e4], dtype)
    if name == "log1p_unit":
        x = np.array([0.0, info.tiny, 1.0, np.nan], dtype)
    out = np.empty_like(x)
    _apply(which, x, out)
    with np.errstate(all="ignore"):
        expected = np_fn(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=4 * info.eps, atol=0)


@numba.njit
def _norm_cdf_loop(x, out):
    for i in range(x.size):
        out[i] = _math._norm_cdf(x[i])


def test_norm_cdf_for_gelu(dtype):
    """GELU's Phi: float32 uses a fitted erfc (vectorizable), float64 libm's erfc."""
    from scipy.special import ndtr

    x = np.linspace(-12, 12, 48001).astype(dtype)
    out = np.empty_like(x)
    _norm_cdf_loop(x, out)
    exact = ndtr(x.astype(np.float64))
    abs_tol = 3e-7 if dtype == np.float32 else 1e-15
    assert np.abs(out - exact).max() <= abs_tol
    if dtype == np.float32:  # the left tail keeps its relative accuracy (no 1 + erf)
        tail = (x > -5.5) & (x < -3)
        assert (np.abs(out - exact)[tail] / exact[tail]).max() <= 2e-6
    special = np.array([np.nan, np.inf, -np.inf, 0.0], dtype)
    _norm_cdf_loop(special, out[:4])
    np.testing.assert_array_equal(out[:4], [np.nan, 1.0, 0.0, 0.5])


def test_exp_underflows_gradually_to_zero():
    for dtype, lo in ((np.float32, -103.0), (np.float64, -744.0)):
        x = np.linspace(lo, lo + 20, 2001).astype(dtype)  # results are subnormal or tiny normals
        out = np.empty_like(x)
        _apply(0, x, out)
        expected = np.exp(x)
        info = np.finfo(dtype)
        np.testing.assert_allclose(out, expected, rtol=4 * info.eps, atol=2 * info.smallest_subnormal)
        assert np.all(np.diff(out) >= 0)  # monotone through the subnormal range


# ------------------------------------------------- float32 stays float32, SIMD
def _fresh_ir(kernel, *args):
    """LLVM IR of a fresh, uncached compile of ``kernel`` for ``args``."""
    fresh = numba.njit(**JIT_OPTIONS)(getattr(kernel, "py_func", kernel))
    fresh(*args)
    return fresh.inspect_llvm(fresh.signatures[0])


_LIBM = re.compile(r"^(llvm\.)?(exp|expm1|log|log1p|tanh)(f|\.|$)")


def _libm_calls(ir):
    """Scalar math-library calls in ``ir``: each one keeps its loop (mostly) scalar."""
    return sorted({name for name in re.findall(r"call [^@]*@([\w.]+)", ir) if _LIBM.match(name)})


# The activation loops as the training loop compiles them: the code a constant.
def _sigmoid_forward(alpha, z, a):
    _activations._act_flat(K.SIGMOID, alpha, z, a)


def _sigmoid_backward(alpha, z, a, d):
    _activations._dact_flat(K.SIGMOID, alpha, z, a, d)


def _sigmoid_backward_out(alpha, z, a, src, d):
    _activations._dact_flat_out(K.SIGMOID, alpha, z, a, src, d)


def _float32_kernel_cases():
    z = np.linspace(-3, 3, 64, dtype=np.float32)
    a, d = np.empty_like(z), np.ones_like(z)
    Z = z.reshape(8, 8)
    p = np.zeros((7, 9), np.float32)
    alpha = np.float32(0.1)
    return [
        ("activation-forward", _sigmoid_forward, (alpha, z, a)),
        ("activation-backward", _sigmoid_backward, (alpha, z, a, d.copy())),
        ("activation-backward-out", _sigmoid_backward_out, (alpha, z, a, d, d.copy())),
        ("softmax", _activations._softmax_rows, (Z, np.empty_like(Z))),
        ("sgd", N.sgd_update, (p, p.copy(), 0.1, 0.9, True, p.copy())),
        ("adagrad", N.adagrad_update, (p, p.copy(), 0.1, 1e-7, p.copy())),
        ("rmsprop", N.rmsprop_update, (p, p.copy(), 0.1, 0.9, 1e-7, p.copy())),
        ("adam", N.adam_update, (p, p.copy(), 0.1, 0.9, 0.999, 1e-7, 3, p.copy(), p.copy())),
    ]


@pytest.mark.parametrize("case", _float32_kernel_cases(), ids=lambda c: c[0])
def test_float32_kernels_never_widen(case):
    """No float32 value is converted to float64 (``fpext``) anywhere in the
    kernel: a Python float constant or an uncast float64 hyperparameter in a
    loop would do exactly that.  And the loops have SIMD code."""
    name, kernel, args = case
    ir = _fresh_ir(kernel, *args)
    assert "fpext float" not in ir
    assert re.search(r"<\d+ x float>", ir), "no float32 loop vectorized"
    assert not _libm_calls(ir)


def _loop(fn, n_args):
    """A loop over ``x`` calling ``fn`` with ``n_args`` arguments: ``(x)``, a
    forward ``(x, alpha)`` or a derivative ``(x, a, alpha)`` (``a = x`` here)."""
    if n_args == 1:
        def loop(x, alpha, out):
            for i in range(x.size):
                out[i] = fn(x[i])
    elif n_args == 2:
        def loop(x, alpha, out):
            for i in range(x.size):
                out[i] = fn(x[i], alpha)
    else:
        def loop(x, alpha, out):
            for i in range(x.size):
                out[i] = fn(x[i], x[i], alpha)
    return numba.njit(**JIT_OPTIONS)(loop)


# name -> (function, its number of arguments): the math helpers and every
# activation's generated forward and derivative.
SCALAR_FUNCTIONS = {
    "exp": (_math._exp, 1),
    "expm1": (_math._expm1, 1),
    "tanh": (_math._tanh, 1),
    "log1p_unit": (_math._log1p_unit, 1),
    "norm_cdf": (_math._norm_cdf, 1),
    "sigmoid": (_activations._sigmoid, 1),
}
for _code, (_forward, _derivative) in _activations.ELEMENTWISE.items():
    SCALAR_FUNCTIONS[f"{K.ACTIVATIONS[_code].lower()}-forward"] = (_forward, 2)
    SCALAR_FUNCTIONS[f"{K.ACTIVATIONS[_code].lower()}-derivative"] = (_derivative, 3)
# float64 GELU calls libm's erf (scalar), like the reference.
_SCALAR_IN_FLOAT64 = {"norm_cdf", "gelu-forward", "gelu-derivative"}


@pytest.mark.parametrize("dtype, name", [
    pytest.param(dtype, name, id=f"{np.dtype(dtype).name}-{name}")
    for dtype in (np.float32, np.float64) for name in SCALAR_FUNCTIONS
    if not (dtype == np.float64 and name in _SCALAR_IN_FLOAT64)])
def test_elementwise_loops_vectorize(dtype, name):
    """A loop over each math helper and each activation's forward and derivative
    compiles to SIMD code with no libm call left in it: without SVML, LLVM
    "vectorizes" ``llvm.exp`` into one scalar call per lane."""
    fn = _loop(*SCALAR_FUNCTIONS[name])
    x = np.linspace(0, 1, 64).astype(dtype)
    fn(x, dtype(0.1), np.empty_like(x))
    ir = fn.inspect_llvm(fn.signatures[0])
    lane = "float" if dtype == np.float32 else "double"
    assert re.search(rf"<\d+ x {lane}>", ir), f"the {name} loop did not vectorize"
    assert not _libm_calls(ir)
    if dtype == np.float32:
        assert "fpext float" not in ir


# ----------------------------------------------------------- argument checks
def test_gather_rows_checks_indices():
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = np.empty((2, 3), np.float32)
    N.gather_rows(X, np.array([-1, 0], np.int64), out)  # negative indices count from the end
    np.testing.assert_array_equal(out, X[[-1, 0]])
    with pytest.raises(IndexError):
        N.gather_rows(X, np.array([0, 4], np.int64), out)
    with pytest.raises(ValueError):
        N.gather_rows(X, np.array([0, 1, 2], np.int64), out)


def test_sparse_labels_out_of_range_raise():
    A = np.full((2, 3), 1 / 3, np.float64)
    with pytest.raises(IndexError):
        N.loss_value(K.SPARSE_CATEGORICAL_CROSSENTROPY, A, np.array([0, 3], np.int64), None)
    with pytest.raises(IndexError):
        N.loss_output_delta(K.SPARSE_CATEGORICAL_CROSSENTROPY, K.SOFTMAX, 0.0, A, A,
                            np.array([-1, 0], np.int64), None, np.empty_like(A))


def test_shape_mismatches_raise():
    X, W = np.ones((3, 4)), np.ones((4, 2))
    with pytest.raises(ValueError):
        N.dense_forward(X, W, None, K.RELU, 0.0, np.empty((3, 2)), np.empty((3, 3)))
    with pytest.raises(ValueError):
        N.dense_forward(X, W, np.zeros(3), K.RELU, 0.0, np.empty((3, 2)), np.empty((3, 2)))
    with pytest.raises(ValueError):
        N.adam_update(np.ones(3), np.ones(4), 0.1, 0.9, 0.999, 1e-7, 1, np.ones(3), np.ones(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_nt_is_the_input_gradient_read_in_place(dtype):
    """The training loop's input gradient ``dZ @ W.T`` on row views of larger arrays
    (a thread's rows of the batch) equals NumPy's, and bad shapes or layouts raise."""
    from fastnn._kernels.numba._blas import matmul_nt

    rng = np.random.default_rng(0)
    dZ = rng.standard_normal((40, 24)).astype(dtype)
    W = rng.standard_normal((33, 24)).astype(dtype)
    out = np.full((40, 33), np.nan, dtype)
    matmul_nt(dZ[5:21], W, out[5:21])
    np.testing.assert_allclose(out[5:21], dZ[5:21] @ W.T, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.isnan(out[:5]).all() and np.isnan(out[21:]).all()  # other rows untouched
    empty = np.full((4, 33), np.nan, dtype)
    matmul_nt(np.zeros((4, 0), dtype), np.zeros((33, 0), dtype), empty)
    assert (empty == 0).all()  # an empty inner dimension gives zeros
    with pytest.raises(ValueError, match="matmul_nt: expected"):
        matmul_nt(dZ, W, np.empty((40, 32), dtype))
    with pytest.raises(ValueError, match="contiguous rows"):
        matmul_nt(dZ[:, ::2], W[:, ::2], np.empty((40, 33), dtype))


def test_nan_propagates_through_activations(dtype):
    """fastmath keeps NaN meaningful: a NaN pre-activation gives a NaN output."""
    X = np.array([[np.nan], [-1.0], [1.0]], dtype)  # n_in = 1: the NaN stays in its row
    for name in ("SIGMOID", "TANH", "ELU", "SOFTPLUS", "GELU", "SWISH", "RELU", "LEAKY_RELU"):
        A = np.empty_like(X)
        N.dense_forward(X, np.ones((1, 1), dtype), None, getattr(K, name), 1.0, np.empty_like(X), A)
        assert np.isnan(A[0, 0]), name
        assert np.all(np.isfinite(A[1:])), name


# ------------------------------------------------- public names, laziness, warmup
def test_public_names_are_the_contract():
    public = {n for n in dir(N) if not n.startswith("_")}
    assert public == {"NAME", *K.KERNELS, *K.OPTIONAL_KERNELS}
    assert N.NAME == "numba"


def test_import_compiles_nothing():
    code = (
        "import fastnn._kernels.numba as N\n"
        "from fastnn._kernels import KERNELS\n"
        "compiled = [k for k in KERNELS if getattr(N, k).signatures]\n"
        "assert not compiled, compiled\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_warmup_compiles_every_kernel(dtype):
    calls = _warmup.warmup(dtype)
    assert calls >= len(K.KERNELS)
    for name in K.KERNELS:
        if name.startswith("sparse_"):
            continue  # compiled on the first sparse input, by design (see warmup's docstring)
        sigs = getattr(N, name).signatures
        assert sigs, f"{name} was not compiled by warmup"
    # Both patterns of the optional arguments the model passes are ready.
    nones = {tuple(isinstance(t, numba.types.NoneType) for t in sig) for sig in N.dense_backward.signatures}
    assert len(nones) >= 4


def test_warmup_covers_every_optimizer_form(dtype):
    """The optimizers, in their Keras and teaching-material forms, call the update kernels
    with the types warmup compiled: no new specialization on the first fit."""
    import fastnn as fn

    _warmup.warmup(dtype)
    updates = ("sgd_update", "adagrad_update", "rmsprop_update", "adam_update")
    before = {name: len(getattr(N, name).signatures) for name in updates}
    optimizers = [fn.optimizers.SGD(0.1), fn.optimizers.SGD(0.1, momentum=0.9),
                  fn.optimizers.SGD(0.1, momentum=0.9, nesterov=True, momentum_form="classic"),
                  fn.optimizers.Adagrad(), fn.optimizers.Adagrad(0.1, 0.0, epsilon_inside_sqrt=True),
                  fn.optimizers.RMSprop(), fn.optimizers.RMSprop(epsilon_inside_sqrt=True),
                  fn.optimizers.Adam(), fn.optimizers.Adam(epsilon_inside_sqrt=True)]
    for opt in optimizers:
        params = [np.ones((3, 2), dtype), np.ones(2, dtype)]
        opt.build(params)
        opt.apply(N, params, [np.ones((3, 2), dtype), np.ones(2, dtype)])
    assert {name: len(getattr(N, name).signatures) for name in updates} == before


def test_warmup_rejects_other_dtypes():
    with pytest.raises(ValueError):
        _warmup.warmup(np.int32)


def test_a_cold_compile_is_announced_once_on_stderr(tmp_path):
    """On an empty Numba cache the first kernel compile says so, once per process;
    a later process that loads the kernels from the cache says nothing."""
    import os

    code = ("import numpy as np; from fastnn._kernels import numba as nb\n"
            "for dtype in ('float32', 'float64'):\n"
            "    nb.gather_rows(np.ones((3, 2), dtype), np.array([0, 2]), np.empty((2, 2), dtype))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stderr.count("fastnn: compiling Numba kernels for float32 (first use") == 1
    assert "compiling" not in runs[0].stderr.replace("fastnn: compiling Numba kernels for float32", "", 1)
    assert "compiling" not in runs[1].stderr


# ------------------------------------------- one loop per model (codes as constants)
# (hidden activations, output activation, optimizer, loss, dtype): shared and mixed
# hidden activations, a single layer, every kind of output delta.  Each compiles its
# own loop (some 15 s cold), so a few cases stand for the rest; the suite's other
# tests run the one loop for every model (conftest.py), which calls the same kernels.
PER_MODEL_CASES = [
    (("relu", "relu"), "softmax", "adam", "sparse_categorical_crossentropy", "float32"),
    (("tanh", "elu"), "sigmoid", "nesterov", "binary_crossentropy", "float64"),
    ((), None, "sgd", "mse", "float32"),
]


@pytest.mark.parametrize("case", PER_MODEL_CASES, ids=lambda c: "-".join(c[0]) or "one-layer")
def test_a_loop_compiled_per_model_equals_the_loop_for_every_model(case, monkeypatch):
    import fastnn as fn
    from fastnn._kernels.numba import _jit, _training

    hidden, output, opt, loss, dtype = case
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 6)).astype(dtype)
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, 3, 150)
    elif loss == "binary_crossentropy":
        y = (rng.random((150, 2)) < 0.5).astype(dtype)
    else:
        y = rng.standard_normal((150, 1)).astype(dtype)
    def train(specialize):
        monkeypatch.setattr(_jit, "SPECIALIZE", specialize)
        optimizers = {"adam": fn.optimizers.Adam(0.01), "sgd": fn.optimizers.SGD(0.05),
                      "nesterov": fn.optimizers.SGD(0.05, momentum=0.9, nesterov=True)}
        layers = [fn.Dense(5, activation=a) for a in hidden] + [fn.Dense(y.shape[1] if y.ndim == 2 else 3,
                                                                        activation=output)]
        model = fn.Sequential(layers, backend="numba", seed=0, dtype=dtype)
        model.compile(optimizer=optimizers[opt], loss=loss)
        history = model.fit(X, y, epochs=3, batch_size=32, verbose=0)
        return model.get_weights(), history.history["loss"], model.predict(X)

    loops = []
    loop_for = _training._loop_for
    monkeypatch.setattr(_training, "_loop_for", lambda plan, args: loops.append(loop_for(plan, args)) or loops[-1])
    generic = train(False)
    assert loops and all(loop is _training._train_batches for loop in loops)
    loops.clear()
    specialized = train(True)
    assert loops and all(loop is not _training._train_batches for loop in loops)  # compiled entry points
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(generic[0], specialized[0]):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(specialized[1], generic[1], rtol=rtol)
    np.testing.assert_allclose(specialized[2], generic[2], rtol=rtol, atol=rtol)


def test_the_compile_notice_names_the_model_of_a_loop_compiled_per_model():
    from fastnn._kernels.numba import _notice, _training

    args = [numba.types.float64] * (max(_training._LOSS, _training._OPT, _training._HIDDEN, _training._OUT) + 1)
    args[_training._OPT] = numba.types.literal(K.OPT_ADAM)
    args[_training._HIDDEN] = numba.types.literal(K.RELU)
    args[_training._OUT] = numba.types.literal(K.SOFTMAX)
    assert _notice._model("_train_batches", args) == "relu/softmax adam"
    args[_training._HIDDEN] = numba.types.literal(K.SOFTMAX)  # one layer: both are the output's
    assert _notice._model("_train_batches", args) == "softmax adam"
    args[_training._HIDDEN] = numba.types.int64  # mixed hidden activations: run-time codes
    assert _notice._model("_train_batches", args) == "adam"
    assert _notice._model("_serial", [numba.types.literal(K.TANH), numba.types.literal(K.SIGMOID)]) == "tanh/sigmoid"
    assert _notice._model("gather_rows", args) == ""


# ------------------------------------------------------------- the disk cache
def test_every_kernel_is_cached_under_one_stamp_of_all_the_backend_sources(tmp_path):
    """A cached training loop carries the machine code of kernels from other files;
    Numba would check only the loop's own file.  fastnn's stamp covers them all, so
    an edit or an upgrade of any kernel recompiles every one of them."""
    from fastnn._kernels.numba import _dense, _jit, _losses, _predict, _training

    stamp = _jit.sources_stamp()
    for function in (_dense._dense_forward, _losses.loss_value, _training._train_batches, _predict._serial):
        locator = function._cache._impl.locator
        assert type(locator).__name__.startswith("Fastnn"), type(locator)
        assert locator.get_source_stamp() == stamp
    copies = []
    for path in _jit.SOURCES:
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    assert _jit.sources_stamp(copies) == stamp
    losses = tmp_path / "_losses.py"
    losses.write_bytes(losses.read_bytes() + b"\n# an edit\n")
    assert _jit.sources_stamp(copies) != stamp


def test_numba_training_allocates_nothing_per_batch():
    """Numba's own allocations (NRT) in ``train_batches`` do not grow with the
    number of batches: what one call allocates is its arguments' wrappers."""
    import fastnn as fn
    from numba.core.runtime import _nrt_python as nrt

    from fastnn._kernels.numba import _training

    counts = []
    train_batches = _training.train_batches

    def counted(plan, first, n, lrs, step0):
        before = nrt.memsys_get_stats_alloc()
        result = train_batches(plan, first, n, lrs, step0)
        counts.append((n, nrt.memsys_get_stats_alloc() - before))
        return result

    rng = np.random.default_rng(0)
    X = rng.random((1024, 20), dtype=np.float32)
    for loss, y, output in [("sparse_categorical_crossentropy", rng.integers(0, 3, 1024), "softmax"),
                            ("mse", rng.standard_normal((1024, 3)).astype(np.float32), "linear")]:
        model = fn.Sequential([fn.Dense(8, activation="relu", input_dim=20), fn.Dense(3, activation=output)],
                              backend="numba", seed=0)
        model.compile(optimizer="adam", loss=loss)
        model.fit(X, y, epochs=1, batch_size=256, verbose=0)  # compiles
        was_enabled = nrt.memsys_stats_enabled()
        nrt.memsys_enable_stats()
        try:
            N.train_batches = counted  # what fit calls (the package's name)
            model.fit(X, y, epochs=1, batch_size=256, verbose=0)
            model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        finally:
            N.train_batches = train_batches
            if not was_enabled:
                nrt.memsys_disable_stats()
        assert min(n for n, _ in counts) <= 4 and max(n for n, _ in counts) >= 32, counts
        assert len({allocations for _, allocations in counts}) == 1, (loss, counts)
        counts.clear()

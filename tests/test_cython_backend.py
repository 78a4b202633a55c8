"""What only the Cython backend has: float32 exp/tanh, OpenMP, argument checks, train_batches.

The contract itself (every kernel against the NumPy reference) is
``test_kernel_conformance.py``; this file covers the rest.  GEMM tolerances
follow the conformance tests: ``RTOL[dtype] * sqrt(k)`` relative to NumPy,
with an absolute floor of the same size.
"""
import contextlib
import sys

import numpy as np
import pytest
from scipy import special

from fastnn import _kernels as K
from fastnn._kernels import numpy as ref
from _plans import run_train_batches

cy = pytest.importorskip("fastnn._kernels.cython", reason="Cython extensions not built")
from fastnn._kernels.cython import _blas, _dense, _training  # noqa: E402
from _plans import plan_from_arrays  # noqa: E402
from _x86 import levels  # noqa: E402

RTOL = {np.float32: 2e-5, np.float64: 1e-11}
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def close(actual, expected, dtype, scale=1.0):
    tol = RTOL[dtype] * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


# ------------------------------------------------------------------ the package
def test_public_names_are_exactly_the_contract():
    public = {name for name in dir(cy) if not name.startswith("_")}
    assert public == {"NAME", *K.KERNELS, *K.OPTIONAL_KERNELS}
    assert cy.NAME == "cython" and K.load("cython") is cy


def test_dense_forward_has_the_contract_signature():
    import inspect

    names = list(inspect.signature(cy.dense_forward).parameters)
    assert names == ["X", "W", "b", "act", "alpha", "Z_out", "A_out"]


# ---------------------------------------------------------------------- OpenMP
def test_openmp_enabled_is_reported():
    assert isinstance(_blas.openmp_enabled(), bool)


def test_blas_single_threaded_follows_threadpool_limits():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _dense.blas_single_threaded() is True
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert _dense.blas_single_threaded() is False


@DTYPES
@pytest.mark.parametrize("act", [K.RELU, K.SOFTMAX, K.GELU])
@pytest.mark.parametrize("blas_threads", [1, None], ids=["blas1", "blas-default"])
def test_dense_forward_row_split_threads_match_serial(dtype, act, blas_threads):
    """dense_forward_threads splits the batch rows (BLAS on one thread) or ignores
    n_threads; the result is dense_forward's."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(12)
    X, W, b = rand(rng, (133, 50), dtype), rand(rng, (50, 17), dtype), rand(rng, 17, dtype)
    Z1, A1 = np.empty((133, 17), dtype), np.empty((133, 17), dtype)
    Z2, A2 = np.full_like(Z1, np.nan), np.full_like(A1, np.nan)
    cy.dense_forward(X, W, b, act, 0.0, Z1, A1)
    with threadpoolctl.threadpool_limits(blas_threads, user_api="blas"):
        _dense.dense_forward_threads(X, W, b, act, 0.0, Z2, A2, 2)
    # BLAS may block a smaller row count differently, so allow for rounding.
    close(Z2, Z1, dtype, np.sqrt(50))
    close(A2, A1, dtype, np.sqrt(50))


@DTYPES
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 16, 31, 32, 33, 100, 257])
@pytest.mark.parametrize("n_in, n_out", [(1, 8), (13, 16), (784, 24), (50, 40), (128, 128), (30, 12), (9, 17)])
def test_small_batch_products_without_blas_match_numpy(dtype, m, n_in, n_out):
    """Products of at most 32 rows (64 with AVX-512; 256 when at most 64 wide), and weight
    gradients over as many batch rows, with a width of whole vectors skip BLAS
    (``_simd_gemm.h``): every row-group and column-block remainder, both dtypes, and the shapes
    that still go to BLAS (a width of 17, 100 rows of 128, 257 rows) give numpy's product within
    the GEMM tolerance, and so does the same call with the small kernel off."""
    rng = np.random.default_rng(m * 1000 + n_out)
    X, W, b = rand(rng, (m, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype)
    Z, A = np.full((m, n_out), np.nan, dtype), np.full((m, n_out), np.nan, dtype)
    cy.dense_forward(X, W, b, K.LINEAR, 0.0, Z, A)
    expected = X.astype(np.float64) @ W.astype(np.float64) + b
    close(Z, expected, dtype, np.sqrt(n_in))
    close(A, Z, dtype)
    # the weight gradient over these m batch rows: x.T @ dz (+ l2 W)
    dZ = rand(rng, (m, n_out), dtype)
    dW, db, dX = np.full_like(W, np.nan), np.full_like(b, np.nan), np.full_like(X, np.nan)
    cy.dense_backward(X, W, dZ, 0.5, dW, db, dX)
    close(dW, X.T.astype(np.float64) @ dZ + 0.5 * W.astype(np.float64), dtype, np.sqrt(m))
    close(dX, dZ.astype(np.float64) @ W.T, dtype, np.sqrt(n_out))
    old = _dense._set_small_gemm(False)
    try:
        Z_blas, dW_blas = np.full_like(Z, np.nan), np.full_like(dW, np.nan)
        cy.dense_forward(X, W, b, K.LINEAR, 0.0, Z_blas, Z_blas)
        cy.dense_backward(X, W, dZ, 0.5, dW_blas, None, None)
    finally:
        _dense._set_small_gemm(old)
    close(Z_blas, Z, dtype, np.sqrt(n_in))
    close(dW_blas, dW, dtype, np.sqrt(m))


def _gemm_levels():
    """The x86 levels of ``_simd_gemm.h`` this CPU runs."""
    return levels(_dense._set_gemm_level)


def test_gemm_levels_are_checked():
    assert 1 in _gemm_levels()
    with pytest.raises(ValueError, match="level 2"):
        _dense._set_gemm_level(2)


@pytest.mark.parametrize("level", _gemm_levels())
@DTYPES
def test_small_products_at_every_x86_level_match_numpy(level, dtype):
    """Each level the CPU runs (64-byte vectors in groups of 8 rows with AVX-512, else 32-byte
    vectors in groups of 4; AVX-512 takes up to 64 rows, the others 32) gives numpy's product
    and weight gradient: every row group and remainder (1-13, 15, 16, 31-33, 63-65 rows) and
    widths that take each column block of both ladders and the scalar tail."""
    before = _dense._set_gemm_level(level)
    try:
        rng = np.random.default_rng(level)
        for m in (1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 31, 32, 33, 63, 64, 65):
            for n_in, n_out in ((1, 8), (784, 16), (20, 24), (50, 40), (9, 48), (128, 56),
                                (30, 128), (7, 200), (13, 12)):
                X, W = rand(rng, (m, n_in), dtype), rand(rng, (n_in, n_out), dtype)
                Z = np.full((m, n_out), np.nan, dtype)
                cy.dense_forward(X, W, None, K.LINEAR, 0.0, Z, Z)
                close(Z, X.astype(np.float64) @ W.astype(np.float64), dtype, np.sqrt(n_in))
                dZ = rand(rng, (m, n_out), dtype)
                dW = np.full_like(W, np.nan)
                cy.dense_backward(X, W, dZ, 0.0, dW, None, None)
                close(dW, X.T.astype(np.float64) @ dZ.astype(np.float64), dtype, np.sqrt(m))
    finally:
        _dense._set_gemm_level(before)


@pytest.mark.parametrize("level", _gemm_levels())
def test_which_products_skip_blas_at_each_x86_level(level):
    """Up to 64 rows with AVX-512 (32 otherwise) skip BLAS; inside a loop that holds BLAS at
    one thread, float32 products with AVX-512 do so up to 256 rows (``_gemm``'s
    ``one_thread``), float64 ones do not."""
    before = _dense._set_gemm_level(level)
    try:
        most = 64 if level == 4 else 32
        for one_thread in (False, True):
            assert _dense._small_product("float64", most, 128, one_thread)
            assert not _dense._small_product("float64", most + 1, 128, one_thread)
        assert _dense._small_product("float32", most, 512, False)
        assert not _dense._small_product("float32", most + 1, 512, False)
        most_f32 = 256 if level == 4 else most
        assert _dense._small_product("float32", most_f32, 512, True)
        assert not _dense._small_product("float32", most_f32 + 1, 512, True)
    finally:
        _dense._set_gemm_level(before)


@pytest.mark.parametrize("level", _gemm_levels())
def test_which_products_pack_w_at_each_x86_level(level):
    """With AVX-512 the kernel copies blocks of a w of 1 MiB or more before 16 rows or more
    multiply it (``_simd_gemm.h``, "Packed"); the other levels never do."""
    before = _dense._set_gemm_level(level)
    try:
        packs = level == 4
        assert _dense._packs_w("float32", 16, 512, 512) is packs  # 1 MiB
        assert _dense._packs_w("float64", 64, 784, 256) is packs
        assert not _dense._packs_w("float32", 15, 784, 512)
        assert not _dense._packs_w("float32", 128, 511, 512)
        assert not _dense._packs_w("float32", 256, 784, 256)
    finally:
        _dense._set_gemm_level(before)


@contextlib.contextmanager
def _setting(setter, value):
    """``setter(value)`` for the block, then the setting it replaced again."""
    before = setter(value)
    try:
        yield
    finally:
        setter(before)


def _pack_from(min_bytes):
    return _setting(_dense._set_gemm_pack_min_bytes, min_bytes)


@DTYPES
def test_packed_products_give_the_in_place_bits(dtype):
    """Packing w (here from 0 bytes, so small shapes take it) changes where the kernel reads
    w, not what it adds: the forward product and the weight gradient have the same bits as
    in place, for every row group and remainder, both column-block ladders, the scalar tail
    and inner dimensions that span several 128-row chunks of w (and numpy's result)."""
    if 4 not in _gemm_levels():
        pytest.skip("this CPU does not run AVX-512")
    rng = np.random.default_rng(9)
    for m in (16, 17, 23, 43, 64):
        for n_in, n_out in ((784, 16), (20, 24), (300, 40), (9, 48), (128, 56), (129, 200),
                            (257, 424), (13, 8)):
            X, W = rand(rng, (m, n_in), dtype), rand(rng, (n_in, n_out), dtype)
            dZ = rand(rng, (m, n_out), dtype)
            results = []
            for min_bytes in (0, -1):
                with _pack_from(min_bytes):
                    assert _dense._packs_w(dtype, m, n_in, n_out) is (min_bytes == 0)
                    Z, dW = np.full((m, n_out), np.nan, dtype), np.full_like(W, np.nan)
                    cy.dense_forward(X, W, None, K.LINEAR, 0.0, Z, Z)
                    cy.dense_backward(X, W, dZ, 0.0, dW, None, None)
                    results.append((Z, dW))
            (Z, dW), (Z_in_place, dW_in_place) = results
            assert np.array_equal(Z, Z_in_place), (m, n_in, n_out)
            assert np.array_equal(dW, dW_in_place), (m, n_in, n_out)
            close(Z, X.astype(np.float64) @ W.astype(np.float64), dtype, np.sqrt(n_in))
            close(dW, X.T.astype(np.float64) @ dZ.astype(np.float64), dtype, np.sqrt(m))


def test_a_split_fit_with_a_megabyte_layer_packs_and_trains_as_in_place():
    """A float32 fit split across two threads, 32 rows a thread times a 1 MiB W (512 x 512):
    its forward products pack W, and the trained weights have the bits of the same fit with
    packing off."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if 4 not in _gemm_levels():
        pytest.skip("this CPU does not run AVX-512")
    import fastnn as fn

    rng = np.random.default_rng(3)
    X = rng.random((320, 512), dtype=np.float32)
    y = rng.integers(0, 10, 320)
    assert _dense._packs_w("float32", 32, 512, 512)
    weights = []
    for min_bytes in (1 << 20, -1):
        model = fn.Sequential([fn.Dense(512, activation="relu", input_dim=512),
                               fn.Dense(512, activation="relu"),
                               fn.Dense(10, activation="softmax")], backend="cython", seed=0)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        with _pack_from(min_bytes), threadpoolctl.threadpool_limits(2, user_api="openmp"):
            model.fit(X, y, epochs=2, batch_size=64, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for packed, in_place in zip(*weights):
        assert np.array_equal(packed, in_place)


def test_float32_batches_of_up_to_256_rows_without_blas_match_blas():
    """train_batches holds BLAS at one thread while it splits a batch, and its float32
    products of up to 256 rows (a thread's 125 rows forward, all 250 batch rows in the weight
    gradient) then run the AVX-512 kernel: the same training as through BLAS, up to
    rounding.  Where this BLAS rounds a 784-long sum differently from the kernel (it adds
    blocks of the inner dimension), the results show which one ran."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    if 4 not in _gemm_levels():
        pytest.skip("this CPU does not run AVX-512")
    rng = np.random.default_rng(5)
    X, W = rand(rng, (64, 784), np.float32), rand(rng, (784, 96), np.float32)
    by_kernel, by_blas = np.empty((64, 96), np.float32), np.empty((64, 96), np.float32)
    cy.dense_forward(X, W, None, K.LINEAR, 0.0, by_kernel, by_kernel)  # 64 rows: the kernel
    old = _dense._set_small_gemm(False)
    try:
        cy.dense_forward(X, W, None, K.LINEAR, 0.0, by_blas, by_blas)
    finally:
        _dense._set_small_gemm(old)
    blas_rounds_apart = not np.array_equal(by_kernel, by_blas)

    # SGD and smooth activations: rounding differences stay rounding differences (Adam's
    # first steps and ReLU's kinks can turn them into different weights)
    args = _train_args(np.float32, K.OPT_SGD, widths=(784, 96, 64, 10),
                       acts=(K.TANH, K.TANH, K.SOFTMAX), n=1000, batch_size=250)
    kernel, blas = _copy_args(args), _copy_args(args)
    assert _dense._small_product("float32", 250, 96, True)
    assert not _dense._small_product("float32", 250, 96, False)
    queue = _training._set_run_queue_answer(False)
    split = _training._set_feature_split(False)  # the products of 125 rows a thread
    try:
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            _training.thread_statistics(reset=True)
            assert run_train_batches(cy, kernel) == args["n_batches"]
            assert _training.thread_statistics(reset=True)["parallel_batches"] == args["n_batches"]
            old = _dense._set_small_gemm(False)
            try:
                assert run_train_batches(cy, blas) == args["n_batches"]
            finally:
                _dense._set_small_gemm(old)
    finally:
        _training._set_run_queue_answer(queue)
        _training._set_feature_split(split)
    for key in STATE:
        for a, b in zip(blas[key], kernel[key]):
            close(b, a, np.float32, 10.0)
    close(kernel["out"], blas["out"], np.float32, 10.0)
    if blas_rounds_apart:
        assert not all(np.array_equal(a, b) for a, b in zip(blas["Ws"], kernel["Ws"]))


# ------------------------------------------------------- activations per x86 level
def _act_levels():
    """The x86 levels of the activation loops (``_elementwise.h``) this CPU runs."""
    return levels(_dense._set_act_level)


def _act_level(level):
    return _setting(_dense._set_act_level, level)


def test_activation_levels_are_checked():
    assert 1 in _act_levels()
    with pytest.raises(ValueError, match="level 2"):
        _dense._set_act_level(2)


@pytest.mark.parametrize("level", _act_levels())
@DTYPES
def test_every_activation_at_every_x86_level_matches_numpy(level, dtype):
    """The generated row loops at each level the CPU runs, against the NumPy reference:
    every activation, forward and backward, out of place and in place (``dZ is dA``),
    rows of 1 to 67 values (each vector width's body and tail)."""
    rng = np.random.default_rng(level)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    with _act_level(level):
        for act in range(K.N_ACTIVATIONS):
            alpha = 0.2 if act in (K.LEAKY_RELU, K.ELU) else 0.0
            for m in (1, 3, 7, 8, 9, 16, 17, 31, 33, 64, 67):
                Z = rand(rng, (5, m), dtype) * 4
                A, A_ref = np.empty_like(Z), np.empty_like(Z)
                cy.dense_forward(Z, np.eye(m, dtype=dtype), None, act, alpha, np.empty_like(Z), A)
                ref.dense_forward(Z, np.eye(m, dtype=dtype), None, act, alpha, np.empty_like(Z), A_ref)
                np.testing.assert_allclose(A, A_ref, rtol=rtol, atol=rtol, err_msg=K.ACTIVATIONS[act])
                dA = rand(rng, (5, m), dtype)
                dZ, dZ_ref = np.empty_like(Z), np.empty_like(Z)
                cy.activation_backward(act, alpha, Z, A_ref, dA, dZ)
                ref.activation_backward(act, alpha, Z, A_ref, dA, dZ_ref)
                np.testing.assert_allclose(dZ, dZ_ref, rtol=rtol, atol=rtol, err_msg=K.ACTIVATIONS[act])
                cy.activation_backward(act, alpha, Z, A_ref, dA, dA)  # in place
                np.testing.assert_allclose(dA, dZ_ref, rtol=rtol, atol=rtol, err_msg=K.ACTIVATIONS[act])


# ------------------------------------------------- float32 exp and tanh accuracy
def _ulps(actual, exact):
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(actual.astype(np.float64) - exact) / spacing


@pytest.mark.parametrize(
    "act,exact",
    [
        (K.TANH, np.tanh),
        (K.SIGMOID, lambda z: 1 / (1 + np.exp(-z))),
        (K.SWISH, lambda z: z / (1 + np.exp(-z))),
    ],
    ids=["tanh", "sigmoid", "swish"],
)
@pytest.mark.parametrize("level", _act_levels())
def test_float32_exp_based_activations_within_3_ulp(act, exact, level):
    """fastnn's own vectorizable float32 exp/tanh, against float64 math (|z| <= 87), at
    every x86 level the activation loops are built for."""
    z = np.concatenate(
        [np.linspace(-87, 87, 200_001), np.geomspace(1e-30, 87, 50_000),
         -np.geomspace(1e-30, 87, 50_000), [0.0, -0.0, 0.625, -0.625]]
    ).astype(np.float32)
    z = z[: z.size // 8 * 8].reshape(-1, 8)
    A = np.empty_like(z)
    with _act_level(level):
        cy.dense_forward(z, np.eye(8, dtype=np.float32), None, act, 0.0, np.empty_like(z), A)
    assert _ulps(A, exact(z.astype(np.float64))).max() <= 3


def _norm_cdf(z):
    return 0.5 * special.erfc(-z / np.sqrt(2))


@pytest.mark.parametrize(
    "act,alpha,forward,derivative,forward_rtol",
    [
        (K.ELU, 1.0, np.expm1, np.exp, 2.5e-7),  # z <= 0 here: the expm1 branch
        (K.SOFTPLUS, 0.0, lambda z: np.logaddexp(0, z), special.expit, 4e-7),
        # The fitted erfc: < 1e-6 relative for |z| < 5.6, then x^2's rounding grows it.
        (K.GELU, 0.0, lambda z: z * _norm_cdf(z),
         lambda z: _norm_cdf(z) + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), 3e-5),
    ],
    ids=["elu", "softplus", "gelu"],
)
@pytest.mark.parametrize("level", _act_levels())
def test_float32_expm1_log1p_and_normal_cdf_activations_are_accurate(act, alpha, forward, derivative,
                                                                     forward_rtol, level):
    """fastnn's own vectorizable float32 expm1, log1p and normal CDF, against float64
    math: the forward relative to the value wherever it is a normal float32 (GELU's
    left tail included, which 1 + erf would cancel to 0), the derivative absolutely
    (GELU's crosses 0 near z = -0.75)."""
    z = np.concatenate([np.linspace(-87, 87, 200_001), np.geomspace(1e-30, 87, 50_000),
                        -np.geomspace(1e-30, 87, 50_000)]).astype(np.float32)
    if act == K.ELU:
        z = -np.abs(z)
    z = z[: z.size // 8 * 8].reshape(-1, 8)
    exact = forward(z.astype(np.float64))
    A, dZ = np.empty_like(z), np.empty_like(z)
    with _act_level(level):
        cy.dense_forward(z, np.eye(8, dtype=np.float32), None, act, alpha, np.empty_like(z), A)
        cy.activation_backward(act, alpha, z, A, np.ones_like(z), dZ)
    normal = np.abs(exact) >= np.finfo(np.float32).tiny
    relative = np.abs(A[normal] - exact[normal]) / np.abs(exact[normal])
    assert relative.max() <= forward_rtol
    assert np.abs(A[~normal] - exact[~normal]).max(initial=0) <= 1e-40
    assert np.abs(dZ - derivative(z.astype(np.float64))).max() <= 5e-7


# --------------------------------------------------------- argument checking
def _dense_args(dtype=np.float32, n=4, n_in=3, n_out=2):
    rng = np.random.default_rng(13)
    return [rand(rng, (n, n_in), dtype), rand(rng, (n_in, n_out), dtype), rand(rng, n_out, dtype),
            K.RELU, 0.0, np.empty((n, n_out), dtype), np.empty((n, n_out), dtype)]


@pytest.mark.parametrize("position", [0, 1, 2, 5, 6], ids=["X", "W", "b", "Z_out", "A_out"])
def test_dense_forward_mixed_dtypes_raise(position):
    args = _dense_args(np.float32)
    args[position] = args[position].astype(np.float64)
    with pytest.raises((ValueError, TypeError), match="(?i)dtype|signature"):
        cy.dense_forward(*args)


def test_dense_forward_integer_arrays_raise_type_error():
    args = _dense_args()
    args[0] = np.ones((4, 3), np.int64)
    with pytest.raises(TypeError):
        cy.dense_forward(*args)


def test_dense_forward_rejects_fortran_and_read_only_outputs():
    args = _dense_args()
    args[5] = np.asfortranarray(np.empty((2, 4), np.float32).T)
    with pytest.raises(ValueError, match="contiguous"):
        cy.dense_forward(*args)
    args = _dense_args()
    args[6].flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        cy.dense_forward(*args)


def test_dense_forward_accepts_read_only_inputs():
    args = _dense_args()
    for a in args[:3]:
        a.flags.writeable = False
    cy.dense_forward(*args)
    expected = np.maximum(args[0] @ args[1] + args[2], 0)
    close(args[6], expected, np.float32)


def test_shape_mismatches_and_bad_codes_raise_value_error():
    args = _dense_args()
    args[1] = np.ones((5, 2), np.float32)
    with pytest.raises(ValueError, match="dense_forward"):
        cy.dense_forward(*args)
    args = _dense_args()
    args[3] = 99
    with pytest.raises(ValueError, match="unknown activation code 99"):
        cy.dense_forward(*args)
    A = np.full((3, 4), 0.25, np.float32)
    with pytest.raises(ValueError, match="unknown loss code 42"):
        cy.loss_value(42, A, A, None)
    with pytest.raises(ValueError, match="Y must have shape"):
        cy.loss_value(K.MSE, A, A[:2], None)
    with pytest.raises(TypeError, match="Y must be a numpy array"):
        cy.loss_value(K.MSE, A, [[0.0] * 4] * 3, None)


def test_out_of_range_indices_raise_index_error_not_crash():
    A = np.full((3, 4), 0.25, np.float32)
    labels = np.array([0, 4, 1], np.int64)
    with pytest.raises(IndexError):
        cy.loss_value(K.SPARSE_CATEGORICAL_CROSSENTROPY, A, labels, None)
    with pytest.raises(IndexError):
        cy.loss_output_delta(K.SPARSE_CATEGORICAL_CROSSENTROPY, K.SOFTMAX, 0.0, A, A, labels,
                             None, np.empty_like(A))
    with pytest.raises(IndexError):
        cy.gather_rows(A, np.array([0, 3], np.int64), np.empty((2, 4), np.float32))
    with pytest.raises(IndexError):
        cy.maxout_backward(A, np.full((3, 4), 2, np.int64), 2, np.empty((3, 8), np.float32))


def test_fused_sparse_delta_may_overwrite_the_output_activations():
    """For softmax + sparse labels dZ_out may be A itself: the label's entry is read first."""
    rng = np.random.default_rng(16)
    Z = rand(rng, (6, 4), np.float64)
    A = np.empty_like(Z)
    ref.dense_forward(Z, np.eye(4), None, K.SOFTMAX, 0.0, np.empty_like(Z), A)
    labels = rng.integers(0, 4, 6).astype(np.int64)
    expected = np.empty_like(Z)
    ref.loss_output_delta(K.SPARSE_CATEGORICAL_CROSSENTROPY, K.SOFTMAX, 0.0, Z, A, labels, None,
                          expected)
    cy.loss_output_delta(K.SPARSE_CATEGORICAL_CROSSENTROPY, K.SOFTMAX, 0.0, Z, A, labels, None, A)
    close(A, expected, np.float64)


def test_sparse_labels_may_be_negative_like_numpy_indexing():
    rng = np.random.default_rng(14)
    A = rng.uniform(0.1, 0.9, (5, 3)).astype(np.float64)
    labels = np.array([0, -1, 2, -3, 1], np.int64)
    expected = ref.loss_value(K.SPARSE_CATEGORICAL_CROSSENTROPY, A, labels, None)
    assert cy.loss_value(K.SPARSE_CATEGORICAL_CROSSENTROPY, A, labels, None) == pytest.approx(
        expected, rel=1e-12
    )


@pytest.mark.parametrize("kernel", ["sgd", "adam"])
def test_optimizer_argument_errors(kernel):
    p = np.zeros(10, np.float32)

    def call(param, grad, slot):
        if kernel == "sgd":
            cy.sgd_update(param, grad, 0.1, 0.9, False, slot)
        else:
            cy.adam_update(param, grad, 0.1, 0.9, 0.999, 1e-7, 1, slot, slot.copy())

    with pytest.raises(TypeError, match="grad has dtype float64, expected float32"):
        call(p, np.zeros(10), np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="shape"):
        call(p, np.zeros(11, np.float32), np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        call(np.zeros((10, 2), np.float32)[:, 0], np.zeros(10, np.float32),
             np.zeros(10, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        call(np.zeros(10, np.int32), np.zeros(10, np.int32), np.zeros(10, np.int32))
    with pytest.raises(TypeError, match="numpy array"):
        call([0.0] * 10, np.zeros(10, np.float32), np.zeros(10, np.float32))
    if kernel == "sgd":
        with pytest.raises(ValueError, match="velocity_inout is required"):
            cy.sgd_update(p, np.zeros(10, np.float32), 0.1, 0.9, False, None)
    # the loops take restrict pointers: overlapping buffers are refused
    with pytest.raises(ValueError, match="param_inout and grad share memory"):
        call(p, p, np.zeros(10, np.float32))
    buffer = np.zeros(21, np.float32)
    with pytest.raises(ValueError, match="share memory"):
        call(buffer[:10], np.zeros(10, np.float32), buffer[5:15])
    call(buffer[:10], np.zeros(10, np.float32), buffer[10:20])  # adjacent is fine


def test_one_sgd_momentum_step_by_hand():
    # v = 0.9 * 1 - 0.1 * 2 = 0.7; p = 1 + 0.7 = 1.7
    # Nesterov: p = 1 - 0.1 * 2 + 0.9 * 0.7 = 1.43
    p, g, v = np.ones(3), np.full(3, 2.0), np.ones(3)
    cy.sgd_update(p, g, 0.1, 0.9, False, v)
    np.testing.assert_allclose(v, 0.7, rtol=1e-15)
    np.testing.assert_allclose(p, 1.7, rtol=1e-15)
    p, v = np.ones(3), np.ones(3)
    cy.sgd_update(p, g, 0.1, 0.9, True, v)
    np.testing.assert_allclose(p, 1.43, rtol=1e-15)


# ------------------------------------------------------------------ gather_rows
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int16, np.int32, np.int64, np.float16, np.complex128, np.bool_, "U3"]
)
@pytest.mark.parametrize("shape", [(9,), (9, 5), (9, 2, 3)], ids=str)
def test_gather_rows_any_dtype_and_rank(dtype, shape):
    rng = np.random.default_rng(15)
    X = (rng.standard_normal(shape) * 10).astype(dtype)
    idx = np.array([8, 0, -1, 3, 3], np.int64)
    out = np.empty((len(idx),) + shape[1:], X.dtype)
    cy.gather_rows(X, idx, out)
    np.testing.assert_array_equal(out, X[idx])


def test_gather_rows_falls_back_to_numpy_for_objects_and_views():
    X = np.array([{"a": 1}, "b", 3], dtype=object)
    out = np.empty(2, object)
    cy.gather_rows(X, np.array([2, 0], np.int64), out)
    assert list(out) == [3, {"a": 1}]
    Xf = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    out = np.empty((2, 3))
    cy.gather_rows(Xf, np.array([3, 1], np.int32), out)
    np.testing.assert_array_equal(out, Xf[[3, 1]])


# ------------------------------------------------------------------ empty batches
@DTYPES
def test_empty_batch_is_a_no_op(dtype):
    X, W = np.empty((0, 3), dtype), np.ones((3, 2), dtype)
    Z, A = np.empty((0, 2), dtype), np.empty((0, 2), dtype)
    cy.dense_forward(X, W, None, K.SOFTMAX, 0.0, Z, A)
    dW, db = np.full((3, 2), np.nan, dtype), np.full(2, np.nan, dtype)
    cy.dense_backward(X, W, Z, 0.5, dW, db, np.empty((0, 3), dtype))
    np.testing.assert_array_equal(dW, 0.5 * W)
    np.testing.assert_array_equal(db, 0.0)


# ------------------------------------------------------------------ train_batches
def _rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _train_args(dtype=np.float64, opt=K.OPT_ADAM, loss=K.SPARSE_CATEGORICAL_CROSSENTROPY,
                widths=(7, 9, 6, 3), acts=(K.RELU, K.TANH, K.SOFTMAX), bias=(True, False, True),
                n=45, batch_size=8, weighted=False, seed=17):
    """Every argument of train_batches (as a dict) for a small stack of Dense layers."""
    rng = np.random.default_rng(seed)
    L, k = len(widths) - 1, widths[-1]
    empty = np.empty(0, dtype)
    X = _rand(rng, (n, widths[0]), dtype)
    if loss == K.SPARSE_CATEGORICAL_CROSSENTROPY:
        Y = rng.integers(0, k, n).astype(np.int64)
        Yb = np.empty(batch_size, np.int64)
    elif loss == K.CATEGORICAL_CROSSENTROPY:
        Y = np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
        Yb = np.empty((batch_size, k), dtype)
    else:
        Y = _rand(rng, (n, k), dtype)
        Yb = np.empty((batch_size, k), dtype)
    SW = rng.uniform(0.5, 2.0, n).astype(dtype) if weighted else None
    Ws = tuple(_rand(rng, (widths[l], widths[l + 1]), dtype, 0.4) for l in range(L))
    bs = tuple(_rand(rng, widths[l + 1], dtype, 0.1) if bias[l] else empty for l in range(L))
    slot_count = {K.OPT_SGD: 0, K.OPT_ADAM: 2}.get(opt, 1)

    def slots(params, i):
        return tuple(np.abs(_rand(rng, p.shape, dtype, 0.01)) if i < slot_count and p.size else empty
                     for p in params)

    return dict(
        X=X, Y=Y, SW=SW, perm=rng.permutation(n).astype(np.int64), batch_size=batch_size,
        first_batch=0, n_batches=-(-n // batch_size),
        Ws=Ws, bs=bs, dWs=tuple(np.empty_like(W) for W in Ws),
        dbs=tuple(np.empty_like(b) for b in bs),
        acts=np.array(acts, np.int64), alphas=np.zeros(L), l2s=np.array([1e-3] + [0.0] * (L - 1)),
        Zs=tuple(np.empty((batch_size, w), dtype) for w in widths[1:]),
        As=tuple(np.empty((batch_size, w), dtype) for w in widths[1:]),
        dZs=tuple(np.empty((batch_size, w), dtype) for w in widths[1:]),
        Xb=np.empty((batch_size, widths[0]), dtype), Yb=Yb,
        SWb=None if SW is None else np.empty(batch_size, dtype),
        loss=loss, opt=opt, hyper=np.array([0.9 if opt in (K.OPT_MOMENTUM, K.OPT_NESTEROV) else 0.0,
                                           0.9, 0.999 if opt == K.OPT_ADAM else 0.0, 1e-7]),
        lrs=np.linspace(0.01, 0.005, -(-n // batch_size)), step0=3,
        S1W=slots(Ws, 0), S1b=slots(bs, 0), S2W=slots(Ws, 1), S2b=slots(bs, 1),
        out=np.zeros(4),
    )


def _copy_args(args):
    def copy(v):
        if isinstance(v, np.ndarray):
            return v.copy()
        if isinstance(v, tuple):
            return tuple(copy(x) for x in v)
        return v
    return {key: copy(v) for key, v in args.items()}


STATE = ("Ws", "bs", "S1W", "S1b", "S2W", "S2b")


@DTYPES
@pytest.mark.parametrize("opt", ["OPT_SGD", "OPT_MOMENTUM", "OPT_NESTEROV", "OPT_ADAGRAD",
                                 "OPT_RMSPROP", "OPT_ADAM"])
@pytest.mark.parametrize("loss,acts,k", [
    (K.SPARSE_CATEGORICAL_CROSSENTROPY, (K.RELU, K.TANH, K.SOFTMAX), 3),
    (K.CATEGORICAL_CROSSENTROPY, (K.ELU, K.SWISH, K.SOFTMAX), 3),
    (K.BINARY_CROSSENTROPY, (K.GELU, K.LEAKY_RELU, K.SIGMOID), 1),
    (K.MSE, (K.SOFTPLUS, K.SIGMOID, K.LINEAR), 2),
    (K.MAE, (K.RELU, K.RELU, K.TANH), 2),
], ids=["sce", "cce", "bce", "mse", "mae"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weighted"])
def test_train_batches_matches_the_numpy_reference(dtype, opt, loss, acts, k, weighted):
    """Whole steps, a short last batch, bias-less layers, l2, step0 and per-batch rates."""
    args = _train_args(dtype, getattr(K, opt), loss, widths=(7, 9, 6, k), acts=acts, weighted=weighted)
    if loss == K.BINARY_CROSSENTROPY:
        args["Y"] = (args["Y"] > 0).astype(dtype)
    expected, actual = _copy_args(args), _copy_args(args)
    assert run_train_batches(ref, expected) == args["n_batches"]
    assert run_train_batches(cy, actual) == args["n_batches"]
    scale = 50.0 if dtype == np.float32 else 1.0  # six steps amplify float32 rounding a little
    for key in STATE:
        for e, a in zip(expected[key], actual[key]):
            close(a, e, dtype, scale)
    close(actual["out"], expected["out"], dtype, scale * 10)


def test_train_batches_runs_a_window_of_batches_and_accumulates_out():
    args = _train_args(n=40, batch_size=8)
    one, two = _copy_args(args), _copy_args(args)
    assert run_train_batches(cy, one) == 5
    two["n_batches"] = 2
    assert run_train_batches(cy, two) == 2
    two.update(first_batch=2, n_batches=3, lrs=args["lrs"][2:], step0=args["step0"] + 2)
    assert run_train_batches(cy, two) == 3
    for key in STATE:
        for a, b in zip(one[key], two[key]):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(two["out"], one["out"], rtol=1e-12)
    assert one["out"][1] == int(one["out"][1]) and 0 <= one["out"][1] <= 40


def test_train_batches_stops_before_a_non_finite_update():
    args = _train_args(opt=K.OPT_SGD, loss=K.MSE, acts=(K.RELU, K.RELU, K.LINEAR), widths=(7, 9, 6, 2))
    args["lrs"][:] = 1e30  # the first update explodes; the second batch's loss is not finite
    W_after_first = None
    first = _copy_args(args)
    first["n_batches"] = 1
    run_train_batches(cy, first)
    W_after_first = [W.copy() for W in first["Ws"]]
    done = run_train_batches(cy, args)
    assert done < args["n_batches"]
    if done == 1:
        for a, b in zip(args["Ws"], W_after_first):
            np.testing.assert_array_equal(a, b)


def test_train_batches_float32_and_float64_are_both_supported():
    for dtype in (np.float32, np.float64):
        args = _train_args(dtype)
        assert run_train_batches(cy, args) == args["n_batches"]
        assert all(W.dtype == dtype for W in args["Ws"])


# The fields of the plan and the arguments of the call; errors name the plan's fields.
CALL_ARGUMENTS = ("first_batch", "n_batches", "lrs", "step0")


def _call_train_batches(args, key=None, value=None):
    """cy.train_batches on the plan of ``args``, with its field (or the call's argument)
    ``key`` replaced by ``value``."""
    plan = plan_from_arrays(args)
    call = {name: args[name] for name in CALL_ARGUMENTS}
    if key in CALL_ARGUMENTS:
        call[key] = value
    elif key is not None:
        setattr(plan, key, value)
    return cy.train_batches(plan, **call)


@pytest.mark.parametrize("key,value,error,match", [
    ("X", lambda a: a["X"].astype(np.float32), TypeError, "Ws\\[0\\] has dtype float64, expected float32"),
    ("X", lambda a: a["X"].astype(np.int64), TypeError, "X must be float32 or float64"),
    ("X", lambda a: np.asfortranarray(a["X"]), ValueError, "X must be C-contiguous"),
    ("Ws", lambda a: (a["Ws"][0], a["Ws"][1][:5]) + a["Ws"][2:], ValueError, "Ws\\[1\\] has shape"),
    ("Ws", lambda a: list(a["Ws"]) * 30, ValueError, "layers"),
    ("dWs", lambda a: a["dWs"][:2], ValueError, "dWs has 2 entries, expected 3"),
    ("bs", lambda a: (a["bs"][0][:4],) + a["bs"][1:], ValueError, "bs\\[0\\] has shape"),
    ("Zs", lambda a: (a["Zs"][0][:3],) + a["Zs"][1:], ValueError, "Zs\\[0\\] has shape"),
    ("Y", lambda a: a["Y"].astype(np.int32), TypeError, "Y has dtype int32"),
    ("perm", lambda a: a["perm"][:10], ValueError, "perm has shape"),
    ("acts", lambda a: np.array([99, 2, 6], np.int64), ValueError, "unknown activation code 99"),
    ("loss", lambda a: 42, ValueError, "unknown loss code 42"),
    ("optimizer", lambda a: 17, ValueError, "unknown optimizer code 17"),
    ("S1W", lambda a: tuple(np.empty(0) for _ in range(3)), ValueError, "S1W\\[0\\] must be 2-D"),
    ("lrs", lambda a: a["lrs"][:2], ValueError, "lrs has 2 entries"),
    ("n_batches", lambda a: 99, ValueError, "run past"),
    ("Ws", lambda a: 5, TypeError, "Ws must be a tuple"),
], ids=["X-float32", "X-int64", "X-fortran", "Ws-shape", "too-deep", "dWs-length", "bs-shape",
        "Zs-rows", "Y-dtype", "perm-shape", "act-code", "loss-code", "opt-code", "slot-missing",
        "lrs-short", "too-many-batches", "Ws-type"])
def test_train_batches_argument_errors(key, value, error, match):
    args = _train_args()
    before = [W.copy() for W in args["Ws"]]
    with pytest.raises(error, match=match):
        _call_train_batches(args, key, value(args))
    if key != "Ws":
        for W, W0 in zip(args["Ws"], before):
            np.testing.assert_array_equal(W, W0)  # nothing was written


def test_train_batches_read_only_parameters_raise():
    args = _train_args()
    args["Ws"][1].flags.writeable = False
    with pytest.raises(ValueError, match="Ws\\[1\\] is read-only"):
        _call_train_batches(args)


def test_train_batches_out_of_range_rows_and_labels_raise_index_error():
    args = _train_args()
    args["perm"][3] = 1000
    with pytest.raises(IndexError, match="row index 1000"):
        _call_train_batches(args)
    args = _train_args()
    args["Y"][5] = 7
    with pytest.raises(IndexError, match="class label 7"):
        _call_train_batches(args)


@pytest.mark.parametrize("split", ["batch rows", "input features"])
@pytest.mark.parametrize("where", ["first thread", "second thread"])
def test_train_batches_bad_label_or_row_on_any_thread_raises(where, split):
    """Each thread checks the labels and rows of its own half of a batch (split by input
    features, each thread also gathers its features of every row, checking each index)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    pos = 64 + (5 if where == "first thread" else 40)  # batch 1: perm[64:128], 32 rows a thread
    n_in = 40 if split == "batch rows" else 600  # 600 x 33 weights, 2 x 64 rows < 600 features
    old = _training._set_min_parallel_flops(0.0)
    queue = _training._set_run_queue_answer(False)  # whatever else runs on this machine
    try:
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            args = _train_args(widths=(n_in, 33, 3), acts=(K.RELU, K.SOFTMAX), bias=(True, True),
                               n=300, batch_size=64, weighted=True)
            args["Y"][args["perm"][pos]] = 9
            before = [W.copy() for W in args["Ws"]]
            _training.thread_statistics(reset=True)
            with pytest.raises(IndexError, match="class label 9"):
                run_train_batches(cy, args)
            assert not np.array_equal(args["Ws"][0], before[0])  # batch 0 was applied
            assert _training.thread_statistics(reset=True)["feature_split_batches"] == (
                0 if split == "batch rows" else 1)
            args = _train_args(widths=(n_in, 33, 3), acts=(K.RELU, K.SOFTMAX), bias=(True, True),
                               n=300, batch_size=64, weighted=True)
            args["perm"][pos] = 5000
            with pytest.raises(IndexError, match="row index 5000"):
                run_train_batches(cy, args)
    finally:
        _training._set_min_parallel_flops(old)
        _training._set_run_queue_answer(queue)


def test_phase_statistics_account_for_the_first_threads_time():
    import time

    args = _train_args(widths=(40, 33, 3), acts=(K.RELU, K.SOFTMAX), bias=(True, True), n=600, batch_size=64)
    _training.phase_statistics(reset=True)
    start = time.perf_counter()
    run_train_batches(cy, args)
    elapsed = time.perf_counter() - start
    phases = _training.phase_statistics(reset=True)
    assert tuple(phases) == _training.PHASE_NAMES
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["forward"] > 0 and phases["weight gradients"] > 0 and phases["optimizer update"] > 0
    assert 0 < sum(phases.values()) <= elapsed
    assert sum(_training.phase_statistics().values()) == 0  # reset


def test_train_batches_releases_the_gil():
    """Another Python thread keeps running during one long call.

    The call is sized to take about 0.1 s (65,536 rows): a shorter one left a
    loaded machine's scheduler too few chances to run the ticker at all.
    """
    import threading
    import time

    threadpoolctl = pytest.importorskip("threadpoolctl")
    args = _train_args(np.float32, widths=(128, 128, 10), acts=(K.RELU, K.SOFTMAX),
                       bias=(True, True), n=65536, batch_size=32)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.002)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.01)
        with threadpoolctl.threadpool_limits(1, user_api="blas"):  # steady timing on busy machines
            start = time.perf_counter()
            run_train_batches(cy, args)
            stop = time.perf_counter()
    finally:
        done.set()
        thread.join()
    margin = (stop - start) / 5
    inside = [t for t in ticks if start + margin < t < stop - margin]
    assert len(inside) >= 3, f"{len(inside)} ticks during a {stop - start:.3f} s call"


def test_train_batches_accepts_unaligned_data():
    """X, Y and SW are only gathered, so they may be unaligned (e.g. from a byte buffer)."""
    args = _train_args(loss=K.MSE, acts=(K.RELU, K.RELU, K.LINEAR), widths=(1, 9, 6, 1), weighted=True)
    expected = _copy_args(args)
    for key in ("X", "Y", "SW"):
        a = args[key]
        buf = np.empty(a.nbytes + 1, np.uint8)[1:]
        u = buf.view(a.dtype).reshape(a.shape)
        u[...] = a
        assert not u.flags.aligned
        args[key] = u
    assert run_train_batches(cy, args) == run_train_batches(cy, expected) == args["n_batches"]
    for a, b in zip(args["Ws"], expected["Ws"]):
        np.testing.assert_array_equal(a, b)


@DTYPES
def test_train_batches_threads_match_one_thread(dtype):
    """The row/column split across OpenMP threads gives the one-thread result (up to BLAS
    blocking), and the BLAS thread counts are restored after the call."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    args = _train_args(dtype, K.OPT_ADAM, widths=(40, 33, 17, 3), n=300, batch_size=64, weighted=True)
    one, many = _copy_args(args), _copy_args(args)
    with threadpoolctl.threadpool_limits(1):
        assert run_train_batches(cy, one) == args["n_batches"]
    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
    old = _training._set_min_parallel_flops(0.0)  # split even this small net
    queue = _training._set_run_queue_answer(False)  # whatever else runs on this machine
    try:
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            _training.thread_statistics(reset=True)
            assert run_train_batches(cy, many) == args["n_batches"]
            stats = _training.thread_statistics()
    finally:
        _training._set_min_parallel_flops(old)
        _training._set_run_queue_answer(queue)
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before
    assert stats["parallel_batches"] == args["n_batches"]  # fewer than a contention window
    for key in STATE:
        for a, b in zip(one[key], many[key]):
            close(b, a, dtype, 10.0)
    close(many["out"], one["out"], dtype, 10.0)


def _two_thread_run(args, *settings):
    """``run_train_batches`` on two OpenMP threads whatever else runs on this machine,
    with the test hooks ``(setter, value)`` set for the call; thread_statistics() of it."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    olds = []
    try:
        for setter, value in ((_training._set_run_queue_answer, False), *settings):
            olds.append((setter, setter(value)))
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            _training.thread_statistics(reset=True)
            assert run_train_batches(cy, args) == args["n_batches"]
            return _training.thread_statistics(reset=True)
    finally:
        for setter, old in reversed(olds):
            setter(old)


def _one_thread_run(args):
    """``run_train_batches`` on a copy of ``args`` with BLAS and OpenMP at one thread; the copy."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    one = _copy_args(args)
    with threadpoolctl.threadpool_limits(1):
        assert run_train_batches(cy, one) == args["n_batches"]
    return one


@DTYPES
@pytest.mark.parametrize("n", [300, 289])  # a last batch of 12 rows, or of one (none for thread 1)
def test_first_layer_split_by_input_features_matches_one_thread(dtype, n):
    """A first layer with more inputs than the threads' batch rows is split by its input
    features (each thread's rows of W, their partial products added up after a barrier),
    and gives the one-thread result, as the split by batch rows does."""
    args = _train_args(dtype, K.OPT_ADAM, widths=(300, 64, 17, 3), n=n, batch_size=32, weighted=True)
    features, rows = _copy_args(args), _copy_args(args)
    one = _one_thread_run(args)
    flops = (_training._set_min_parallel_flops, 0.0)
    stats = _two_thread_run(features, flops)
    by_rows = _two_thread_run(rows, flops, (_training._set_feature_split, False))
    assert stats["parallel_batches"] == stats["feature_split_batches"] == args["n_batches"]
    assert by_rows["parallel_batches"] == args["n_batches"] and by_rows["feature_split_batches"] == 0
    for result in (features, rows):
        for key in STATE:
            for a, b in zip(one[key], result[key]):
                close(b, a, dtype, 10.0)
        close(result["out"], one["out"], dtype, 10.0)


@DTYPES
@pytest.mark.parametrize("zeros", ["some columns", "one thread's every column"])
def test_columns_zero_in_a_batch_are_left_out_of_the_first_layers_products(dtype, zeros):
    """Split by features, a thread packs the columns of its batch that are not zero in every
    row (and their rows of W) and multiplies only those; the rows of dW of the others are
    l2 W (l2 = 1e-3 on the first layer here).  The same training as reading every column
    and as one thread, also when a thread keeps no column at all."""
    args = _train_args(dtype, K.OPT_ADAM, widths=(300, 64, 17, 3), n=289, batch_size=32, weighted=True)
    X = args["X"]
    if zeros == "some columns":
        X[:, ::3] = 0.0  # zero in every batch
        X[np.random.default_rng(5).random(X.shape) < 0.9] = 0.0  # and in some batches
        X[:, 7] = -0.0
    else:
        X[:, :160] = 0.0  # thread 0's columns (0:144 or 0:152)
    skip, every = _copy_args(args), _copy_args(args)
    one = _one_thread_run(args)
    flops = (_training._set_min_parallel_flops, 0.0)
    stats = _two_thread_run(skip, flops)
    read_all = _two_thread_run(every, flops, (_training._set_column_skip, False))
    assert stats["feature_split_batches"] == args["n_batches"] == stats["column_skip_batches"]
    assert read_all["feature_split_batches"] == args["n_batches"] and read_all["column_skip_batches"] == 0
    for result in (skip, every):
        for key in STATE:
            for a, b in zip(one[key], result[key]):
                close(b, a, dtype, 10.0)
        close(result["out"], one["out"], dtype, 10.0)


def test_a_float32_batch_of_16_rows_splits_by_features_on_two_threads():
    """Split by features, each thread's first-layer products take all 16 rows, so the
    batch splits from 8 rows a thread even where small float32 products want 16."""
    args = _train_args(np.float32, K.OPT_ADAM, widths=(300, 64, 3), acts=(K.RELU, K.SOFTMAX),
                       bias=(True, True), n=160, batch_size=16)
    one = _one_thread_run(args)
    stats = _two_thread_run(args, (_training._set_min_rows_per_thread, (8, 16)))
    assert stats["parallel_batches"] == stats["feature_split_batches"] == args["n_batches"]
    for key in STATE:
        for a, b in zip(one[key], args[key]):
            close(b, a, np.float32, 10.0)


@DTYPES
def test_a_one_thread_call_of_small_products_gives_blas_threads_back(dtype):
    """A call too small to split (one thread) holds BLAS to one thread for its small
    products and restores every BLAS pool afterwards; the result is the same with the
    hold turned off."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    args = _train_args(dtype, K.OPT_ADAM, widths=(40, 33, 17, 3), n=300, batch_size=8)
    held, free = _copy_args(args), _copy_args(args)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
        assert run_train_batches(cy, held) == args["n_batches"]
        assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before
        old = _training._set_one_blas_thread_below(0.0)
        try:
            assert run_train_batches(cy, free) == args["n_batches"]
        finally:
            _training._set_one_blas_thread_below(old)
    for key in STATE:
        for a, b in zip(held[key], free[key]):
            close(b, a, dtype, 10.0)


@pytest.mark.parametrize("dtype, level, batch_size, threads", [
    ("float64", 0, 16, 2), ("float64", 0, 15, 1),
    ("float32", 3, 16, 2), ("float32", 3, 15, 1),  # AVX2's small products: 8 rows a thread
    ("float32", 4, 32, 2), ("float32", 4, 31, 1),  # AVX-512's: 16 rows a thread
])
def test_batches_are_split_from_8_rows_a_thread_or_16_for_float32_with_avx512(dtype, level, batch_size,
                                                                               threads):
    """Two threads need 8 rows each (``MIN_ROWS_PER_THREAD``), 16 for float32 where the small
    products run AVX-512's 64-byte vectors (``MIN_ROWS_PER_THREAD_F32_WIDE``)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    if level and level not in _gemm_levels():
        pytest.skip(f"this CPU does not run x86 level {level}")
    args = _train_args(dtype, K.OPT_ADAM, widths=(200, 64, 10), acts=(K.RELU, K.SOFTMAX),
                       bias=(True, True), n=16 * batch_size, batch_size=batch_size)
    queue = _training._set_run_queue_answer(False)
    before = _dense._set_gemm_level(level)
    try:
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            _training.thread_statistics(reset=True)
            assert run_train_batches(cy, args) == 16
            stats = _training.thread_statistics(reset=True)
    finally:
        _dense._set_gemm_level(before)
        _training._set_run_queue_answer(queue)
    assert stats["parallel_batches"] == (16 if threads == 2 else 0)


def test_min_rows_per_thread_hook_sets_and_restores_both():
    old = _training._set_min_rows_per_thread(4)
    try:
        assert old == (8, 16)
        assert _training._set_min_rows_per_thread(old) == (4, 4)
    finally:
        _training._set_min_rows_per_thread(old)
    assert _training._set_min_rows_per_thread(old) == (8, 16)


def test_a_busy_stretch_stays_with_its_plan():
    """The contention fallback's one-thread deadline is the plan's (one fit's): a plan whose
    deadline lies ahead runs on one thread, and a new plan starts with the threads again."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    args = _train_args("float64", K.OPT_ADAM, widths=(40, 33, 17, 3), n=300, batch_size=64)
    old = _training._set_min_parallel_flops(0.0)
    queue = _training._set_run_queue_answer(False)
    try:
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            busy = plan_from_arrays(_copy_args(args))
            busy.thread_state[:2] = (1e300, 0.05)  # a stretch on one thread that never ends
            _training.thread_statistics(reset=True)
            cy.train_batches(busy, 0, args["n_batches"], args["lrs"], 0)
            assert _training.thread_statistics(reset=True)["fallback_batches"] == args["n_batches"]
            fresh = plan_from_arrays(_copy_args(args))
            cy.train_batches(fresh, 0, args["n_batches"], args["lrs"], 0)
            assert _training.thread_statistics(reset=True)["parallel_batches"] == args["n_batches"]
    finally:
        _training._set_min_parallel_flops(old)
        _training._set_run_queue_answer(queue)
    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
    with pytest.raises(ValueError, match=r"thread_state has shape \(3,\), expected \(5,\)"):
        bad = plan_from_arrays(_copy_args(args))
        bad.thread_state = np.zeros(3)
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            cy.train_batches(bad, 0, 1, args["lrs"], 0)
    # the bad plan is refused before BLAS is held at one thread: no hold is left behind
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before
    assert _dense.hold_blas_single()
    try:
        assert {lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"} == {1}
    finally:
        _dense.release_blas_single()
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before


def test_cores_that_slow_down_alike_send_the_batches_to_one_thread():
    """No thread waits for the other when every core slows down alike (another process on
    each core's other hyperthread, virtual CPUs sharing a core): the step times on the
    threads show it.  Two spans in a row well above the fastest send the batches to one
    thread for a stretch; the threads come back only if they beat that stretch's time per
    batch, and otherwise the next stretch is twice as long."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    args = _train_args("float64", K.OPT_ADAM, widths=(40, 33, 17, 3), n=16 * 600, batch_size=16)
    n = args["n_batches"]
    old_flops = _training._set_min_parallel_flops(0.0)
    old_rows = _training._set_min_rows_per_thread(8)
    queue = _training._set_run_queue_answer(False)
    # from batch 100 on, a batch on the threads measures 10**9 s more than it took (one
    # thread's batches, microseconds, are measured as they are), judged a window of 8
    # batches at a time; slow is a million times the fastest window, and neither the
    # waits at barriers nor the probe count here: on a machine busy with other work (a
    # test suite beside this one) a window of microseconds may take milliseconds, and
    # this test must not depend on that
    old = _training._set_parallel_slowdown(1e9, 100, span=0.0, slower=1e6, probe_after=1e12,
                                           wait_share=2.0)
    try:
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            slowed = plan_from_arrays(_copy_args(args))
            _training.thread_statistics(reset=True)
            assert cy.train_batches(slowed, 0, n, args["lrs"], 0).batches == n
            stats = _training.thread_statistics(reset=True)
            assert stats["fallbacks"] == stats["slowdowns"] == 1
            assert 100 < stats["parallel_batches"] <= 100 + 3 * 8  # caught within three windows
            assert stats["fallback_batches"] == n - stats["parallel_batches"]
            best, serial = slowed.thread_state[2:4]
            assert 0 < best < 1.0 and 0 < serial < 1.0
            # the stretch is over and the cores are still slow: the threads' first judged
            # window loses to the stretch's time per batch, and the next stretch is longer
            slowed.thread_state[0] = 1e-9
            _training._set_parallel_slowdown(1e9, 0)
            assert cy.train_batches(slowed, 0, n, args["lrs"], 0).batches == n
            stats = _training.thread_statistics(reset=True)
            assert stats["parallel_batches"] == 2 * 8 and stats["fallbacks"] == stats["slowdowns"] == 1
            assert slowed.thread_state[1] == 0.1
            # a stretch that ran slower than the threads now do: the threads stay, and
            # their time per batch is the reference from then on (no later span counts
            # as slow here; three windows, the first not judged)
            _training._set_parallel_slowdown(0.0, 0, slower=1e9)
            slowed.thread_state[:] = (1e-9, 0.05, 1e-9, 1.0, 1.0)
            assert cy.train_batches(slowed, 0, 24, args["lrs"], 0).batches == 24
            stats = _training.thread_statistics(reset=True)
            assert stats["parallel_batches"] == 24 and stats["slowdowns"] == 0
            assert slowed.thread_state[2] > 1e-9 and slowed.thread_state[3] == 0.0
        # a fit that begins on slowed cores: no faster span to compare with, but after
        # PROBE_AFTER seconds on the threads a short stretch on one thread shows it
        _training._set_parallel_slowdown(1e9, 0, span=0.0, slower=1e12, probe_after=0.02)
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            begun_slow = plan_from_arrays(_copy_args(args))
            assert cy.train_batches(begun_slow, 0, n, args["lrs"], 0).batches == n
            stats = _training.thread_statistics(reset=True)
            # the probe at the first judged window, then (if its 20 ms of batches did not
            # finish the call) every return of the threads loses to one thread
            assert stats["slowdowns"] >= 1
            assert stats["parallel_batches"] >= 2 * 8
            assert stats["fallback_batches"] > n // 2
            assert begun_slow.thread_state[4] >= 1e9  # its seconds on the threads, measured ones included
    finally:
        _training._set_parallel_slowdown(*old)
        _training._set_min_parallel_flops(old_flops)
        _training._set_min_rows_per_thread(old_rows)
        _training._set_run_queue_answer(queue)


def test_busy_cores_keep_a_fit_on_one_thread_until_the_run_queue_frees_them():
    """A fit's first call runs on one thread when the run queue alone exceeds the cores;
    when a stretch on one thread ends, another one follows, twice as long, while the
    run queue leaves no core free for the threads; once it does, the threads run."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _blas.openmp_enabled():
        pytest.skip("built without OpenMP")
    args = _train_args("float64", K.OPT_ADAM, widths=(40, 33, 17, 3), n=300, batch_size=64)
    n = args["n_batches"]
    old = _training._set_min_parallel_flops(0.0)
    try:
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            _training._set_run_queue_answer(True)
            fresh = plan_from_arrays(_copy_args(args))
            _training.thread_statistics(reset=True)
            cy.train_batches(fresh, 0, n, args["lrs"], 0)
            assert _training.thread_statistics(reset=True)["fallback_batches"] == n
            assert fresh.thread_state[0] > 0 and fresh.thread_state[1] == 0.05  # a first stretch
            ended = plan_from_arrays(_copy_args(args))
            ended.thread_state[:2] = (1e-9, 0.05)  # a stretch that is over
            cy.train_batches(ended, 0, n, args["lrs"], 0)
            assert _training.thread_statistics(reset=True)["fallback_batches"] == n
            assert ended.thread_state[1] == 0.1  # the next stretch, twice as long
            _training._set_run_queue_answer(False)
            ended.thread_state[:2] = (1e-9, 0.1)
            cy.train_batches(ended, 0, n, args["lrs"], 0)
            assert _training.thread_statistics(reset=True)["parallel_batches"] == n
            assert ended.thread_state[0] == 0.0
    finally:
        _training._set_min_parallel_flops(old)
        _training._set_run_queue_answer(None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc/loadavg")
def test_the_run_queue_check_reads_the_machine():
    # this thread is running: with a million threads more, they wait; counting a million
    # of this process's own as running already, nothing does
    assert _training._run_queue_cores_taken(10**6, 0)
    assert not _training._run_queue_cores_taken(0, 10**6)

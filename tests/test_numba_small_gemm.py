"""The Numba backend's products without BLAS (``numba/_small_gemm.py``).

Its tiles are LLVM IR written by hand (vectors of ``VECTOR_BYTES``), so every
tile shape -- 1 to 4 rows, 8 with AVX-512 (``TILE_ROWS``), 1 to 3 vectors of
columns -- is compared with a
float64 product here, for both dtypes, in place on views and on a transpose,
with the widths taken in vectors of this machine's size so that each path runs
whatever the CPU.
"""
import numpy as np
import pytest

numba = pytest.importorskip("numba")

from fastnn._kernels.numba import _blas, _small_gemm as SG  # noqa: E402

TOL = {"float32": 1e-5, "float64": 1e-13}


@numba.njit
def _small_gemm(x, w, z):
    """z := x @ w by ``small_gemm`` alone (C-contiguous arrays)."""
    m, k = x.shape
    n = w.shape[1]
    SG.small_gemm(m, n, k, SG.pointer(x, 0), k, 1, SG.pointer(w, 0), n, SG.pointer(z, 0), n)


def _lanes(dtype):
    return SG.VECTOR_BYTES // np.dtype(dtype).itemsize


def _close(got, x, w, dtype):
    """``got`` against the float64 product, to the dtype's rounding of k products."""
    expected = x.astype(np.float64) @ w.astype(np.float64)
    scale = 1 + np.abs(x).sum(axis=1, keepdims=True) @ np.abs(w).max(axis=0, keepdims=True) if x.size else 1
    np.testing.assert_array_less(np.abs(got - expected), TOL[dtype] * scale + 1e-30)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_tile_shape_matches_the_float64_product(dtype):
    rng = np.random.default_rng(0)
    lanes = _lanes(dtype)
    for m in (*range(1, 10), 12, 13, 16, 17, 20, 23):  # groups of TILE_ROWS (8 or 4) and what is left
        for vectors in range(1, 6):  # blocks of 3, 2 and 1 vectors
            for k in (1, 13, 130):
                n = vectors * lanes
                x = rng.standard_normal((m, k)).astype(dtype)
                w = rng.standard_normal((k, n)).astype(dtype)
                z = np.full((m, n), np.nan, dtype)
                _small_gemm(x, w, z)
                _close(z, x, w, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_and_matmul_tn_route_by_shape_and_agree_with_numpy(dtype):
    rng = np.random.default_rng(1)
    lanes = _lanes(dtype)
    for m, k, n in [(16, 784, 8 * lanes), (32, 20, 2 * lanes), (100, 30, lanes), (33, 12, 2 * lanes),
                    (7, 5, 10), (300, 9, lanes), (0, 4, lanes), (5, 0, lanes), (0, 4, 10), (5, 0, 10)]:
        x = rng.standard_normal((m, k)).astype(dtype)
        w = rng.standard_normal((k, n)).astype(dtype)
        z = np.full((m, n), np.nan, dtype)
        _blas.matmul(x, w, z)
        _close(z, x, w, dtype)
        dz = rng.standard_normal((m, n)).astype(dtype)
        dw = np.full((k, n), np.nan, dtype)
        _blas.matmul_tn(x, dz, dw)
        _close(dw, x.T, dz, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_views_are_read_in_place(dtype):
    rng = np.random.default_rng(2)
    lanes = _lanes(dtype)
    big_x = rng.standard_normal((20, 50)).astype(dtype)
    big_w = rng.standard_normal((40, 5 * lanes)).astype(dtype)
    x, w = big_x[3:11, 5:37], big_w[4:36, lanes:3 * lanes]  # rows and columns of larger arrays
    z = np.zeros((30, 4 * lanes), dtype)[2:10, lanes:3 * lanes]
    _blas.matmul(x, w, z)
    _close(z, x, w, dtype)
    with pytest.raises(ValueError, match="contiguous rows"):  # columns not adjacent: outside the contract
        _blas.matmul(big_x[::2, ::3], big_w[:17, :lanes], np.zeros((10, lanes), dtype))
    for m in (16, SG.SMALL_ROWS + 1):  # a weight gradient on views: the small kernel, then BLAS
        x = rng.standard_normal((m, 30)).astype(dtype)[:, 4:11]
        dz = rng.standard_normal((m, 3 * lanes)).astype(dtype)[:, :2 * lanes]
        dw = np.zeros((9, 4 * lanes), dtype)[1:8, :2 * lanes]
        _blas.matmul_tn(x, dz, dw)
        _close(dw, x.T, dz, dtype)


def test_use_small_gemm_limits():
    lanes = _lanes("float32")
    assert SG.use_small_gemm(SG.SMALL_ROWS, 8 * lanes, 4)
    assert not SG.use_small_gemm(SG.SMALL_ROWS + 1, 8 * lanes, 4)
    assert SG.use_small_gemm(SG.NARROW_ROWS, lanes, 4) == (lanes <= SG.NARROW_WIDTH)
    assert not SG.use_small_gemm(4, lanes + 1, 4)  # not whole vectors
    assert not SG.use_small_gemm(4, 0, 4)
    # with BLAS held at one thread (the training loop's split), float32 up to SMALL_ROWS_F32_HELD
    assert SG.SMALL_ROWS_F32_HELD == (256 if SG.VECTOR_BYTES == 64 else SG.SMALL_ROWS)
    assert SG.use_small_gemm(SG.SMALL_ROWS_F32_HELD, 8 * lanes, 4, True)
    assert not SG.use_small_gemm(SG.SMALL_ROWS_F32_HELD + 1, 8 * lanes, 4, True)
    assert not SG.use_small_gemm(SG.SMALL_ROWS + 1, 16 * _lanes("float64"), 8, True)  # float64: no


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m, held", [(16, False), (200, True), (200, False)])
def test_weight_gradient_rows_of_a_short_batch(dtype, m, held):
    """16 batch rows: the small kernel; 200 with BLAS held at one thread: the kernel for
    float32 with AVX-512 (``SMALL_ROWS_F32_HELD``), else BLAS; the same gradient."""
    rng = np.random.default_rng(3)
    lanes = _lanes(dtype)
    n_in, n_out = 40, 3 * lanes
    X = rng.standard_normal((m, n_in)).astype(dtype)
    dZ = rng.standard_normal((m, n_out)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    for lo, hi in [(0, 40), (5, 23), (39, 40)]:
        dW = np.full((n_in, n_out), 7.0, dtype)
        _blas.weight_grad_rows(X, dZ, 0.0, W, dW, lo, hi, held)
        _close(dW[lo:hi], X.T[lo:hi], dZ, dtype)
        assert (dW[:lo] == 7).all() and (dW[hi:] == 7).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_packed_w_gives_the_in_place_bits(dtype):
    """With AVX-512 a w of 1 MiB or more times 16 rows or more is read through copies of
    its column blocks, 128 of its rows at a time (``packs_w``): the same bits as the same
    rows taken 8 at a time (in place, the same groups of rows), for both column-block
    remainders, a last chunk of 44 rows and the weight gradient's transposed x."""
    if not SG.PACK:
        pytest.skip("this CPU does not run AVX-512")
    rng = np.random.default_rng(4)
    lanes = _lanes(dtype)
    itemsize = np.dtype(dtype).itemsize
    for m in (16, 21, 40):
        for vectors in (55, 56):
            k, n = 300, vectors * lanes
            assert SG.packs_w(m, k, n, itemsize) and not SG.packs_w(8, k, n, itemsize)
            x = rng.standard_normal((m, k)).astype(dtype)
            w = rng.standard_normal((k, n)).astype(dtype)
            z, z_rows = np.full((m, n), np.nan, dtype), np.full((m, n), np.nan, dtype)
            _small_gemm(x, w, z)
            for r0 in range(0, m, 8):
                _small_gemm(x[r0:r0 + 8], w, z_rows[r0:r0 + 8])
            assert np.array_equal(z, z_rows), (m, n)
            _close(z, x, w, dtype)
    if dtype == "float32":  # a split batch's weight gradient: 256 batch rows times 1 MiB of dZ
        X, dZ = rng.standard_normal((256, 40)).astype(dtype), rng.standard_normal((256, 1024)).astype(dtype)
        W = np.zeros((40, 1024), dtype)
        dW, dW_rows = np.full_like(W, np.nan), np.full_like(W, np.nan)
        assert SG.packs_w(40, 256, 1024, 4)
        _blas.weight_grad_rows(X, dZ, 0.0, W, dW, 0, 40, True)
        for r0 in range(0, 40, 8):
            _blas.weight_grad_rows(X, dZ, 0.0, W, dW_rows, r0, r0 + 8, True)
        assert np.array_equal(dW, dW_rows)
        _close(dW, X.T.copy(), dZ, dtype)

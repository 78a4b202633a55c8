"""``csr_from_dense``, the compiled backends' conversion of a dense X to CSR (an optional
kernel of the contract, see ``fastnn._kernels``), held to SciPy's CSR and to the NumPy
blocks of ``SparseInput.from_dense``, on every backend that has it."""
import threading

import numpy as np
import pytest

from fastnn import _kernels as K
from fastnn._kernels.sparse import SparseInput

sp = pytest.importorskip("scipy.sparse")

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
WITH_KERNEL = [name for name in K.available() if hasattr(K.load(name), "csr_from_dense")]


@pytest.fixture(params=WITH_KERNEL)
def convert(request):
    return K.load(request.param).csr_from_dense


def test_the_compiled_backends_have_it():
    assert {"numba", "cython"} & set(K.available()) <= set(WITH_KERNEL)


@DTYPES
@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (1, 1), (30, 17), (7, 300)])
def test_csr_from_dense_is_scipys_canonical_csr(convert, dtype, shape):
    """Every non-zero (NaN and infinities included, -0.0 not) in row order and
    ascending columns: SciPy's CSR of the same matrix, and the NumPy path's."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal(shape).astype(dtype)
    X[rng.random(shape) < 0.6] = 0
    if X.size:
        X.flat[::7] = -0.0
        X.flat[3::11] = np.nan
        X.flat[5::13] = np.inf
    if shape[0] > 2:
        X[2] = 0  # an empty row
    indptr, indices, data = convert(X)
    assert (indptr.dtype, indices.dtype, data.dtype) == (np.int64, np.int32, X.dtype)
    assert indptr.shape == (shape[0] + 1,) and indices.shape == data.shape == (indptr[-1],)
    expected = sp.csr_matrix(np.where(np.isnan(X), 1.0, X))  # SciPy drops NaN-free zeros only
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(indices, expected.indices)
    np.testing.assert_array_equal(np.isnan(data), np.isnan(X[X != 0]) if X.size else [])
    np.testing.assert_array_equal(data, X[(X != 0) | np.isnan(X)])
    for a, b in zip((indptr, indices, data), (lambda s: (s.indptr, s.indices, s.data))(
            SparseInput.from_dense(X))):
        np.testing.assert_array_equal(a, b)


def test_csr_from_dense_rejects_what_it_cannot_read(convert):
    for bad in (np.ones((3, 4), np.int64), np.ones((3, 4), np.float32)[:, ::2], np.ones(4, np.float32),
                [[1.0, 0.0]]):
        with pytest.raises(TypeError, match="csr_from_dense: X must be a C-contiguous 2-D float32"):
            convert(bad)


def test_csr_from_dense_while_another_thread_writes_x(convert):
    """X rewritten by another thread during the conversion: each call either returns a
    consistent CSR (row lengths that add up, indices in range) or raises a ValueError
    naming the row that changed -- never writes past its arrays."""
    X = np.zeros((4000, 200), np.float32)
    stop = threading.Event()

    def scribble():
        r = np.random.default_rng(3)
        while not stop.is_set():
            rows = r.integers(0, X.shape[0], 64)
            X[rows] = (r.random((64, X.shape[1])) < r.random()).astype(np.float32)

    writer = threading.Thread(target=scribble)
    writer.start()
    changed = consistent = 0
    try:
        for _ in range(40):
            try:
                indptr, indices, data = convert(X)
            except ValueError as exc:
                assert "changed while it was converted" in str(exc)
                changed += 1
                continue
            assert indptr[0] == 0 and (np.diff(indptr) >= 0).all() and indptr[-1] == len(indices)
            assert ((indices >= 0) & (indices < X.shape[1])).all() and (data != 0).all()
            consistent += 1
    finally:
        stop.set()
        writer.join()
    assert changed + consistent == 40

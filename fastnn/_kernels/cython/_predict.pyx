# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math
"""``predict_rows`` for the Cython backend: the forward pass of a stack of Dense
layers over every row of ``X`` in one call (see the contract in
``fastnn._kernels``).

Design notes
------------
* Arguments are checked once, with the GIL; the rows then run without it.
* Rows go in blocks of at most ``BLOCK_ROWS``; OpenMP threads take blocks
  dynamically (a thread that loses its core simply takes fewer), each with
  its own rows of the workspaces, and call BLAS on one thread -- every loaded
  BLAS is limited to one thread for the call: a threaded BLAS's spinning
  pool next to OpenMP threads takes their cores and the call runs many times
  slower (``docs/performance.md``, "BLAS and OpenMP thread pools").  The
  last layer writes straight into ``out``.
* The finiteness check of the input is fused in: each block is scanned just
  before its first GEMM reads it, so the check costs no extra pass over
  memory.  The scan tests exponent bits (integer compares ORed together),
  which vectorizes (a clone per x86 level) and cannot be optimized away.
* Same kernels (``dense_forward_ptr``) as the per-kernel path, so the result
  equals ``dense_forward`` layer by layer up to BLAS's blocking of different
  row counts.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

from ._blas cimport omp_threads
from ._codes cimport N_ACTIVATIONS
from ._dense cimport blas_acquire_single, blas_release_single, dense_forward_ptr, small_gemm_rows
from ._sparse cimport nonzero_count_ptr, nonzero_forward_ptr

import numpy as np

cnp.import_array()

cdef enum:
    MAX_LAYERS = 64
    MAX_THREADS = 64
    BLOCK_ROWS = 256  # rows per step of a thread: W is packed once per block, and 256 rows of
                      # 784 float32 columns (800 KB) still fit a 1 MB L2 after the scan

# The fewest rows per block that the small-product kernel may set (see _block_rows).
cdef Py_ssize_t SMALL_BLOCK_MIN = 64

# Forward FLOPs from which the rows are split across threads.
cdef double MIN_PARALLEL_FLOPS = 4e6


ctypedef struct Net:
    Py_ssize_t n, L, block, ws_rows
    Py_ssize_t width[MAX_LAYERS + 1]
    const char *X
    const char *W[MAX_LAYERS]
    const char *b[MAX_LAYERS]  # NULL: no bias
    int act[MAX_LAYERS]
    double alpha[MAX_LAYERS]
    char *Z[MAX_LAYERS]
    char *A[MAX_LAYERS]
    char *out
    double sparse_below  # a block of X with fewer non-zeros than this share reads only those
    int32_t *nz_idx  # (threads, n_0): a row's non-zeros, per thread
    char *nz_val
    int bad[MAX_THREADS]  # a thread saw a NaN or an infinity in X


cdef extern from "_simd_finite.h" nogil:
    int all_finite_f32 "fastnn_all_finite_f32"(const uint32_t *u, Py_ssize_t n)
    int all_finite_f64 "fastnn_all_finite_f64"(const uint64_t *v, Py_ssize_t n)


cdef inline bint _finite(const floating *x, Py_ssize_t count) noexcept nogil:
    """Whether every value is finite (``_simd_finite.h``)."""
    if floating is float:
        return all_finite_f32(<const uint32_t *> x, count)
    else:
        return all_finite_f64(<const uint64_t *> x, count)


cdef Py_ssize_t _block_rows() noexcept nogil:
    """Rows per block on several threads: BLOCK_ROWS, or as many as a product that skips
    BLAS takes where that is at least SMALL_BLOCK_MIN (AVX-512's 64 rows: 64-row products
    out of BLAS beat 256-row ones through it, see ``_dense``)."""
    cdef Py_ssize_t small = small_gemm_rows()
    return small if small >= SMALL_BLOCK_MIN else BLOCK_ROWS


cdef void _block(Net *net, const floating *X, Py_ssize_t start, int slot) noexcept nogil:
    """Rows start .. start + block - 1 (clipped to n) through every layer, on
    workspace rows slot * block ..; the last layer writes into out."""
    cdef Py_ssize_t m = min(net.block, net.n - start)
    cdef Py_ssize_t l, w0
    cdef Py_ssize_t n0 = net.width[0]
    cdef const floating *inp = X + start * n0
    cdef floating *a
    cdef Py_ssize_t row0 = slot * net.block
    if m <= 0:
        return
    if not _finite(inp, m * n0):
        net.bad[slot] = 1
        return
    for l in range(net.L):
        w0 = net.width[l + 1]
        if l == net.L - 1:
            a = <floating *> net.out + start * w0
        else:
            a = <floating *> net.A[l] + row0 * w0
        if l == 0 and net.sparse_below > 0 \
                and nonzero_count_ptr(inp, m * n0) < net.sparse_below * <double> (m * n0):
            nonzero_forward_ptr(m, n0, w0, inp, <const floating *> net.W[0], <const floating *> net.b[0],
                                net.act[0], <floating> net.alpha[0], <floating *> net.Z[0] + row0 * w0, a,
                                net.nz_idx + slot * n0, <floating *> net.nz_val + slot * n0)
        else:
            dense_forward_ptr(m, net.width[l], w0, inp, <const floating *> net.W[l],
                              <const floating *> net.b[l], net.act[l], <floating> net.alpha[l],
                              <floating *> net.Z[l] + row0 * w0, a, 1)
        inp = a


cdef void _run(Net *net, const floating *X, int nt) noexcept nogil:
    cdef Py_ssize_t j, n_blocks = (net.n + net.block - 1) // net.block
    if nt <= 1:
        for j in range(n_blocks):
            _block(net, X, j * net.block, 0)
        return
    for j in prange(n_blocks, num_threads=nt, schedule="dynamic"):
        _block(net, X, j * net.block, threadid())


cdef cnp.ndarray _array(str name, object x, int typenum, int ndim, bint writable):
    if not cnp.PyArray_Check(x):
        raise TypeError(f"predict_rows: {name} must be a numpy array, got {type(x).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray> x
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISNOTSWAPPED(a):
        expected = np.dtype("float32" if typenum == cnp.NPY_FLOAT else
                            "float64" if typenum == cnp.NPY_DOUBLE else "int64")
        raise TypeError(f"predict_rows: {name} has dtype {a.dtype}, expected {expected}")
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"predict_rows: {name} must be {ndim}-D, got shape {(<object> a).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"predict_rows: {name} must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"predict_rows: {name} is read-only")
    return a


def predict_rows(X, Ws, bs, acts, alphas, Zs, As, out, double sparse_below=0.0):
    """See ``fastnn._kernels``: out := the last layer's activations for every row
    of X; returns False (out unspecified) when X holds a NaN or an infinity.
    A block of rows whose share of non-zero values is below ``sparse_below``
    reads only those in the first layer (``nonzero_forward_ptr``)."""
    cdef Net net
    cdef Py_ssize_t L = len(Ws), l, n, rows
    cdef int typenum, nt, t
    cdef cnp.ndarray a, w
    cdef bint limited = False
    cdef double flops = 0.0
    if not (L == len(bs) == len(acts) == len(alphas) == len(Zs) == len(As)) or L == 0:
        raise ValueError("predict_rows: Ws, bs, acts, alphas, Zs and As need one entry per layer")
    if L > MAX_LAYERS:
        raise ValueError(f"predict_rows: at most {MAX_LAYERS} layers, got {L}")
    if not cnp.PyArray_Check(X):
        raise TypeError(f"predict_rows: X must be a numpy array, got {type(X).__name__}")
    typenum = cnp.PyArray_TYPE(<cnp.ndarray> X)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"predict_rows: X must be float32 or float64, got {X.dtype}")
    a = _array("X", X, typenum, 2, False)
    net.n = n = a.shape[0]
    net.L = L
    net.width[0] = a.shape[1]
    net.X = <const char *> cnp.PyArray_DATA(a)
    rows = -1
    for l in range(L):
        w = _array(f"Ws[{l}]", Ws[l], typenum, 2, False)
        if w.shape[0] != net.width[l]:
            raise ValueError(f"predict_rows: Ws[{l}] has shape {(<object> w).shape}, "
                             f"expected {net.width[l]} rows")
        net.width[l + 1] = w.shape[1]
        net.W[l] = <const char *> cnp.PyArray_DATA(w)
        a = _array(f"bs[{l}]", bs[l], typenum, 1, False)
        if a.shape[0] not in (0, w.shape[1]):
            raise ValueError(f"predict_rows: bs[{l}] has shape {(<object> a).shape}, "
                             f"expected ({w.shape[1]},) or (0,)")
        net.b[l] = NULL if a.shape[0] == 0 else <const char *> cnp.PyArray_DATA(a)
        net.act[l] = int(acts[l])
        if net.act[l] < 0 or net.act[l] >= N_ACTIVATIONS:
            raise ValueError(f"predict_rows: acts[{l}] = {net.act[l]} is not an activation code")
        net.alpha[l] = float(alphas[l])
        for name, arrays, store in (("Zs", Zs, 0), ("As", As, 1)):
            a = _array(f"{name}[{l}]", arrays[l], typenum, 2, True)
            if a.shape[1] != w.shape[1] or a.shape[0] < 1 or (rows >= 0 and a.shape[0] != rows):
                raise ValueError(f"predict_rows: {name}[{l}] has shape {(<object> a).shape}, "
                                 f"expected (rows, {w.shape[1]}) with the same rows in every layer")
            rows = a.shape[0]
            if store == 0:
                net.Z[l] = <char *> cnp.PyArray_DATA(a)
            else:
                net.A[l] = <char *> cnp.PyArray_DATA(a)
        flops += 2.0 * n * net.width[l] * net.width[l + 1]
    a = _array("out", out, typenum, 2, True)
    if (<object> a).shape != (n, net.width[L]):
        raise ValueError(f"predict_rows: out has shape {(<object> a).shape}, expected {(n, net.width[L])}")
    net.out = <char *> cnp.PyArray_DATA(a)
    net.ws_rows = rows
    if n == 0:
        return True
    # Threads: one block of workspace rows each, BLAS on one thread while they run.
    # Work too small for threads runs on this thread with BLAS held at one thread
    # too: a multi-threaded BLAS would wake its pool for a few microseconds of
    # products, and its threads, spinning afterwards, slow whatever runs next
    # (the next train_batches call, when fit checks an epoch's last outputs).
    nt = <int> max(1, min(<Py_ssize_t> omp_threads(), <Py_ssize_t> MAX_THREADS, rows // 16,
                          (n + 15) // 16))
    if flops < MIN_PARALLEL_FLOPS:
        nt = 1
    if nt > 1 or flops < MIN_PARALLEL_FLOPS:
        limited = blas_acquire_single()
        if not limited:
            nt = 1
    net.block = min(_block_rows(), rows // nt) if nt > 1 else min(<Py_ssize_t> 4096, rows)
    for t in range(MAX_THREADS):
        net.bad[t] = 0
    net.sparse_below = sparse_below if sparse_below == sparse_below else 0.0  # NaN: never
    if net.sparse_below > 0:
        nz_idx = np.empty(nt * net.width[0], np.int32)
        nz_val = np.empty(nt * net.width[0], X.dtype)
        net.nz_idx = <int32_t *> cnp.PyArray_DATA(nz_idx)
        net.nz_val = <char *> cnp.PyArray_DATA(nz_val)
    try:
        if typenum == cnp.NPY_FLOAT:
            with nogil:
                _run(&net, <const float *> net.X, nt)
        else:
            with nogil:
                _run(&net, <const double *> net.X, nt)
    finally:
        if limited:
            blas_release_single()
    for t in range(MAX_THREADS):
        if net.bad[t]:
            return False
    return True

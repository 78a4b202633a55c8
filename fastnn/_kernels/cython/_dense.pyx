# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math
"""Dense layers and maxout for the Cython backend (see ``fastnn._kernels``).

Design notes
------------
* The GEMMs go to BLAS (``_blas.gemm_rowmajor``: sgemm/dgemm from SciPy);
  everything around them -- bias add and activation, or the bias gradient --
  is one pass over each output row while that row is still in cache.  A
  product ``x @ w`` of at most ``SMALL_GEMM_ROWS`` rows (a small batch, or a
  thread's share of one), or a weight gradient ``x.T @ dz`` over that many
  batch rows, whose width is whole vectors goes to ``_simd_gemm.h`` instead,
  which reads its operands where they lie: BLAS's copy of them into its
  blocks costs more than such a product (forward 1.6-2.9x faster at 16 x 784 x
  128 and 8 x 784 x 128, the same at 32 rows, slower from 64; weight gradient
  1.3x at 16 and 1.2x at 32 batch rows, 784 x 128).  Narrow products (at most
  ``NARROW_GEMM_WIDTH`` columns) gain at up to 256 rows: 784 x 16 at 50 and
  100 rows 1.5-1.8x, 784 x 64 at 64 rows 1.2-1.35x.
* Threads.  By default BLAS does the threading and the epilogue is serial:
  an OpenMP loop right after a multi-threaded BLAS call fights BLAS's
  spinning pool for the cores and was measured up to about 100 times slower
  (``docs/performance.md``, "BLAS and OpenMP thread pools").
  ``dense_forward_threads(..., k)`` instead splits the batch rows into ``k``
  blocks, each thread running sgemm on its block and then the epilogue on
  the same rows; it runs only while BLAS is limited to one thread
  (``threadpoolctl``).
* Every kernel module here (all but ``_blas``) builds with
  ``-fno-math-errno -fno-trapping-math`` (the ``distutils`` line above): no
  kernel reads ``errno`` or the floating-point exception flags, and without
  these GCC will not vectorize ``sqrt`` or a loop that selects between two
  computed values (ReLU-family derivatives, clamps).  Unlike
  ``-ffast-math`` they change no result.
* ``cdivision`` is on in every kernel module here, debug builds included:
  a float division by zero must give inf/nan as in NumPy, not raise.
  ``FASTNN_CYTHON_DEBUG=1`` still turns bounds checking on.
* Arguments are typed memoryviews, so a wrong dtype, a non C-contiguous or
  read-only output raises ``ValueError`` before any work is done; shapes are
  checked next.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from ._blas cimport gemm_rowmajor, omp_threads
from ._activations cimport act_backward_rows, bias_act_rows, fastnn_act_set_level
from ._codes cimport N_ACTIVATIONS

cdef extern from "_simd_gemm.h" nogil:
    int gemm_set_level "fastnn_gemm_set_level"(int level)
    int gemm_level "fastnn_gemm_level"()
    int gemm_packs "fastnn_gemm_packs"(Py_ssize_t m, Py_ssize_t k, Py_ssize_t ldw, Py_ssize_t itemsize)
    Py_ssize_t gemm_set_pack_min_bytes "fastnn_gemm_set_pack_min_bytes"(Py_ssize_t min_bytes)
    void small_gemm_f32 "fastnn_small_gemm_f32"(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                                const float *x, Py_ssize_t sxr, Py_ssize_t sxc,
                                                const float *w, Py_ssize_t ldw, float *z,
                                                Py_ssize_t ldz)
    void small_gemm_f64 "fastnn_small_gemm_f64"(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                                const double *x, Py_ssize_t sxr, Py_ssize_t sxc,
                                                const double *w, Py_ssize_t ldw, double *z,
                                                Py_ssize_t ldz)

# x @ w with at most SMALL_GEMM_ROWS rows, or x.T @ dz over at most that many batch rows, with a
# width of whole 32-byte vectors, skips BLAS (see above); so does one at most NARROW_GEMM_WIDTH wide
# over at most NARROW_GEMM_ROWS rows.  With AVX-512 the kernel's 64-byte vectors and 8-row groups
# beat one-thread OpenBLAS up to 64 rows (2-core Xeon, float32, forward / weight gradient, kernel
# against BLAS: 64 x 784 x 128 87 / 83 against 115 / 103 us, 64 x 784 x 512 396 / 329 against
# 505 / 404; at 96-128 rows about even, and behind at 128 x 784 x 512), with 32-byte vectors up to
# 32 rows (_small_gemm_rows).
cdef Py_ssize_t SMALL_GEMM_ROWS = 32
# Float32 products of a loop that holds BLAS at one thread (``one_thread``: train_batches) skip
# BLAS up to this many rows with AVX-512.  There W was not in cache when the product began (the
# update of the batch before had streamed W, dW and the slots through it), and the kernel, which
# reads W in place, beat OpenBLAS's copy of it: 2-core Xeon, first thread's phases in one process,
# alternated: 784-128-10 Adam batch 128 (the weight gradient over 128 batch rows) 52-53 against
# 56-58 ms an epoch, whole epochs 141-146 against 148-151; 784-512-512-10 Adam batch 256 (128 rows
# a thread forward, 256 in the weight gradient) forward 371-377 against 429-433 ms, whole epochs
# 985-994 against 1,020-1,031 (its update slower, 136-138 against 71-72 ms, until the forward
# products packed a W of a megabyte or more: _simd_gemm.h, "Packed").
# Float64 at 128 rows ran 1.3-1.4x slower, so float64 keeps SMALL_GEMM_ROWS.
cdef Py_ssize_t SMALL_GEMM_ROWS_F32_ONE_THREAD = 32
cdef Py_ssize_t NARROW_GEMM_WIDTH = 64
cdef Py_ssize_t NARROW_GEMM_ROWS = 256
cdef bint SMALL_GEMM = True  # tests and benchmarks turn it off (_set_small_gemm)

cdef Py_ssize_t INT_MAX_BLAS = 2147483647


# ------------------------------------------------- is BLAS single-threaded now?
# The row split of dense_forward_threads only pays with BLAS on one thread and
# was measured about 100x slower with BLAS's own pool spinning beside it
# (docs/performance.md, "BLAS and OpenMP thread pools"), so it runs only
# when every loaded BLAS says so.  The getters are the libraries' own
# ``*_get_num_threads`` C functions (they follow ``threadpoolctl`` limits),
# looked up once with the matching setters; a BLAS without a known getter
# disables the split.  ``_training`` uses the setters to run BLAS on one
# thread for the duration of a call while it splits the work itself.
ctypedef int (*threads_getter)() noexcept nogil
ctypedef void (*threads_setter)(int) noexcept nogil
cdef enum:
    MAX_BLAS_LIBS = 8
cdef threads_getter _blas_getters[MAX_BLAS_LIBS]
cdef threads_setter _blas_setters[MAX_BLAS_LIBS]
cdef int _n_blas_getters = -1  # -1: not looked up yet; 0: unknown BLAS, no split
cdef bint _have_blas_setters = False

_OPENBLAS_GETTERS = (
    "scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
    "openblas_get_num_threads", "openblas_get_num_threads64_",
)


def _find_blas_thread_getters():
    """(get_num_threads, set_num_threads or 0) addresses for every loaded BLAS,
    or [] if one is unknown."""
    import ctypes

    try:
        import scipy.linalg.cython_blas  # noqa: F401 - make sure SciPy's BLAS is loaded
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    addresses = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        if lib.get("internal_api") != "openblas":
            return []
        try:
            dll = ctypes.CDLL(lib["filepath"])
        except OSError:
            return []
        for name in _OPENBLAS_GETTERS:
            fn = getattr(dll, name, None)
            if fn is not None:
                setter = getattr(dll, name.replace("_get_", "_set_"), None)
                addresses.append((ctypes.cast(fn, ctypes.c_void_p).value,
                                  0 if setter is None else ctypes.cast(setter, ctypes.c_void_p).value))
                break
        else:
            return []
    return addresses[:MAX_BLAS_LIBS] if 0 < len(addresses) <= MAX_BLAS_LIBS else []


cdef int _load_blas_thread_getters() except -1:
    global _n_blas_getters, _have_blas_setters
    cdef size_t getter, setter
    cdef int i = 0
    cdef bint setters = True
    for getter, setter in _find_blas_thread_getters():
        _blas_getters[i] = <threads_getter> getter
        _blas_setters[i] = <threads_setter> setter
        setters = setters and setter != 0
        i += 1
    _n_blas_getters = i
    _have_blas_setters = setters and i > 0
    return 0


cdef bint _blas_single_threaded() noexcept nogil:
    cdef int i
    if _n_blas_getters <= 0:
        return False
    for i in range(_n_blas_getters):
        if _blas_getters[i]() > 1:
            return False
    return True


# Holders of the one-thread limit (train_batches and predict_rows calls, and
# ``blas_threads.one_thread`` through ``hold_blas_single``: every hold in the
# process, all taken and released with the GIL held): the first saves and lowers
# the thread counts, the last restores them, so overlapping calls from several
# Python threads stay limited and the counts come back when the last one ends.
cdef int _single_holders = 0
cdef int _saved_threads[MAX_BLAS_LIBS]


cdef bint blas_acquire_single() except -1:
    """Run every loaded BLAS on one thread until the matching ``blas_release_single``.

    Returns True, or False (nothing changed, nothing to release) when a BLAS
    is unknown or cannot be limited.  Call with the GIL held.
    """
    global _single_holders
    cdef int i
    if _n_blas_getters < 0:  # Python code: another thread may run meanwhile
        _load_blas_thread_getters()
    # from here on no Python code runs, so no other thread can take or release a hold
    if _single_holders > 0:
        _single_holders += 1
        return True
    if _n_blas_getters <= 0:
        return False
    if not _blas_single_threaded() and not _have_blas_setters:
        return False
    for i in range(_n_blas_getters):
        _saved_threads[i] = _blas_getters[i]()
        if _saved_threads[i] > 1:
            _blas_setters[i](1)
    _single_holders = 1
    return True


cdef void blas_release_single() noexcept:
    """Undo one successful ``blas_acquire_single`` (GIL held)."""
    global _single_holders
    cdef int i
    _single_holders -= 1
    if _single_holders > 0:
        return
    _single_holders = 0
    for i in range(_n_blas_getters):
        if _saved_threads[i] > 1:
            _blas_setters[i](_saved_threads[i])


def hold_blas_single():
    """``blas_acquire_single`` for Python (``blas_threads.one_thread``): True if BLAS is
    now held at one thread until ``release_blas_single``, False if it cannot be."""
    return blas_acquire_single()


def release_blas_single():
    """Undo one ``hold_blas_single`` that returned True."""
    if _single_holders <= 0:
        raise RuntimeError("release_blas_single: no hold to release")
    blas_release_single()


def blas_single_threaded():
    """True if every loaded BLAS runs on one thread now (dense_forward's row split may run)."""
    if _n_blas_getters < 0:
        _load_blas_thread_getters()
    return _blas_single_threaded()


cdef inline int _check_act(int act) except -1:
    if act < 0 or act >= N_ACTIVATIONS:
        raise ValueError(f"unknown activation code {act}")
    return 0


cdef inline int _check_blas_size(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) except -1:
    if a > INT_MAX_BLAS or b > INT_MAX_BLAS or c > INT_MAX_BLAS:
        raise ValueError("array dimensions above 2**31 - 1 are not supported by BLAS")
    return 0


cdef inline bint _skips_blas(bint trans_b, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t itemsize,
                             bint one_thread) noexcept nogil:
    """Whether a product of ``rows`` rows (a batch's, or a thread's share) and ``n`` columns
    of ``itemsize``-byte values runs ``_simd_gemm.h`` rather than BLAS."""
    cdef Py_ssize_t most = SMALL_GEMM_ROWS
    if itemsize == 4 and one_thread:
        most = SMALL_GEMM_ROWS_F32_ONE_THREAD
    return SMALL_GEMM and not trans_b and n % (32 // itemsize) == 0 and (
        rows <= most or (n <= NARROW_GEMM_WIDTH and rows <= NARROW_GEMM_ROWS))


def _small_product(dtype, Py_ssize_t rows, Py_ssize_t n, bint one_thread):
    """Tests: whether x @ w of ``rows`` rows and ``n`` columns of ``dtype`` skips BLAS
    (``one_thread``: inside a loop that holds BLAS at one thread)."""
    import numpy
    return _skips_blas(False, rows, n, numpy.dtype(dtype).itemsize, one_thread)


cdef void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                const floating *a, Py_ssize_t lda, const floating *b, Py_ssize_t ldb,
                floating *c, Py_ssize_t ldc, bint one_thread=False) noexcept nogil:
    """c (m, n) := op(a) @ op(b), row-major; an empty inner dimension gives zeros.
    ``one_thread``: the caller holds BLAS at one thread (float32 products of more rows
    then skip BLAS, SMALL_GEMM_ROWS_F32_ONE_THREAD)."""
    cdef Py_ssize_t i
    if m <= 0 or n <= 0:
        return
    if k <= 0:  # BLAS rejects a leading dimension of 0
        for i in range(m):
            memset(c + i * ldc, 0, n * sizeof(floating))
        return
    # a batch's rows, or a thread's share of them
    if _skips_blas(trans_b, k if trans_a else m, n, sizeof(floating), one_thread):
        # op(a)'s element (i, p): a[i * lda + p], or a[p * lda + i] transposed
        if floating is float:
            small_gemm_f32(m, n, k, a, 1 if trans_a else lda, lda if trans_a else 1, b, ldb, c, ldc)
        else:
            small_gemm_f64(m, n, k, a, 1 if trans_a else lda, lda if trans_a else 1, b, ldb, c, ldc)
        return
    gemm_rowmajor(trans_a, trans_b, <int> m, <int> n, <int> k, <floating> 1, a, <int> lda,
                  b, <int> ldb, <floating> 0, c, <int> ldc)


cdef void _forward_rows(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_in, Py_ssize_t n_out,
                        const floating *x, const floating *w, const floating *b,
                        int act, floating alpha, floating *z, floating *a,
                        bint one_thread=False) noexcept nogil:
    """Rows lo:hi of z := x @ w + b, a := act(z)."""
    _gemm(False, False, hi - lo, n_out, n_in, x + lo * n_in, n_in, w, n_out,
          z + lo * n_out, n_out, one_thread)
    bias_act_rows(lo, hi, n_out, b, act, alpha, z, a)


cdef int forward_threads(Py_ssize_t n_threads, Py_ssize_t n) except -1:
    """Threads for the row split of ``dense_forward_ptr`` over ``n`` rows: ``n_threads``
    clipped to one per 16 rows and to OpenMP's limit, or 1 unless every BLAS runs on
    one thread now."""
    cdef Py_ssize_t nt = min(n_threads, n // 16, <Py_ssize_t> omp_threads())
    if nt <= 1:
        return 1
    if _n_blas_getters < 0:
        _load_blas_thread_getters()
    if not _blas_single_threaded():
        return 1
    return <int> nt


cdef void dense_forward_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out,
                            const floating *x, const floating *w, const floating *b,
                            int act, floating alpha, floating *z, floating *a,
                            int n_threads, bint one_thread=False) noexcept nogil:
    """z (n, n_out) := x (n, n_in) @ w (n_in, n_out) + b (NULL: no bias); a := act(z).

    ``n_threads > 1`` (from ``forward_threads``) splits the rows into blocks, one
    OpenMP thread per block running sgemm and the epilogue on its own rows.
    ``one_thread``: the caller holds BLAS at one thread (see ``_gemm``).
    """
    cdef Py_ssize_t t, lo, hi, chunk
    if n <= 0 or n_out <= 0:
        return
    if n_threads <= 1:
        _forward_rows(0, n, n_in, n_out, x, w, b, act, alpha, z, a, one_thread)
        return
    chunk = (n + n_threads - 1) // n_threads
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        lo = t * chunk
        hi = min(lo + chunk, n)
        if lo < hi:
            _forward_rows(lo, hi, n_in, n_out, x, w, b, act, alpha, z, a)


cdef void forward_features_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t k0,
                               Py_ssize_t k1, const floating *x, const floating *w, floating *z,
                               bint one_thread=False) noexcept nogil:
    """z (n, n_out) := x[:, k0:k1] @ w[k0:k1, :] (x (n, n_in), w (n_in, n_out)): one
    thread's part of a product split by input features (zeros for k1 <= k0)."""
    _gemm(False, False, n, n_out, k1 - k0, x + k0, n_in, w + k0 * n_out, n_out, z, n_out,
          one_thread)


cdef void forward_sum_rows_ptr(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_out,
                               const floating *parts, Py_ssize_t part_size, int n_parts,
                               const floating *b, int act, floating alpha, floating *z,
                               floating *a) noexcept nogil:
    """Rows lo:hi of z := the sum of the ``n_parts`` parts (part p, an (n, n_out) array at
    ``parts + p * part_size``, added in order p = 0, 1, ...) + b; a := act(z)."""
    cdef Py_ssize_t i, j
    cdef int p
    cdef floating *zr
    cdef const floating *pr
    for i in range(lo, hi):
        zr = z + i * n_out
        pr = parts + i * n_out
        for j in range(n_out):
            zr[j] = pr[j]
        for p in range(1, n_parts):
            pr = parts + p * part_size + i * n_out
            for j in range(n_out):
                zr[j] = zr[j] + pr[j]
    bias_act_rows(lo, hi, n_out, b, act, alpha, z, a)


cdef Py_ssize_t nonzero_columns_ptr(Py_ssize_t m, Py_ssize_t ld, Py_ssize_t c0, Py_ssize_t c1,
                                    const floating *x, uint64_t *bits, int32_t *cols) noexcept nogil:
    """cols[0:r] := the columns c of c0:c1 (ascending) where some row of x (m rows, ld apart)
    holds a value other than +-0; returns r.  bits (c1 - c0,) is scratch."""
    cdef Py_ssize_t i, c, span = c1 - c0, r = 0
    cdef const uint32_t *u
    cdef const uint64_t *v
    for c in range(span):
        bits[c] = 0
    for i in range(m):  # OR of each column's magnitude bits: zero only for +-0 in every row
        if floating is float:
            u = <const uint32_t *> (x + i * ld + c0)
            for c in range(span):
                bits[c] |= u[c] & 0x7fffffffu
        else:
            v = <const uint64_t *> (x + i * ld + c0)
            for c in range(span):
                bits[c] |= v[c] & 0x7fffffffffffffffu
    for c in range(span):
        cols[r] = <int32_t> (c0 + c)
        r += bits[c] != 0
    return r


cdef void pack_columns_ptr(Py_ssize_t m, Py_ssize_t ld, const floating *x, const int32_t *cols,
                           Py_ssize_t r, floating *xc) noexcept nogil:
    """xc (m, r) := x[:, cols[0:r]] (x: m rows, ld apart)."""
    cdef Py_ssize_t i, p
    cdef const floating *xi
    cdef floating *ci
    for i in range(m):
        xi = x + i * ld
        ci = xc + i * r
        for p in range(r):
            ci[p] = xi[cols[p]]


cdef void pack_rows_ptr(Py_ssize_t n_out, const floating *w, const int32_t *cols, Py_ssize_t r,
                        floating *wc) noexcept nogil:
    """wc (r, n_out) := w[cols[0:r], :] (w: rows of n_out)."""
    cdef Py_ssize_t p
    for p in range(r):
        memcpy(wc + p * n_out, w + cols[p] * n_out, n_out * sizeof(floating))


cdef void unpack_weight_grad_ptr(Py_ssize_t n_out, Py_ssize_t c0, Py_ssize_t c1,
                                 const int32_t *cols, Py_ssize_t r, const floating *dwc,
                                 const floating *w, floating l2, floating *dw) noexcept nogil:
    """Rows c0:c1 of dw: row cols[p] := dwc[p] (p < r), every other row := l2 w (its
    column of the batch was zero, so the data's part of its gradient is)."""
    cdef Py_ssize_t c, j, p = 0
    cdef floating *dr
    cdef const floating *wr
    for c in range(c0, c1):
        dr = dw + c * n_out
        if p < r and cols[p] == c:
            memcpy(dr, dwc + p * n_out, n_out * sizeof(floating))
            p += 1
        elif l2 != 0:
            wr = w + c * n_out
            for j in range(n_out):
                dr[j] = l2 * wr[j]
        else:
            memset(dr, 0, n_out * sizeof(floating))


cdef int _dense_forward(const floating[:, ::1] X, const floating[:, ::1] W,
                        const floating[::1] b, int act, double alpha, floating[:, ::1] Z_out,
                        floating[:, ::1] A_out, int n_threads) except -1:
    cdef Py_ssize_t n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if W.shape[0] != n_in:
        raise ValueError(
            f"dense_forward: X is ({n}, {n_in}) but W is ({W.shape[0]}, {n_out})"
        )
    if (Z_out.shape[0] != n or Z_out.shape[1] != n_out
            or A_out.shape[0] != n or A_out.shape[1] != n_out):
        raise ValueError(
            f"dense_forward: Z_out ({Z_out.shape[0]}, {Z_out.shape[1]}) and "
            f"A_out ({A_out.shape[0]}, {A_out.shape[1]}) must both be ({n}, {n_out})"
        )
    if b is not None and b.shape[0] != n_out:
        raise ValueError(f"dense_forward: b has {b.shape[0]} entries, W has {n_out} columns")
    _check_act(act)
    _check_blas_size(n, n_in, n_out)
    if n == 0 or n_out == 0:
        return 0
    cdef const floating *bp = NULL
    if b is not None:
        bp = &b[0]
    cdef const floating *xp = &X[0, 0] if n_in > 0 else NULL
    cdef const floating *wp = &W[0, 0] if n_in > 0 else NULL
    cdef int nt = forward_threads(n_threads, n) if n_threads > 1 else 1
    with nogil:
        dense_forward_ptr(n, n_in, n_out, xp, wp, bp, act, <floating> alpha,
                          &Z_out[0, 0], &A_out[0, 0], nt)
    return 0


cdef void _small_gemm_rows() noexcept nogil:
    """SMALL_GEMM_ROWS for the kernel's level: 64 with AVX-512's 64-byte vectors, else 32;
    SMALL_GEMM_ROWS_F32_ONE_THREAD 256 with AVX-512, else the same."""
    global SMALL_GEMM_ROWS, SMALL_GEMM_ROWS_F32_ONE_THREAD
    SMALL_GEMM_ROWS = 64 if gemm_level() == 4 else 32
    SMALL_GEMM_ROWS_F32_ONE_THREAD = 256 if gemm_level() == 4 else SMALL_GEMM_ROWS


_small_gemm_rows()


cdef Py_ssize_t small_gemm_rows() noexcept nogil:
    """The most rows of a product that skips BLAS (0 while the kernel is off)."""
    return SMALL_GEMM_ROWS if SMALL_GEMM else 0


def _set_gemm_level(int level):
    """Tests: run the small-product kernel (``_simd_gemm.h``) at x86 level ``level`` (4:
    x86-64-v4, 3: x86-64-v3, 1: the baseline, 0: the CPU's best), with that level's row
    limit; returns the level in use before.  A level the CPU cannot run is a ValueError."""
    cdef int before = gemm_set_level(level)
    if before < 0:
        raise ValueError(f"_set_gemm_level: level {level} is not one this CPU runs "
                         f"(0 for its best, else 1, 3 or 4)")
    _small_gemm_rows()
    return before


def _set_act_level(int level):
    """Tests: run this module's activation loops (``_elementwise.h``) at x86 level ``level``
    (as ``_set_gemm_level``); returns the level in use before.  A level the CPU cannot run
    is a ValueError."""
    cdef int before = fastnn_act_set_level(level)
    if before < 0:
        raise ValueError(f"_set_act_level: level {level} is not one this CPU runs "
                         f"(0 for its best, else 1, 3 or 4)")
    return before


def _packs_w(dtype, Py_ssize_t rows, Py_ssize_t k, Py_ssize_t n):
    """Tests: whether the small-product kernel copies blocks of a ``(k, n)`` w of ``dtype``
    before multiplying ``rows`` rows by it (``_simd_gemm.h``, "Packed")."""
    import numpy
    return bool(gemm_packs(rows, k, n, numpy.dtype(dtype).itemsize))


def _set_gemm_pack_min_bytes(Py_ssize_t min_bytes):
    """Tests: the small-product kernel packs a w of at least ``min_bytes`` (negative: never);
    returns the previous limit."""
    return gemm_set_pack_min_bytes(min_bytes)


def _set_small_gemm(bint on):
    """Tests and benchmarks: whether small products skip BLAS (``_simd_gemm.h``); returns the
    previous setting."""
    global SMALL_GEMM
    old = SMALL_GEMM
    SMALL_GEMM = on
    return old


def dense_forward(const floating[:, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                  int act, double alpha, floating[:, ::1] Z_out, floating[:, ::1] A_out):
    """Z_out := X @ W + b; A_out := act(Z_out).

    X (n, n_in) IN, W (n_in, n_out) IN, b (n_out,) or None IN,
    Z_out (n, n_out) OUT, A_out (n, n_out) OUT (may be Z_out).
    """
    _dense_forward(X, W, b, act, alpha, Z_out, A_out, 1)


def dense_forward_threads(const floating[:, ::1] X, const floating[:, ::1] W,
                          const floating[::1] b, int act, double alpha, floating[:, ::1] Z_out,
                          floating[:, ::1] A_out, int n_threads):
    """``dense_forward`` with the batch rows split across ``n_threads`` OpenMP threads,
    each running a single-threaded sgemm on its rows; ``n_threads`` is clipped to one
    thread per 16 rows and to OpenMP's limit, and ignored unless every BLAS is limited
    to one thread (``threadpool_limits(1, user_api="blas")``).  Not part of the contract.
    """
    _dense_forward(X, W, b, act, alpha, Z_out, A_out, n_threads)


cdef void activation_backward_ptr(int act, floating alpha, Py_ssize_t n, Py_ssize_t k,
                                  const floating *z, const floating *a, const floating *da,
                                  floating *dz) noexcept nogil:
    """dz (n, k) := da * act'(z); dz may be da."""
    act_backward_rows(act, alpha, n, k, z, a, da, dz)


def activation_backward(int act, double alpha, const floating[:, ::1] Z, const floating[:, ::1] A,
                        const floating[:, ::1] dA, floating[:, ::1] dZ_out):
    """dZ_out := dA * act'(Z) (softmax: row-wise Jacobian product).

    Z, A, dA (n, k) IN, dZ_out (n, k) OUT (may be dA).
    """
    cdef Py_ssize_t n = dZ_out.shape[0], k = dZ_out.shape[1]
    if (Z.shape[0] != n or Z.shape[1] != k or A.shape[0] != n or A.shape[1] != k
            or dA.shape[0] != n or dA.shape[1] != k):
        raise ValueError(
            f"activation_backward: Z ({Z.shape[0]}, {Z.shape[1]}), "
            f"A ({A.shape[0]}, {A.shape[1]}), dA ({dA.shape[0]}, {dA.shape[1]}) and "
            f"dZ_out ({n}, {k}) must have one shape"
        )
    _check_act(act)
    if n == 0 or k == 0:
        return
    with nogil:
        activation_backward_ptr(act, <floating> alpha, n, k, &Z[0, 0], &A[0, 0], &dA[0, 0],
                                &dZ_out[0, 0])


cdef void weight_grad_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t lo,
                          Py_ssize_t hi, const floating *x, const floating *w,
                          const floating *dz, floating l2, floating *dw,
                          bint one_thread=False) noexcept nogil:
    """Rows lo:hi of dw := x.T @ dz + l2 w (x (n, n_in), w and dw (n_in, n_out));
    ``one_thread``: the caller holds BLAS at one thread (see ``_gemm``)."""
    cdef Py_ssize_t i
    _gemm(True, False, hi - lo, n_out, n, x + lo, n_in, dz, n_out, dw + lo * n_out, n_out,
          one_thread)
    if l2 != 0:
        for i in range(lo * n_out, hi * n_out):
            dw[i] = dw[i] + l2 * w[i]


cdef void bias_grad_ptr(Py_ssize_t n, Py_ssize_t n_out, Py_ssize_t lo, Py_ssize_t hi,
                        const floating *dz, floating *db) noexcept nogil:
    """Entries lo:hi of db := dz.sum(0) (dz (n, n_out)), summed in row order."""
    cdef Py_ssize_t i, j
    cdef const floating *dzi
    if hi <= lo:
        return
    memset(db + lo, 0, (hi - lo) * sizeof(floating))
    for i in range(n):
        dzi = dz + i * n_out
        for j in range(lo, hi):
            db[j] = db[j] + dzi[j]


cdef void input_grad_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, const floating *dz,
                         const floating *w, floating *dx) noexcept nogil:
    """dx (n, n_in) := dz (n, n_out) @ w.T."""
    _gemm(False, True, n, n_in, n_out, dz, n_out, w, n_out, dx, n_in)


cdef void dense_backward_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out,
                             const floating *x, const floating *w, const floating *dz,
                             floating l2, floating *dw, floating *db,
                             floating *dx) noexcept nogil:
    """dw := x.T @ dz + l2 w; db := dz.sum(0) unless db is NULL; dx := dz @ w.T unless
    dx is NULL.  x (n, n_in), w and dw (n_in, n_out), dz (n, n_out), dx (n, n_in)."""
    weight_grad_ptr(n, n_in, n_out, 0, n_in, x, w, dz, l2, dw)
    if db != NULL:
        bias_grad_ptr(n, n_out, 0, n_out, dz, db)
    if dx != NULL:
        input_grad_ptr(n, n_in, n_out, dz, w, dx)


def dense_backward(const floating[:, ::1] X, const floating[:, ::1] W, const floating[:, ::1] dZ,
                   double l2, floating[:, ::1] dW_out, floating[::1] db_out,
                   floating[:, ::1] dX_out):
    """dW_out := X.T @ dZ + l2 W; db_out := dZ.sum(0); dX_out := dZ @ W.T.

    X (n, n_in) IN, W (n_in, n_out) IN, dZ (n, n_out) IN, dW_out (n_in, n_out)
    OUT, db_out (n_out,) OUT or None, dX_out (n, n_in) OUT or None.
    """
    cdef Py_ssize_t n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if W.shape[0] != n_in or dZ.shape[0] != n or dZ.shape[1] != n_out:
        raise ValueError(
            f"dense_backward: X ({n}, {n_in}), W ({W.shape[0]}, {n_out}) and "
            f"dZ ({dZ.shape[0]}, {dZ.shape[1]}) do not match"
        )
    if dW_out.shape[0] != n_in or dW_out.shape[1] != n_out:
        raise ValueError(
            f"dense_backward: dW_out is ({dW_out.shape[0]}, {dW_out.shape[1]}), "
            f"expected ({n_in}, {n_out})"
        )
    if db_out is not None and db_out.shape[0] != n_out:
        raise ValueError(f"dense_backward: db_out has {db_out.shape[0]} entries, expected {n_out}")
    if dX_out is not None and (dX_out.shape[0] != n or dX_out.shape[1] != n_in):
        raise ValueError(
            f"dense_backward: dX_out is ({dX_out.shape[0]}, {dX_out.shape[1]}), "
            f"expected ({n}, {n_in})"
        )
    _check_blas_size(n, n_in, n_out)
    # Empty dimensions give NULL pointers that are never dereferenced.
    cdef const floating *xp = &X[0, 0] if n > 0 and n_in > 0 else NULL
    cdef const floating *dzp = &dZ[0, 0] if n > 0 and n_out > 0 else NULL
    cdef const floating *wp = &W[0, 0] if n_in > 0 and n_out > 0 else NULL
    cdef floating *dwp = &dW_out[0, 0] if n_in > 0 and n_out > 0 else NULL
    cdef floating *dbp = NULL
    cdef floating *dxp = NULL
    if db_out is not None and n_out > 0:
        dbp = &db_out[0]
    if dX_out is not None and n > 0 and n_in > 0:
        dxp = &dX_out[0, 0]
    with nogil:
        dense_backward_ptr(n, n_in, n_out, xp, wp, dzp, <floating> l2, dwp, dbp, dxp)


# ---------------------------------------------------------------------- maxout
def maxout_forward(const floating[:, ::1] Z, Py_ssize_t pieces, floating[:, ::1] A_out,
                   int64_t[:, ::1] argmax_out):
    """A_out[i, u] := max(Z[i, u*pieces:(u+1)*pieces]); argmax_out its index (first on ties).

    Z (n, units * pieces) IN, A_out (n, units) OUT, argmax_out (n, units) int64 OUT.
    A NaN wins, like ``np.argmax``.
    """
    cdef Py_ssize_t n = A_out.shape[0], units = A_out.shape[1], i, u, p, best
    if pieces < 1:
        raise ValueError(f"maxout_forward: pieces must be >= 1, got {pieces}")
    if (Z.shape[0] != n or Z.shape[1] != units * pieces
            or argmax_out.shape[0] != n or argmax_out.shape[1] != units):
        raise ValueError(
            f"maxout_forward: Z ({Z.shape[0]}, {Z.shape[1]}), A_out ({n}, {units}) and "
            f"argmax_out ({argmax_out.shape[0]}, {argmax_out.shape[1]}) "
            f"do not match pieces={pieces}"
        )
    cdef const floating *zi
    cdef floating v, top
    with nogil:
        for i in range(n):
            for u in range(units):
                zi = &Z[i, u * pieces]
                best = 0
                top = zi[0]
                if top == top:  # not NaN: a later NaN would still win
                    for p in range(1, pieces):
                        v = zi[p]
                        if v > top or v != v:
                            best = p
                            top = v
                            if v != v:
                                break
                A_out[i, u] = top
                argmax_out[i, u] = best


def maxout_backward(const floating[:, ::1] dA, const int64_t[:, ::1] argmax, Py_ssize_t pieces,
                    floating[:, ::1] dZ_out):
    """dZ_out[i, u*pieces + argmax[i, u]] := dA[i, u]; every other entry 0.

    dA (n, units) IN, argmax (n, units) int64 IN, dZ_out (n, units * pieces) OUT.
    """
    cdef Py_ssize_t n = dA.shape[0], units = dA.shape[1], i, u
    cdef int64_t k
    cdef bint bad = False
    if pieces < 1:
        raise ValueError(f"maxout_backward: pieces must be >= 1, got {pieces}")
    if (argmax.shape[0] != n or argmax.shape[1] != units
            or dZ_out.shape[0] != n or dZ_out.shape[1] != units * pieces):
        raise ValueError(
            f"maxout_backward: dA ({n}, {units}), argmax ({argmax.shape[0]}, "
            f"{argmax.shape[1]}) and dZ_out ({dZ_out.shape[0]}, {dZ_out.shape[1]}) "
            f"do not match pieces={pieces}"
        )
    if n == 0 or units == 0:
        return
    with nogil:
        memset(&dZ_out[0, 0], 0, n * units * pieces * sizeof(floating))
        for i in range(n):
            for u in range(units):
                k = argmax[i, u]
                if k < 0 or k >= pieces:
                    bad = True
                    break
                dZ_out[i, u * pieces + k] = dA[i, u]
            if bad:
                break
    if bad:
        raise IndexError(f"maxout_backward: argmax has an index outside [0, {pieces})")

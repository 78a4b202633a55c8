# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math
"""fastnn's own blocked GEMM, a portable alternative to BLAS.

``C := alpha op(A) @ op(B) + beta C`` for row-major float32/float64, in the
classic Goto/BLIS layout:

* the ``KC x NC`` block of ``op(B)`` is packed once into ``NR``-wide column
  panels (stays in L2), each ``MC x KC`` block of ``op(A)`` into ``MR``-tall
  row panels (one panel stays in L1);
* a ``MR x NR`` micro-kernel keeps its accumulators in registers and streams
  both panels with unit stride.  It is written as plain fixed-size loops
  that the C compiler unrolls and vectorizes; there are no intrinsics, so
  it builds anywhere, at the price of the baseline SIMD width;
* transposes are free: only the packing routines read ``A`` and ``B``;
* with ``n_threads > 1`` the ``MC`` row blocks of ``C`` are shared out
  across OpenMP threads, each packing ``A`` into its own buffer.

BLAS (``_blas.gemm_rowmajor``) is faster on CPUs it has kernels for; the
benchmarks choose per shape.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc

cdef enum:
    MR = 4     # micro-tile rows
    NR = 8     # micro-tile columns
    MC = 64    # rows of op(A) per packed block (multiple of MR)
    KC = 256   # depth per packed block
    NC = 512   # columns of op(B) per packed block (multiple of NR)

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define fastnn_gemm_max_threads() omp_get_max_threads()
    #else
    #define fastnn_gemm_max_threads() 1
    #endif
    """
    int fastnn_gemm_max_threads() noexcept nogil


cdef void _pack_a(bint trans, const floating *a, Py_ssize_t lda, Py_ssize_t i0, Py_ssize_t mc,
                  Py_ssize_t p0, Py_ssize_t kc, floating *ap) noexcept nogil:
    """op(A)[i0:i0+mc, p0:p0+kc] -> MR-row panels, ap[panel][p][i], zero-padded."""
    cdef Py_ssize_t ir, i, p, mr, panel
    for panel in range((mc + MR - 1) // MR):
        ir = panel * MR
        mr = min(<Py_ssize_t> MR, mc - ir)
        for p in range(kc):
            for i in range(MR):
                if i >= mr:
                    ap[i] = 0
                elif trans:
                    ap[i] = a[(p0 + p) * lda + i0 + ir + i]
                else:
                    ap[i] = a[(i0 + ir + i) * lda + p0 + p]
            ap += MR


cdef void _pack_b(bint trans, const floating *b, Py_ssize_t ldb, Py_ssize_t p0, Py_ssize_t kc,
                  Py_ssize_t j0, Py_ssize_t nc, floating *bp) noexcept nogil:
    """op(B)[p0:p0+kc, j0:j0+nc] -> NR-column panels, bp[panel][p][j], zero-padded."""
    cdef Py_ssize_t jr, j, p, nr, panel
    for panel in range((nc + NR - 1) // NR):
        jr = panel * NR
        nr = min(<Py_ssize_t> NR, nc - jr)
        for p in range(kc):
            for j in range(NR):
                if j >= nr:
                    bp[j] = 0
                elif trans:
                    bp[j] = b[(j0 + jr + j) * ldb + p0 + p]
                else:
                    bp[j] = b[(p0 + p) * ldb + j0 + jr + j]
            bp += NR


cdef inline void _micro(Py_ssize_t kc, const floating *ap, const floating *bp, floating *c,
                        Py_ssize_t ldc, Py_ssize_t mr, Py_ssize_t nr, floating alpha,
                        floating beta) noexcept nogil:
    """c[:mr, :nr] := alpha * (A panel @ B panel) + beta * c (c not read if beta == 0)."""
    cdef floating acc[MR * NR]
    cdef Py_ssize_t p, i, j
    for i in range(MR * NR):
        acc[i] = 0
    for p in range(kc):
        for i in range(MR):
            for j in range(NR):
                acc[i * NR + j] += ap[i] * bp[j]
        ap += MR
        bp += NR
    if beta == 0:
        for i in range(mr):
            for j in range(nr):
                c[i * ldc + j] = alpha * acc[i * NR + j]
    else:
        for i in range(mr):
            for j in range(nr):
                c[i * ldc + j] = alpha * acc[i * NR + j] + beta * c[i * ldc + j]


cdef void _row_block(Py_ssize_t ic, Py_ssize_t m, Py_ssize_t kc, Py_ssize_t p0,
                     Py_ssize_t j0, Py_ssize_t nc, bint trans_a, const floating *a, Py_ssize_t lda,
                     const floating *bp, floating *ap, floating *c, Py_ssize_t ldc,
                     floating alpha, floating beta) noexcept nogil:
    """One MC-row block of C against the packed B block."""
    cdef Py_ssize_t mc = min(<Py_ssize_t> MC, m - ic), ir, jr, jp, ip
    _pack_a(trans_a, a, lda, ic, mc, p0, kc, ap)
    for jp in range((nc + NR - 1) // NR):
        jr = jp * NR
        for ip in range((mc + MR - 1) // MR):
            ir = ip * MR
            _micro(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + j0 + jr, ldc,
                   min(<Py_ssize_t> MR, mc - ir), min(<Py_ssize_t> NR, nc - jr), alpha, beta)


cdef void _gemm_blocked(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating *a, Py_ssize_t lda,
                        const floating *b, Py_ssize_t ldb, floating beta,
                        floating *c, Py_ssize_t ldc, int nt,
                        floating *abuf, floating *bbuf) noexcept nogil:
    cdef Py_ssize_t jc, pc, jb, pb, blk, n_blk = (m + MC - 1) // MC, nc, kc
    cdef floating beta_eff
    for jb in range((n + NC - 1) // NC):
        jc = jb * NC
        nc = min(<Py_ssize_t> NC, n - jc)
        for pb in range((k + KC - 1) // KC):
            pc = pb * KC
            kc = min(<Py_ssize_t> KC, k - pc)
            beta_eff = beta if pc == 0 else 1
            _pack_b(trans_b, b, ldb, pc, kc, jc, nc, bbuf)
            if nt <= 1:
                for blk in range(n_blk):
                    _row_block(blk * MC, m, kc, pc, jc, nc, trans_a, a, lda, bbuf, abuf, c, ldc,
                               alpha, beta_eff)
            else:
                for blk in prange(n_blk, num_threads=nt, schedule="static"):
                    _row_block(blk * MC, m, kc, pc, jc, nc, trans_a, a, lda, bbuf,
                               abuf + threadid() * (MC * KC), c, ldc, alpha, beta_eff)


def gemm_blocked(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C,
                 bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0,
                 int n_threads=1):
    """``C = alpha * op(A) @ op(B) + beta * C`` in place, without BLAS.

    A, B IN, C OUT (IN too when beta != 0): C-contiguous, one dtype (float32
    or float64); ``op(A)`` is ``A.T`` when ``trans_a``.  Shapes must agree:
    op(A) (m, k), op(B) (k, n), C (m, n).  ``n_threads`` OpenMP threads share
    the row blocks of C (one thread per 64 rows at most).
    """
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t a_rows = A.shape[1] if trans_a else A.shape[0]
    cdef Py_ssize_t b_rows = B.shape[1] if trans_b else B.shape[0]
    cdef Py_ssize_t b_cols = B.shape[0] if trans_b else B.shape[1]
    if a_rows != m or b_rows != k or b_cols != n:
        raise ValueError(
            f"gemm_blocked: op(A) is ({a_rows}, {k}), op(B) is ({b_rows}, {b_cols}), "
            f"C is ({m}, {n}); expected op(A) (m, k), op(B) (k, n), C (m, n)"
        )
    cdef Py_ssize_t i, j
    if m == 0 or n == 0:
        return
    if k == 0:  # empty product: C = beta * C
        for i in range(m):
            for j in range(n):
                C[i, j] = <floating> beta * C[i, j] if beta != 0 else 0
        return
    cdef int nt = max(1, min(n_threads, fastnn_gemm_max_threads(), <int> ((m + MC - 1) // MC)))
    cdef floating *abuf = <floating *> malloc(nt * MC * KC * sizeof(floating))
    cdef floating *bbuf = <floating *> malloc(KC * NC * sizeof(floating))
    if abuf == NULL or bbuf == NULL:
        free(abuf)
        free(bbuf)
        raise MemoryError("gemm_blocked: cannot allocate packing buffers")
    try:
        with nogil:
            _gemm_blocked(trans_a, trans_b, m, n, k, <floating> alpha, &A[0, 0], A.shape[1],
                          &B[0, 0], B.shape[1], <floating> beta, &C[0, 0], n, nt, abuf, bbuf)
    finally:
        free(abuf)
        free(bbuf)

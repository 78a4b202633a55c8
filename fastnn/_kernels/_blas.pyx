# cython: language_level=3
"""Row-major GEMM through the BLAS that SciPy ships (``scipy.linalg.cython_blas``).

BLAS is column-major; a row-major ``C (m, n)`` is the column-major ``C.T``, so
``C = op(A) @ op(B)`` is computed as ``C.T = op(B).T @ op(A).T`` by swapping
the operands.  One ``floating`` body serves float32 (``sgemm``) and float64
(``dgemm``).  Every kernel here releases the GIL.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from *:
    """
    #ifdef _OPENMP
    #define FASTNN_OPENMP 1
    #else
    #define FASTNN_OPENMP 0
    #endif
    """
    int FASTNN_OPENMP


def openmp_enabled():
    """True if this build of fastnn's Cython kernels was compiled with OpenMP."""
    return bool(FASTNN_OPENMP)


cdef void gemm_rowmajor(bint trans_a, bint trans_b, int m, int n, int k,
                        floating alpha, const floating *a, int lda,
                        const floating *b, int ldb,
                        floating beta, floating *c, int ldc) noexcept nogil:
    """C (m, n) = alpha * op(A) @ op(B) + beta * C, all row-major.     # OUT: c"""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *> b, &ldb, <float *> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *> b, &ldb, <double *> a, &lda,
              &beta, c, &ldc)


def gemm(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C,
         bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """``C = alpha * op(A) @ op(B) + beta * C`` in place.

    A, B, C: C-contiguous, one dtype (float32 or float64).  ``op(A)`` is
    ``A.T`` when ``trans_a``.  Shapes must agree: op(A) (m, k), op(B) (k, n),
    C (m, n); a mismatch raises ValueError before BLAS is called.
    """
    cdef int m = C.shape[0]
    cdef int n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int a_rows = A.shape[1] if trans_a else A.shape[0]
    cdef int b_rows = B.shape[1] if trans_b else B.shape[0]
    cdef int b_cols = B.shape[0] if trans_b else B.shape[1]
    if a_rows != m or b_rows != k or b_cols != n:
        raise ValueError(
            f"gemm: op(A) is ({a_rows}, {k}), op(B) is ({b_rows}, {b_cols}), "
            f"C is ({m}, {n}); expected op(A) (m, k), op(B) (k, n), C (m, n)"
        )
    cdef Py_ssize_t i, j
    if m == 0 or n == 0:
        return
    if k == 0:  # empty product: C = beta * C (BLAS would reject lda = 0)
        for i in range(m):
            for j in range(n):
                C[i, j] = <floating> beta * C[i, j] if beta != 0 else 0
        return
    with nogil:
        gemm_rowmajor(trans_a, trans_b, m, n, k, <floating> alpha,
                      &A[0, 0], A.shape[1], &B[0, 0], B.shape[1],
                      <floating> beta, &C[0, 0], n)

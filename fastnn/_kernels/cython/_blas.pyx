# cython: language_level=3
"""Row-major GEMM through the BLAS that SciPy ships (``scipy.linalg.cython_blas``).

BLAS is column-major; a row-major ``C (m, n)`` is the column-major ``C.T``, so
``C = op(A) @ op(B)`` is computed as ``C.T = op(B).T @ op(A).T`` by swapping
the operands.  One ``floating`` body serves float32 (``sgemm``) and float64
(``dgemm``); it runs without the GIL.
"""
import os

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTNN_OPENMP 1
    #define fastnn_omp_max_threads() omp_get_max_threads()
    #else
    #define FASTNN_OPENMP 0
    #define fastnn_omp_max_threads() 1
    #endif
    """
    int FASTNN_OPENMP
    int fastnn_omp_max_threads() noexcept nogil


def openmp_enabled():
    """True if this build of fastnn's Cython kernels was compiled with OpenMP."""
    return bool(FASTNN_OPENMP)


cdef bint _forked = False


def _after_fork_in_child():
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef int omp_threads() noexcept nogil:
    """The OpenMP threads a kernel may use: OpenMP's limit, or 1 in a process
    forked from this one.  GNU OpenMP's thread pool does not survive ``fork``: a
    parallel region in the child waits forever for threads that exist only in
    the parent (``multiprocessing``'s default start method on Linux, Dask and
    pre-forking servers do this)."""
    if _forked:
        return 1
    return fastnn_omp_max_threads()


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


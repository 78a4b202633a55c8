# cython: language_level=3
"""Pointer-level kernels of a first Dense layer that reads a CSR matrix, for ``_sparse``'s
Python kernels and any whole-epoch loop built on them.

The CSR matrix ``X (N, n_in)`` is ``indptr (N+1,)`` int64, ``indices (nnz,)`` int32
and ``data (nnz,)``; ``rows (m,)`` int64 are the rows of ``X`` that form the batch
(``NULL`` in ``csr_check_ptr``: every row).  The loops trust their arguments:
call ``csr_check_ptr`` on the same rows first.
"""
from cython cimport floating
from libc.stdint cimport int32_t, int64_t, uint8_t

# What csr_check_ptr found (``where`` says where).
cdef enum:
    CSR_OK = 0
    CSR_BAD_ROW = 1      # rows[where] is outside [0, N)
    CSR_BAD_INDPTR = 2   # row where's entries indptr[where]:indptr[where+1] are not inside [0, nnz]
    CSR_BAD_INDEX = 3    # indices[where] is outside [0, n_in)

cdef int csr_check_ptr(Py_ssize_t N, Py_ssize_t nnz, Py_ssize_t n_in, const int64_t *indptr,
                       const int32_t *indices, const int64_t *rows, Py_ssize_t m,
                       Py_ssize_t *where, int64_t *counts=*, const void *data=*,
                       Py_ssize_t itemsize=*) noexcept nogil
cdef void csr_prefetch_rows_ptr(Py_ssize_t N, Py_ssize_t nnz, const int64_t *indptr,
                                const int32_t *indices, const void *data, Py_ssize_t itemsize,
                                const int64_t *rows, Py_ssize_t m) noexcept nogil
cdef void sparse_forward_ptr(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_out,
                             const int64_t *indptr, const int32_t *indices,
                             const floating *data, const int64_t *rows, const floating *w,
                             const floating *b, int act, floating alpha, floating *z,
                             floating *a) noexcept nogil
cdef void sparse_weight_grad_ptr(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                                 Py_ssize_t lo, Py_ssize_t hi, const int64_t *indptr,
                                 const int32_t *indices, const floating *data,
                                 const int64_t *rows, const floating *w, const floating *dz,
                                 floating l2, floating *dw) noexcept nogil
cdef void sparse_weight_grad_touched_ptr(Py_ssize_t m, Py_ssize_t n_out, Py_ssize_t lo,
                                         Py_ssize_t hi, const int64_t *indptr,
                                         const int32_t *indices, const floating *data,
                                         const int64_t *rows, const floating *w,
                                         const floating *dz, floating l2, floating *dw,
                                         uint8_t *touched) noexcept nogil
cdef int64_t csc_offsets_ptr(Py_ssize_t n_in, const int64_t *counts, int64_t start,
                             int64_t *cursor, int64_t *col_ptr) noexcept nogil
cdef void sparse_forward_csc_ptr(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_in,
                                 Py_ssize_t n_out, const int64_t *col_ptr,
                                 const int32_t *csc_rows, const floating *csc_data,
                                 const floating *w, const floating *b, int act, floating alpha,
                                 floating *z, floating *a) noexcept nogil
cdef void csc_place_ptr(Py_ssize_t lo, Py_ssize_t hi, const int64_t *indptr,
                        const int32_t *indices, const floating *data, const int64_t *rows,
                        int64_t *cursor, int32_t *csc_rows, floating *csc_data) noexcept nogil
cdef void sparse_weight_grad_csc_ptr(Py_ssize_t n_out, Py_ssize_t klo, Py_ssize_t khi,
                                     int nt, Py_ssize_t ptr_stride, const int64_t *col_ptr,
                                     const int32_t *csc_rows, const floating *csc_data,
                                     const floating *w, const floating *dz, floating l2,
                                     floating *dw, uint8_t *touched) noexcept nogil
cdef Py_ssize_t nonzero_count_ptr(const floating *x, Py_ssize_t count) noexcept nogil
cdef void nonzero_forward_ptr(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, const floating *x,
                              const floating *w, const floating *b, int act, floating alpha,
                              floating *z, floating *a, int32_t *idx, floating *val) noexcept nogil

# cython: language_level=3
"""Pointer-level dense-layer kernels shared by ``_dense``'s Python kernels and ``_training``.

All arrays are row-major and contiguous; ``n`` is the number of rows.  The
Python kernels check their arguments and call these; ``_training`` checks
once per call and then calls them for every minibatch without the GIL.
``blas_acquire_single``/``blas_release_single`` hold every loaded BLAS to
one thread while ``_training`` splits the work itself.
"""
from cython cimport floating
from libc.stdint cimport int32_t, uint64_t


cdef Py_ssize_t small_gemm_rows() noexcept nogil
cdef bint blas_acquire_single() except -1
cdef void blas_release_single() noexcept
cdef void dense_forward_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out,
                            const floating *x, const floating *w, const floating *b,
                            int act, floating alpha, floating *z, floating *a,
                            int n_threads, bint one_thread=*) noexcept nogil
cdef void forward_features_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t k0,
                               Py_ssize_t k1, const floating *x, const floating *w, floating *z,
                               bint one_thread=*) noexcept nogil
cdef void forward_sum_rows_ptr(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_out,
                               const floating *parts, Py_ssize_t part_size, int n_parts,
                               const floating *b, int act, floating alpha, floating *z,
                               floating *a) noexcept nogil
cdef void activation_backward_ptr(int act, floating alpha, Py_ssize_t n, Py_ssize_t k,
                                  const floating *z, const floating *a, const floating *da,
                                  floating *dz) noexcept nogil
cdef void dense_backward_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out,
                             const floating *x, const floating *w, const floating *dz,
                             floating l2, floating *dw, floating *db,
                             floating *dx) noexcept nogil
cdef void weight_grad_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t lo,
                          Py_ssize_t hi, const floating *x, const floating *w,
                          const floating *dz, floating l2, floating *dw,
                          bint one_thread=*) noexcept nogil
cdef void bias_grad_ptr(Py_ssize_t n, Py_ssize_t n_out, Py_ssize_t lo, Py_ssize_t hi,
                        const floating *dz, floating *db) noexcept nogil
cdef void input_grad_ptr(Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, const floating *dz,
                         const floating *w, floating *dx) noexcept nogil
cdef Py_ssize_t nonzero_columns_ptr(Py_ssize_t m, Py_ssize_t ld, Py_ssize_t c0, Py_ssize_t c1,
                                    const floating *x, uint64_t *bits, int32_t *cols) noexcept nogil
cdef void pack_columns_ptr(Py_ssize_t m, Py_ssize_t ld, const floating *x, const int32_t *cols,
                           Py_ssize_t r, floating *xc) noexcept nogil
cdef void pack_rows_ptr(Py_ssize_t n_out, const floating *w, const int32_t *cols, Py_ssize_t r,
                        floating *wc) noexcept nogil
cdef void unpack_weight_grad_ptr(Py_ssize_t n_out, Py_ssize_t c0, Py_ssize_t c1,
                                 const int32_t *cols, Py_ssize_t r, const floating *dwc,
                                 const floating *w, floating l2, floating *dw) noexcept nogil

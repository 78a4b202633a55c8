# cython: language_level=3
"""Pointer-level loss kernels shared by ``_losses``'s Python kernels and ``_training``.

``A``, ``Z``, ``Y`` and ``dz`` are row-major ``(n, k)``; class labels are
``labels (n,)`` int64 (sparse categorical cross-entropy; ``Y`` is then
unused) and ``w (n,)`` the sample weights or NULL.
"""
from cython cimport floating
from libc.stdint cimport int64_t

cdef double loss_value_ptr(int loss, Py_ssize_t n, Py_ssize_t k, const floating *A,
                           const int64_t *labels, const floating *Y, const floating *w,
                           Py_ssize_t *bad_row) noexcept nogil
cdef void loss_sums_ptr(int loss, Py_ssize_t n, Py_ssize_t k, const floating *A,
                        const int64_t *labels, const floating *Y, const floating *w,
                        double *total_out, double *wsum_out, Py_ssize_t *bad_row) noexcept nogil
cdef Py_ssize_t loss_output_delta_ptr(int loss, int act, floating alpha, Py_ssize_t n,
                                      Py_ssize_t lo, Py_ssize_t hi_row, Py_ssize_t k,
                                      const floating *Z, const floating *A,
                                      const int64_t *labels, const floating *Y,
                                      const floating *w, double wsum,
                                      floating *dz) noexcept nogil
cdef double weight_sum(const floating *w, Py_ssize_t n) noexcept nogil

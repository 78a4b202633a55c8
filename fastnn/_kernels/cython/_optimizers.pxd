# cython: language_level=3
"""Pointer-level optimizer loops and row gather shared by ``_optimizers``'s Python kernels
and ``_training``.  Each update is one in-place pass over ``size`` contiguous values."""
from cython cimport floating
from libc.stdint cimport int64_t


cdef void sgd_loop(floating *p, const floating *g, Py_ssize_t size, floating lr) noexcept nogil
cdef void momentum_loop(floating *p, const floating *g, floating *v, Py_ssize_t size,
                        floating lr, floating mu, bint nesterov, bint classic) noexcept nogil
cdef void adagrad_loop(floating *p, const floating *g, floating *acc, Py_ssize_t size,
                       floating lr, floating eps, bint inside) noexcept nogil
cdef void rmsprop_loop(floating *p, const floating *g, floating *ms, Py_ssize_t size,
                       floating lr, floating rho, floating eps, bint inside) noexcept nogil
cdef void adam_loop(floating *p, const floating *g, floating *m, floating *v, Py_ssize_t size,
                    floating lr_t, floating b1, floating b2, floating eps) noexcept nogil
cdef void adam_inside_loop(floating *p, const floating *g, floating *m, floating *v,
                           Py_ssize_t size, floating lr, floating b1, floating b2, floating eps,
                           floating c1, floating c2) noexcept nogil
cdef double adam_step_size(double lr, double beta_1, double beta_2, double step) noexcept nogil
cdef Py_ssize_t gather_bytes(const char *src, Py_ssize_t n, const int64_t *idx, Py_ssize_t m,
                             Py_ssize_t row_bytes, char *dst) noexcept nogil
cdef Py_ssize_t gather_columns(const char *src, Py_ssize_t n, const int64_t *idx, Py_ssize_t m,
                               Py_ssize_t row_bytes, Py_ssize_t offset, Py_ssize_t nbytes,
                               char *dst) noexcept nogil

# cython: language_level=3
"""Activations, their derivatives and the dtype-generic math the losses need.

Shared as ``cdef inline`` functions so that ``_dense``, ``_losses`` and
``_sparse`` fuse them into their own loops (the forward after the GEMM, the
derivative after the loss gradient) instead of calling across modules per row.

Design notes
------------
* The row loops are C (``_elementwise.h``), generated from the formulas in
  ``codes.ELEMENTWISE`` by ``fastnn/_kernels/formulas.py`` and built once per
  x86 level like the other ``_simd_*.h`` kernels: the Cython modules themselves
  are compiled for baseline x86-64, where these loops ran on 16-byte vectors.
  Their math (``_simd_math.h``) is branch-free float32 and float64 ``exp``,
  ``tanh``, ``expm1``, ``log1p`` and the normal CDF, the Numba backend's
  algorithms, so the loops vectorize (libm's are scalar calls).
* ``act`` is the contract's integer code: the loops branch on it once per row
  and then run a tight loop, never a switch per element.
* Derivatives use the stored output ``A`` where the math allows (sigmoid,
  tanh, ELU, softmax) and ``Z`` otherwise, exactly like the NumPy reference.
* The losses' ``f_log``/``f_log1p``/``f_abs`` are libm, one ``floating`` body
  each; ``if floating is float`` keeps float32 math in single precision.
"""
from cython cimport floating
from libc.math cimport fabs, fabsf, log, log1p, log1pf, logf


cdef extern from "_elementwise.h" nogil:
    void fastnn_act_backward_f32(int act, float alpha, const float *z, const float *a, const float *da,
                                 float *dz, Py_ssize_t m)
    void fastnn_act_backward_f64(int act, double alpha, const double *z, const double *a, const double *da,
                                 double *dz, Py_ssize_t m)
    void fastnn_bias_act_rows_f32(Py_ssize_t n, Py_ssize_t m, const float *b, int act, float alpha,
                                  float *z, float *a)
    void fastnn_bias_act_rows_f64(Py_ssize_t n, Py_ssize_t m, const double *b, int act, double alpha,
                                  double *z, double *a)
    void fastnn_act_backward_rows_f32(Py_ssize_t n, Py_ssize_t m, int act, float alpha, const float *z,
                                      const float *a, const float *da, float *dz)
    void fastnn_act_backward_rows_f64(Py_ssize_t n, Py_ssize_t m, int act, double alpha, const double *z,
                                      const double *a, const double *da, double *dz)
    int fastnn_act_level()
    int fastnn_act_set_level(int level)


# ------------------------------------------------------------ dtype-generic libm
cdef inline floating f_log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating f_log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating f_abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


# ------------------------------------------------------------------ the rows
cdef inline void act_backward_row(int act, floating alpha, const floating *z, const floating *a,
                                  const floating *da, floating *dz, Py_ssize_t m) noexcept nogil:
    """dz := da * act'(z) for one row    # IN z, a, da (m,)  OUT dz (m,); dz is da or overlaps nothing."""
    if m <= 0:
        return
    if floating is float:
        fastnn_act_backward_f32(act, alpha, z, a, da, dz, m)
    else:
        fastnn_act_backward_f64(act, alpha, z, a, da, dz, m)


cdef inline void bias_act_rows(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_out, const floating *b,
                               int act, floating alpha, floating *z, floating *a) noexcept nogil:
    """Rows lo:hi of z (m, n_out) += b (NULL: no bias); a := act(z), a row at a time
    while it is in cache    # IN b (n_out,)  INOUT z  OUT a (m, n_out); a is z or overlaps nothing."""
    if hi <= lo or n_out <= 0:
        return
    if floating is float:
        fastnn_bias_act_rows_f32(hi - lo, n_out, b, act, alpha, z + lo * n_out, a + lo * n_out)
    else:
        fastnn_bias_act_rows_f64(hi - lo, n_out, b, act, alpha, z + lo * n_out, a + lo * n_out)


cdef inline void act_backward_rows(int act, floating alpha, Py_ssize_t n, Py_ssize_t m, const floating *z,
                                   const floating *a, const floating *da, floating *dz) noexcept nogil:
    """dz (n, m) := da * act'(z), all rows in one call    # IN z, a, da (n, m)  OUT dz (n, m);
    dz is da or overlaps nothing."""
    if n <= 0 or m <= 0:
        return
    if floating is float:
        fastnn_act_backward_rows_f32(n, m, act, alpha, z, a, da, dz)
    else:
        fastnn_act_backward_rows_f64(n, m, act, alpha, z, a, da, dz)

# cython: language_level=3
"""Activations, their derivatives and the dtype-generic math they need.

Shared as ``cdef inline`` functions so that ``_dense`` and ``_losses``
fuse them into their own loops (the forward after the GEMM, the derivative
after the loss gradient) instead of calling across modules per element.

Design notes
------------
* One ``floating`` body per function; ``if floating is float`` picks a
  single-precision routine so float32 math never goes through double.
  Literal constants are cast to ``floating`` for the same reason.
* float32 ``exp``, ``tanh``, ``expm1``, ``log1p`` (of ``0 <= u <= 1``) and the
  normal CDF are fastnn's own branch-free versions (below, the same algorithms
  as the Numba backend's ``_math``) so the loops around them vectorize;
  everything else, and float64, is libm.
* ``act`` is the contract's integer code.  The row kernels
  (``act_forward_row``/``act_backward_row``) branch on it once per row and then
  run a tight loop, never a switch per element.  Their elementwise loops are
  generated from the formulas in ``codes.ELEMENTWISE`` into
  ``_elementwise.pxi`` (``fastnn/_kernels/formulas.py``); the helpers the
  formulas call (``f_exp``, ``f_sigmoid``, ``f_norm_cdf``, ...) and softmax
  are written here.
"""
cimport cython
from cython cimport floating
from libc.math cimport (
    erf, erff, exp, expm1, fabs, fabsf, log, log1p, log1pf, logf, sqrt, sqrtf, tanh,
)
from libc.stdint cimport int32_t, uint32_t
from libc.string cimport memcpy


cdef extern from *:
    """
    #define FASTNN_SQRT_HALF 0.70710678118654752440
    """
    double SQRT_HALF "FASTNN_SQRT_HALF"


# Loops that select between two values compute both first; with the modules'
# -fno-trapping-math the compiler turns the select into vector blends.

# ----------------------------------------------------------- float32 exp, tanh
# glibc's expf/tanhf are scalar calls, so loops over them do not vectorize and
# cost 4-12 ns per element -- several times NumPy's SIMD ufuncs.  These are the
# Cephes single-precision algorithms written branch-free (range reduction,
# polynomial, exponent bits), which the compiler vectorizes; both are within
# 2 ulp of the exact result.  float64 keeps libm.
cdef inline float _scale_pow2(float p, uint32_t k) noexcept nogil:
    """p * 2**k for k (as int32) in [-152, 130], split in two exact halves."""
    cdef int32_t kk = <int32_t> k
    cdef int32_t k1 = kk >> 1
    cdef uint32_t b1 = <uint32_t> (k1 + 127) << 23
    cdef uint32_t b2 = <uint32_t> (kk - k1 + 127) << 23
    cdef float s1, s2
    memcpy(&s1, &b1, 4)
    memcpy(&s2, &b2, 4)
    return (p * s1) * s2


cdef inline float expf_vec(float x) noexcept nogil:
    """e**x for float32: inf above 88.72, 0 below -103.97, NaN stays NaN."""
    cdef float t, n, r, p
    cdef uint32_t tb
    # Branch-free clamps (NaN compares false and passes through); float
    # literals keep the comparisons in single precision.
    cdef float hi = 89, lo = -104
    x = hi if x > hi else x
    x = lo if x < lo else x
    # n = round(x / ln 2): adding 1.5 * 2**23 leaves n in the low mantissa bits.
    t = x * <float> 1.44269504088896341 + <float> 12582912
    n = t - <float> 12582912
    memcpy(&tb, &t, 4)
    r = x - n * <float> 0.693359375  # x - n ln 2 in two exact-ish steps
    r = r + n * <float> 2.12194440e-4
    p = <float> 1.9875691500e-4
    p = p * r + <float> 1.3981999507e-3
    p = p * r + <float> 8.3334519073e-3
    p = p * r + <float> 4.1665795894e-2
    p = p * r + <float> 1.6666665459e-1
    p = p * r + <float> 5.0000001201e-1
    p = p * (r * r) + r + <float> 1
    return _scale_pow2(p, tb - <uint32_t> 0x4B400000)


@cython.cdivision(True)
cdef inline float tanhf_vec(float x) noexcept nogil:
    """tanh for float32: odd polynomial below |x| = 0.625, 1 - 2 / (e^2|x| + 1) above."""
    cdef float ax = fabsf(x)
    cdef float z = x * x
    cdef float small = ((((<float> -5.70498872745e-3 * z + <float> 2.06390887954e-2) * z
                          - <float> 5.37397155531e-2) * z + <float> 1.33314422036e-1) * z
                        - <float> 3.33332819422e-1) * z * x + x
    cdef float large = <float> 1 - <float> 2 / (expf_vec(ax + ax) + <float> 1)
    large = large if x >= <float> 0 else -large
    return large if ax > <float> 0.625 else small


cdef inline float expm1f_vec(float x) noexcept nogil:
    """e**x - 1 for float32: Taylor to degree 8 below |x| = 1/2 (relative error
    < 1e-8, no cancellation), exp(x) - 1 above."""
    cdef float p = <float> 2.48015873015873e-05
    p = p * x + <float> 1.98412698412698e-04
    p = p * x + <float> 1.38888888888889e-03
    p = p * x + <float> 8.33333333333333e-03
    p = p * x + <float> 4.16666666666667e-02
    p = p * x + <float> 1.66666666666667e-01
    p = p * x + <float> 0.5
    cdef float small = (p * x) * x + x
    cdef float big = expf_vec(x) - <float> 1
    return small if fabsf(x) < <float> 0.5 else big


@cython.cdivision(True)
cdef inline float log1pf_unit(float u) noexcept nogil:
    """log(1 + u) for float32 and 0 <= u <= 1: 2 atanh(s), s = u / (2 + u) in
    [0, 1/3], as an odd series in s."""
    cdef float s = u / (<float> 2 + u)
    cdef float z = s * s
    cdef float p = <float> (1.0 / 15.0)
    p = p * z + <float> (1.0 / 13.0)
    p = p * z + <float> (1.0 / 11.0)
    p = p * z + <float> (1.0 / 9.0)
    p = p * z + <float> (1.0 / 7.0)
    p = p * z + <float> (1.0 / 5.0)
    p = p * z + <float> (1.0 / 3.0)
    return <float> 2 * (s + s * z * p)


@cython.cdivision(True)
cdef inline float norm_cdff_vec(float z) noexcept nogil:
    """Phi(z) for float32 from erfc(x) = t exp(-x^2) g(t), x = |z| / sqrt 2,
    t = 1 / (1 + x / 2), g a degree-8 polynomial fitted to erfcx(x) / t (relative
    error < 5e-8 on x in [0, 12]; in float32 erfc's is < 1e-6 for x < 4).  The
    left tail comes from erfc directly: no 1 + erf cancellation."""
    cdef float x = fabsf(z) * <float> SQRT_HALF
    cdef float t = <float> 1 / (<float> 1 + <float> 0.5 * x)
    cdef float g = <float> -0.059479378407376875
    g = g * t + <float> 0.2865505034285835
    g = g * t + <float> -0.4912289800189619
    g = g * t + <float> 0.28259896892426684
    g = g * t + <float> -0.02968869397849737
    g = g * t + <float> 0.2039556000798466
    g = g * t + <float> 0.24279058934053405
    g = g * t + <float> 0.28241725290517067
    g = g * t + <float> 0.28208409273163065
    cdef float half_erfc = <float> 0.5 * (t * g) * expf_vec(-(x * x))
    return half_erfc if z < <float> 0 else <float> 1 - half_erfc


# ------------------------------------------------------------ dtype-generic libm
cdef inline floating f_exp(floating x) noexcept nogil:
    if floating is float:
        return expf_vec(x)
    else:
        return exp(x)


cdef inline floating f_expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f_vec(x)
    else:
        return expm1(x)


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


cdef inline floating f_log1p_unit(floating u) noexcept nogil:
    """log(1 + u) for 0 <= u <= 1."""
    if floating is float:
        return log1pf_unit(u)
    else:
        return log1p(u)


cdef inline floating f_tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf_vec(x)
    else:
        return tanh(x)


cdef inline floating f_erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating f_sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating f_abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


@cython.cdivision(True)  # 1 / inf is 0 and 1 / 0 is inf, as in NumPy, even in debug builds
cdef inline floating f_sigmoid(floating z) noexcept nogil:
    # exp(-z) overflows to inf for very negative z and 1 / inf is the right 0.
    return <floating> 1 / (<floating> 1 + f_exp(-z))


cdef inline floating f_norm_cdf(floating z) noexcept nogil:
    """Phi(z), the standard normal CDF (float64: the exact erf form)."""
    if floating is float:
        return norm_cdff_vec(z)
    else:
        return (erf(z * SQRT_HALF) + 1.0) * 0.5


# ------------------------------------------------------------------- forward
@cython.cdivision(True)
cdef inline void softmax_row(const floating *z, floating *a, Py_ssize_t m) noexcept nogil:
    """a := exp(z - max(z)) / sum(...)    # IN z (m,)  OUT a (m,); a may be z."""
    cdef Py_ssize_t j
    cdef floating mx = z[0]
    cdef floating e
    cdef double s = 0.0
    for j in range(1, m):
        if z[j] > mx:
            mx = z[j]
    for j in range(m):  # vectorizes; the sum below does not, so it is a loop of its own
        a[j] = f_exp(z[j] - mx)
    for j in range(m):
        s += a[j]
    cdef floating total = <floating> s
    for j in range(m):
        a[j] = a[j] / total


@cython.cdivision(True)
cdef inline void softmax_backward_row(const floating *a, const floating *da, floating *dz,
                                      Py_ssize_t m) noexcept nogil:
    """dz := a * (da - <da, a>)    # IN a, da (m,)  OUT dz (m,); dz may be da."""
    cdef Py_ssize_t j
    cdef double dot = 0.0
    for j in range(m):
        dot += da[j] * a[j]
    cdef floating t = <floating> dot
    for j in range(m):
        dz[j] = (da[j] - t) * a[j]


# ------------------------------------------------- elementwise, from formulas
# act_forward_row(act, alpha, z, a, m) and act_backward_row(act, alpha, z, a,
# da, dz, m): one loop per activation, generated from codes.ELEMENTWISE.
include "_elementwise.pxi"


cdef inline void bias_act_rows(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_out, const floating *b,
                               int act, floating alpha, floating *z, floating *a) noexcept nogil:
    """Rows lo:hi of z (m, n_out) += b (NULL: no bias); a := act(z), a row at a time
    while it is in cache    # IN b (n_out,)  INOUT z  OUT a (m, n_out); a may be z."""
    cdef Py_ssize_t i, j
    cdef floating *zi
    for i in range(lo, hi):
        zi = z + i * n_out
        if b != NULL:
            for j in range(n_out):
                zi[j] = zi[j] + b[j]
        act_forward_row(act, alpha, zi, a + i * n_out, n_out)

"""Vectorizable float32-accurate math for the Numba kernels.

LLVM only vectorizes a loop whose calls it can inline, and without Intel SVML
``np.exp`` is a scalar libm call per element.  ``_exp``, ``_expm1``, ``_tanh``
and ``_log1p_unit`` are branch-free Cephes-style implementations (range
reduction, polynomial, exponent built with integer bit operations) accurate to
a few ulps, so sigmoid, tanh, ELU, swish, softplus and softmax loops run on
full SIMD registers.  GELU's normal CDF is vectorized in float32
(``_norm_cdf``, a fitted erfc); float64 GELU uses libm's ``erfc``, as the
reference does SciPy's.  Constants are typed (``_f32(c)``): a Python float would
promote the whole loop to float64.  ``_sum`` and ``_dot`` are the vectorized
reductions.  See "Numba: float32 constants and vectorization" in
``docs/performance.md``.
"""
import math

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import FASTMATH, INTERNAL, _as_float, _as_int, _select, jit_reduction

_f32 = np.float32
_SQRT_HALF = 0.7071067811865476


# Each is a Python stand-in (used only if called from Python) plus a Numba
# overload per dtype.  All are branch-free (selects), so loops calling them
# vectorize.
def _exp(x):
    return np.exp(x)


def _expm1(x):
    return np.expm1(x)


def _tanh(x):
    return np.tanh(x)


def _log1p_unit(u):
    """log(1 + u) for 0 <= u <= 1."""
    return np.log1p(u)


def _norm_cdf(z):
    """Phi(z), the standard normal CDF."""
    return 0.5 * math.erfc(-z * _SQRT_HALF)


_MATH_OPTIONS = {"inline": "always", "jit_options": {"fastmath": FASTMATH, "error_model": "numpy", **INTERNAL}}


@overload(_exp, **_MATH_OPTIONS)
def _ol_exp(x):
    # exp(x) = 2^n * exp(r), x = n ln2 + r, |r| <= ln2 / 2.  2^n is applied as
    # an exponent add on exp(r) (normal results) times a second exact power of
    # two that only differs from 1 for subnormal results.  Overflow gives inf,
    # underflow 0, NaN passes through.
    if x == types.float32:

        def impl(x):
            hi = _f32(88.72283935546875)
            lo = _f32(-103.97208404541016)
            xc = _select(x > lo, x, lo)
            xc = _select(xc < hi, xc, hi)
            n = np.floor(xc * _f32(1.4426950408889634) + _f32(0.5))
            r = xc - n * _f32(0.693359375)
            r = r - n * _f32(-2.12194440e-4)
            p = _f32(1.9875691500e-4)
            p = p * r + _f32(1.3981999507e-3)
            p = p * r + _f32(8.3334519073e-3)
            p = p * r + _f32(4.1665795894e-2)
            p = p * r + _f32(1.6666665459e-1)
            p = p * r + _f32(5.0000001201e-1)
            p = p * (r * r) + r + _f32(1.0)
            ni = np.int64(n)
            n1 = _select(ni > -100, ni, np.int64(-100))
            y = _as_float(np.int32(_as_int(p) + (n1 << 23))) * _as_float(np.int32((ni - n1 + 127) << 23))
            y = _select(x < hi, y, _f32(np.inf))
            y = _select(x > lo, y, _f32(0.0))
            return _select(x == x, y, x)

        return impl
    if x == types.float64:

        def impl(x):
            hi = 709.782712893384
            lo = -745.1332191019412
            xc = _select(x > lo, x, lo)
            xc = _select(xc < hi, xc, hi)
            n = np.floor(xc * 1.4426950408889634 + 0.5)
            r = xc - n * 6.93147180369123816490e-01
            r = r - n * 1.90821492927058770002e-10
            p = 2.08767569878680989792e-09  # 1/12!, Taylor to degree 12 (|r| < 0.35)
            p = p * r + 2.50521083854417187751e-08
            p = p * r + 2.75573192239858906526e-07
            p = p * r + 2.75573192239858906526e-06
            p = p * r + 2.48015873015873015873e-05
            p = p * r + 1.98412698412698412698e-04
            p = p * r + 1.38888888888888888889e-03
            p = p * r + 8.33333333333333333333e-03
            p = p * r + 4.16666666666666666667e-02
            p = p * r + 1.66666666666666666667e-01
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            ni = np.int64(n)
            n1 = _select(ni > -1000, ni, np.int64(-1000))
            y = _as_float(_as_int(p) + (n1 << 52)) * _as_float((ni - n1 + 1023) << 52)
            y = _select(x < hi, y, np.inf)
            y = _select(x > lo, y, 0.0)
            return _select(x == x, y, x)

        return impl
    return None


@overload(_expm1, **_MATH_OPTIONS)
def _ol_expm1(x):
    # |x| < 1/2: a polynomial (no cancellation); otherwise exp(x) - 1.
    if x == types.float32:

        def impl(x):
            # Taylor to degree 8: relative error < 1e-8 on |x| < 1/2.
            p = _f32(2.48015873015873e-05)
            p = p * x + _f32(1.98412698412698e-04)
            p = p * x + _f32(1.38888888888889e-03)
            p = p * x + _f32(8.33333333333333e-03)
            p = p * x + _f32(4.16666666666667e-02)
            p = p * x + _f32(1.66666666666667e-01)
            p = p * x + _f32(0.5)
            small = (p * x) * x + x
            big = _exp(x) - _f32(1.0)
            return _select(abs(x) < _f32(0.5), small, big)

        return impl
    if x == types.float64:

        def impl(x):
            # Cephes expm1 rational approximation on |x| < 1/2.
            xx = x * x
            r = ((1.2617719307481059087798e-4 * xx + 3.0299440770744196129956e-2) * xx
                 + 9.9999999999999999991025e-1) * x
            q = ((3.0019850513866445504159e-6 * xx + 2.5244834034968410419224e-3) * xx
                 + 2.2726554820815502876593e-1) * xx + 2.0000000000000000000897e0
            r = r / (q - r)
            small = r + r
            big = _exp(x) - 1.0
            return _select(abs(x) < 0.5, small, big)

        return impl
    return None


@overload(_tanh, **_MATH_OPTIONS)
def _ol_tanh(x):
    # Cephes: an odd polynomial/rational for |x| < 0.625, else
    # sign(x) (1 - 2 / (exp(2|x|) + 1)), which saturates to +-1 without NaN.
    if x == types.float32:

        def impl(x):
            ax = abs(x)
            z = x * x
            p = _f32(-5.70498872745e-3)
            p = p * z + _f32(2.06390887954e-2)
            p = p * z + _f32(-5.37397155531e-2)
            p = p * z + _f32(1.33314422036e-1)
            p = p * z + _f32(-3.33332819422e-1)
            small = (p * z) * x + x
            big = _f32(1.0) - _f32(2.0) / (_exp(ax + ax) + _f32(1.0))
            big = _select(x >= _f32(0.0), big, -big)
            return _select(ax < _f32(0.625), small, big)

        return impl
    if x == types.float64:

        def impl(x):
            ax = abs(x)
            z = x * x
            p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
            q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
            small = x + x * z * (p / q)
            big = 1.0 - 2.0 / (_exp(ax + ax) + 1.0)
            big = _select(x >= 0.0, big, -big)
            return _select(ax < 0.625, small, big)

        return impl
    return None


@overload(_log1p_unit, **_MATH_OPTIONS)
def _ol_log1p_unit(u):
    # log(1 + u) = 2 atanh(s), s = u / (2 + u) in [0, 1/3]: an odd series in s.
    if u == types.float32:

        def impl(u):
            s = u / (_f32(2.0) + u)
            z = s * s
            p = _f32(1.0 / 15.0)
            p = p * z + _f32(1.0 / 13.0)
            p = p * z + _f32(1.0 / 11.0)
            p = p * z + _f32(1.0 / 9.0)
            p = p * z + _f32(1.0 / 7.0)
            p = p * z + _f32(1.0 / 5.0)
            p = p * z + _f32(1.0 / 3.0)
            return _f32(2.0) * (s + s * z * p)

        return impl
    if u == types.float64:

        def impl(u):
            s = u / (2.0 + u)
            z = s * s
            p = 1.0 / 33.0
            p = p * z + 1.0 / 31.0
            p = p * z + 1.0 / 29.0
            p = p * z + 1.0 / 27.0
            p = p * z + 1.0 / 25.0
            p = p * z + 1.0 / 23.0
            p = p * z + 1.0 / 21.0
            p = p * z + 1.0 / 19.0
            p = p * z + 1.0 / 17.0
            p = p * z + 1.0 / 15.0
            p = p * z + 1.0 / 13.0
            p = p * z + 1.0 / 11.0
            p = p * z + 1.0 / 9.0
            p = p * z + 1.0 / 7.0
            p = p * z + 1.0 / 5.0
            p = p * z + 1.0 / 3.0
            return 2.0 * (s + s * z * p)

        return impl
    return None


@overload(_norm_cdf, **_MATH_OPTIONS)
def _ol_norm_cdf(z):
    if z == types.float32:
        # erfc(x) = t exp(-x^2) g(t) for x = |z| / sqrt(2) >= 0, t = 1 / (1 + x / 2)
        # in (0, 1]; g is a degree-8 polynomial fitted here (weighted least
        # squares on Chebyshev nodes in t, x in [0, 12]) to erfcx(x) / t with
        # relative error below 5e-8.  Evaluated in float32 the relative error of
        # erfc is below 1e-6 for x < 4 (the rounding of x^2 dominates beyond).
        # The left tail comes from erfc directly: no 1 + erf cancellation.
        def impl(z):
            x = abs(z) * _f32(_SQRT_HALF)
            t = _f32(1.0) / (_f32(1.0) + _f32(0.5) * x)
            g = _f32(-0.059479378407376875)
            g = g * t + _f32(0.2865505034285835)
            g = g * t + _f32(-0.4912289800189619)
            g = g * t + _f32(0.28259896892426684)
            g = g * t + _f32(-0.02968869397849737)
            g = g * t + _f32(0.2039556000798466)
            g = g * t + _f32(0.24279058934053405)
            g = g * t + _f32(0.28241725290517067)
            g = g * t + _f32(0.28208409273163065)
            half_erfc = _f32(0.5) * (t * g) * _exp(-(x * x))
            return _select(z < _f32(0.0), half_erfc, _f32(1.0) - half_erfc)

        return impl
    if z == types.float64:

        def impl(z):  # erfc keeps the left tail (1 + erf cancels to 0 below z = -8)
            return 0.5 * math.erfc(-z * _SQRT_HALF)

        return impl
    return None


@jit_reduction
def _sum(x):
    """sum(x) in the dtype of x; reassoc lets the reduction vectorize."""
    s = x.dtype.type(0.0)
    for i in range(x.size):
        s += x[i]
    return s


@jit_reduction
def _dot(x, y):
    """sum(x * y) in the dtype of x, vectorized like ``_sum``."""
    s = x.dtype.type(0.0)
    for i in range(x.size):
        s += x[i] * y[i]
    return s


@jit_reduction
def _all_finite(x):
    """Whether every value of a 1-D or 2-D ``x`` is finite: v - v is 0 for finite v
    and NaN otherwise, and a sum of zeros and NaNs is 0 or NaN in any order, so the
    loop vectorizes (without nnan/ninf, v - v is not folded away)."""
    total = x.dtype.type(0)
    if x.ndim == 1:
        for i in range(x.shape[0]):
            v = x[i]
            total += v - v
    else:
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                v = x[i, j]
                total += v - v
    return total == 0

"""The Numba backend: every kernel of ``fastnn._kernels`` as one compiled pass.

Design
------
* The public kernels are the ``@njit`` dispatchers themselves: no Python layer
  in between, so a call on a tiny layer costs about half a microsecond of
  dispatch.  ``None`` arguments (no bias, no input gradient, no sample
  weights, no velocity) are typed as ``none`` and their branches are pruned
  at compile time; so are branches on ``ndim`` (sparse vs one-hot targets,
  1-D vs 2-D ``gather_rows``).  Activation and loss codes are ordinary
  integer arguments; the branch on them is taken once, outside the loops.
* Compilation is lazy (first call, one specialization per dtype and
  ``None`` pattern) and cached on disk (``cache=True``).  ``warmup(dtype)``
  compiles the usual specializations ahead of time.
* float32 stays float32: hyperparameters are cast to the array dtype on
  entry and constants are typed (``Z.dtype.type(c)`` / ``type(z)(c)``),
  because a Python float would promote the whole loop to float64.
* ``fastmath`` is limited to ``contract`` (fused multiply-add): no
  ``nnan``/``ninf`` (NaN and inf must survive to be detected) and no
  ``reassoc``, which would undo the two-constant range reduction of ``_exp``.
  Elementwise loops vectorize without it; the row sums of softmax go through
  ``_sum``/``_dot``, compiled apart with ``reassoc`` so they vectorize too.
  ``error_model="numpy"`` (x / 0 is inf, not an exception) removes the
  zero-divisor branch that would keep any loop with a division scalar.
* Transcendentals: LLVM only vectorizes a loop whose calls it can inline, and
  without Intel SVML ``np.exp`` is a scalar libm call per element.  ``_exp``,
  ``_expm1``, ``_tanh`` and ``_log1p_unit`` below are branch-free
  Cephes-style implementations (range reduction, polynomial, exponent built
  with integer bit operations) accurate to a few ulps, so sigmoid, tanh, ELU,
  swish, softplus and softmax loops run on full SIMD registers.  GELU's
  normal CDF is vectorized in float32 (``_norm_cdf``, a fitted erfc); float64
  GELU keeps libm's ``erf``, as the reference does.
* GEMMs go to BLAS through ``np.dot`` (SciPy's OpenBLAS, multi-threaded) and
  everything around them is one serial pass over the output: bias add and
  activation a block of rows at a time (the block stays in L1 between the
  two), the l2 term and the bias gradient in one sweep.  No kernel here uses
  ``prange``: on two cores a parallel epilogue next to BLAS's spinning threads
  is many times slower (PERF-NOTES), and the elementwise kernels are
  memory-bound.  Kernels release the GIL (``nogil``).
* Elementwise kernels whose output may alias an input (``dZ_out is dA``)
  have an in-place loop: LLVM's runtime overlap check fails for an exact
  alias and would fall back to scalar code.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from . import (
    BINARY_CROSSENTROPY,
    CATEGORICAL_CROSSENTROPY,
    ELU,
    GELU,
    HALF_SQUARED_ERROR,
    LEAKY_RELU,
    LINEAR,
    MAE,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX,
    SOFTPLUS,
    SPARSE_CATEGORICAL_CROSSENTROPY,
    SWISH,
    TANH,
)

NAME = "numba"

_FASTMATH = {"contract"}
_jit = njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
# Scalar helpers are inlined at the Numba IR level: left to LLVM's inliner, the
# larger ones (tanh = polynomial + exp + division) stay calls and the loop
# around them does not vectorize.
_jit_inline = njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")

_f32 = np.float32
_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
# Bytes of output per epilogue block: still in L1 when the activation reads it.
_CHUNK_BYTES = 16384


# ------------------------------------------------------------- bit casts
@intrinsic
def _as_int(typingctx, x):
    """Reinterpret the bits of a float32/float64 as int32/int64."""
    if x == types.float32:
        rt = types.int32
    elif x == types.float64:
        rt = types.int64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(rt))

    return rt(x), codegen


@intrinsic
def _as_float(typingctx, bits):
    """Reinterpret the bits of an int32/int64 as float32/float64."""
    if bits == types.int32:
        rt = types.float32
    elif bits == types.int64:
        rt = types.float64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(rt))

    return rt(bits), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM select (no branch in Numba's IR, so the
    helpers below inline cleanly and their loops vectorize)."""
    if not isinstance(cond, types.Boolean) or a != b:
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[0], args[1], args[2])

    return a(cond, a, b), codegen


# ------------------------------------------------- vectorizable transcendentals
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
    return 0.5 * (1.0 + math.erf(z * _SQRT_HALF))


_MATH_OPTIONS = {"inline": "always", "jit_options": {"fastmath": _FASTMATH, "error_model": "numpy"}}


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

        def impl(z):
            return 0.5 * (1.0 + math.erf(z * _SQRT_HALF))

        return impl
    return None


# ------------------------------------------------ scalar activations and derivatives
@_jit_inline
def _sigmoid(z):
    one = type(z)(1.0)
    return one / (one + _exp(-z))


@_jit_inline
def _softplus(z):  # max(z, 0) + log1p(exp(-|z|))
    zero = type(z)(0.0)
    return _select(z > zero, z, zero) + _log1p_unit(_exp(-abs(z)))


@_jit_inline
def _gelu(z):  # z Phi(z)
    return z * _norm_cdf(z)


@_jit_inline
def _elu(z, alpha):
    zero = type(z)(0.0)
    # expm1 of min(z, 0), NaN kept (NaN > 0 is false, so NaN goes to expm1).
    return _select(z > zero, z, alpha * _expm1(_select(z > zero, zero, z)))


@_jit_inline
def _d_gelu(z):  # Phi(z) + z phi(z)
    t = type(z)
    return _norm_cdf(z) + z * t(_INV_SQRT_2PI) * _exp(t(-0.5) * z * z)


@_jit_inline
def _d_swish(z):  # s (1 + z (1 - s))
    one = type(z)(1.0)
    s = _sigmoid(z)
    return s * (one + z * (one - s))


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _sum(x):
    """sum(x) in the dtype of x; reassoc lets the reduction vectorize (kept out of _jit)."""
    s = x.dtype.type(0.0)
    for i in range(x.size):
        s += x[i]
    return s


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _dot(x, y):
    """sum(x * y) in the dtype of x, vectorized like ``_sum``."""
    s = x.dtype.type(0.0)
    for i in range(x.size):
        s += x[i] * y[i]
    return s


@_jit
def _softmax_rows(Z, A):
    """A := softmax(Z) row-wise, stable (max subtracted).     # OUT: A"""
    n, m = Z.shape
    one = Z.dtype.type(1.0)
    for i in range(n):
        zmax = Z[i, 0]
        for j in range(1, m):
            v = Z[i, j]
            zmax = v if v > zmax else zmax
        for j in range(m):
            A[i, j] = _exp(Z[i, j] - zmax)
        inv = one / _sum(A[i])
        for j in range(m):
            A[i, j] *= inv


@_jit
def _act_flat(act, alpha, z, a):
    """a := act(z) on 1-D views (not softmax).     # OUT: a"""
    zero = z.dtype.type(0.0)
    one = z.dtype.type(1.0)
    if act == LINEAR:
        for i in range(z.size):
            a[i] = z[i]
    elif act == SIGMOID:
        for i in range(z.size):
            a[i] = _sigmoid(z[i])
    elif act == TANH:
        for i in range(z.size):
            a[i] = _tanh(z[i])
    elif act == RELU:
        for i in range(z.size):
            v = z[i]
            a[i] = zero if v <= zero else v  # NaN stays NaN, as np.maximum
    elif act == LEAKY_RELU:
        for i in range(z.size):
            v = z[i]
            a[i] = v if v > zero else alpha * v
    elif act == ELU:
        for i in range(z.size):
            a[i] = _elu(z[i], alpha)
    elif act == SOFTPLUS:
        for i in range(z.size):
            a[i] = _softplus(z[i])
    elif act == GELU:
        for i in range(z.size):
            a[i] = _gelu(z[i])
    elif act == SWISH:
        for i in range(z.size):
            v = z[i]
            a[i] = v * (one / (one + _exp(-v)))
    else:
        raise ValueError("unknown activation code")


@_jit
def _dact_flat(act, alpha, z, a, d):
    """d *= act'(z) on 1-D views (not softmax); in place.     # INOUT: d"""
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    if act == LINEAR:
        pass
    elif act == SIGMOID:
        for i in range(d.size):
            s = a[i]
            d[i] *= s * (one - s)
    elif act == TANH:
        for i in range(d.size):
            t = a[i]
            d[i] *= one - t * t
    elif act == RELU:
        for i in range(d.size):
            d[i] *= one if z[i] > zero else zero
    elif act == LEAKY_RELU:
        for i in range(d.size):
            d[i] *= one if z[i] > zero else alpha
    elif act == ELU:
        for i in range(d.size):
            d[i] *= one if z[i] > zero else a[i] + alpha
    elif act == SOFTPLUS:
        for i in range(d.size):
            d[i] *= _sigmoid(z[i])
    elif act == GELU:
        for i in range(d.size):
            d[i] *= _d_gelu(z[i])
    elif act == SWISH:
        for i in range(d.size):
            d[i] *= _d_swish(z[i])
    else:
        raise ValueError("unknown activation code")


@_jit
def _dact_flat_out(act, alpha, z, a, src, d):
    """d := src * act'(z) on 1-D views (not softmax); d must not alias src.     # OUT: d"""
    one = z.dtype.type(1.0)
    zero = z.dtype.type(0.0)
    if act == LINEAR:
        for i in range(d.size):
            d[i] = src[i]
    elif act == SIGMOID:
        for i in range(d.size):
            s = a[i]
            d[i] = src[i] * (s * (one - s))
    elif act == TANH:
        for i in range(d.size):
            t = a[i]
            d[i] = src[i] * (one - t * t)
    elif act == RELU:
        for i in range(d.size):
            d[i] = src[i] * (one if z[i] > zero else zero)
    elif act == LEAKY_RELU:
        for i in range(d.size):
            d[i] = src[i] * (one if z[i] > zero else alpha)
    elif act == ELU:
        for i in range(d.size):
            d[i] = src[i] * (one if z[i] > zero else a[i] + alpha)
    elif act == SOFTPLUS:
        for i in range(d.size):
            d[i] = src[i] * _sigmoid(z[i])
    elif act == GELU:
        for i in range(d.size):
            d[i] = src[i] * _d_gelu(z[i])
    elif act == SWISH:
        for i in range(d.size):
            d[i] = src[i] * _d_swish(z[i])
    else:
        raise ValueError("unknown activation code")


@_jit
def _softmax_backward_rows(A, dA, dZ):
    """dZ := A * (dA - rowsum(dA * A)); dZ may alias dA.     # OUT: dZ"""
    n, m = A.shape
    for i in range(n):
        dot = _dot(dA[i], A[i])
        for j in range(m):
            dZ[i, j] = A[i, j] * (dA[i, j] - dot)


# ------------------------------------------------------------------- dense layer
@_jit
def dense_forward(X, W, b, act, alpha, Z_out, A_out):
    """Z_out := X @ W + b; A_out := act(Z_out).     # IN: X, W, b  OUT: Z_out, A_out"""
    n, m = Z_out.shape
    if A_out.shape[0] != n or A_out.shape[1] != m:
        raise ValueError("dense_forward: A_out must have the shape of Z_out")
    np.dot(X, W, Z_out)  # BLAS; checks the shapes of X, W and Z_out
    alpha_ = Z_out.dtype.type(alpha)  # a new name: one type per variable
    if act == SOFTMAX:
        if b is not None:
            if b.shape[0] != m:
                raise ValueError("dense_forward: b must have shape (n_out,)")
            for i in range(n):
                for j in range(m):
                    Z_out[i, j] += b[j]
        _softmax_rows(Z_out, A_out)
        return
    z = Z_out.reshape(n * m)
    a = A_out.reshape(n * m)
    if b is None:
        _act_flat(act, alpha_, z, a)
        return
    if b.shape[0] != m:
        raise ValueError("dense_forward: b must have shape (n_out,)")
    # Bias then activation, a chunk of rows at a time while it is in L1.
    rows = max(1, _CHUNK_BYTES // max(m * Z_out.itemsize, 1))
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        for i in range(i0, i1):
            for j in range(m):
                Z_out[i, j] += b[j]
        _act_flat(act, alpha_, z[i0 * m:i1 * m], a[i0 * m:i1 * m])


@_jit
def activation_backward(act, alpha, Z, A, dA, dZ_out):
    """dZ_out := dA * act'(Z) (softmax: A * (dA - rowsum(dA * A))); dZ_out may be dA.

    # IN: Z, A, dA  OUT: dZ_out
    """
    n, m = dZ_out.shape
    if (Z.shape[0] != n or Z.shape[1] != m or A.shape[0] != n or A.shape[1] != m
            or dA.shape[0] != n or dA.shape[1] != m):
        raise ValueError("activation_backward: Z, A, dA and dZ_out must have one shape")
    if act == SOFTMAX:
        _softmax_backward_rows(A, dA, dZ_out)
        return
    alpha_ = dZ_out.dtype.type(alpha)
    z = Z.reshape(n * m)
    a = A.reshape(n * m)
    d = dZ_out.reshape(n * m)
    if dA.ctypes.data == dZ_out.ctypes.data:
        _dact_flat(act, alpha_, z, a, d)
    else:
        _dact_flat_out(act, alpha_, z, a, dA.reshape(n * m), d)


@_jit
def dense_backward(X, W, dZ, l2, dW_out, db_out, dX_out):
    """dW_out := X.T @ dZ + l2 W; db_out := sum(dZ, 0); dX_out := dZ @ W.T.

    # IN: X, W, dZ  OUT: dW_out, db_out (or None), dX_out (or None)
    """
    np.dot(X.T, dZ, dW_out)
    if l2 != 0:
        if W.shape[0] != dW_out.shape[0] or W.shape[1] != dW_out.shape[1]:
            raise ValueError("dense_backward: W and dW_out must have one shape")
        c = dW_out.dtype.type(l2)
        w = W.reshape(W.size)
        g = dW_out.reshape(dW_out.size)
        for i in range(g.size):
            g[i] += c * w[i]
    if db_out is not None:
        n, m = dZ.shape
        if db_out.shape[0] != m:
            raise ValueError("dense_backward: db_out must have shape (n_out,)")
        for j in range(m):
            db_out[j] = 0
        for i in range(n):  # row by row: the same summation order as NumPy's
            for j in range(m):
                db_out[j] += dZ[i, j]
    if dX_out is not None:
        np.dot(dZ, W.T, dX_out)


# ------------------------------------------------------------------------ maxout
@_jit
def maxout_forward(Z, pieces, A_out, argmax_out):
    """A_out[i, u] := max_p Z[i, u * pieces + p]; argmax_out := winning p (first on ties).

    # IN: Z  OUT: A_out, argmax_out
    """
    n, units = A_out.shape
    if (Z.shape[0] != n or Z.shape[1] != units * pieces or argmax_out.shape[0] != n
            or argmax_out.shape[1] != units or pieces < 1):
        raise ValueError("maxout_forward: expected Z (n, units * pieces), A_out and argmax_out (n, units)")
    for i in range(n):
        for u in range(units):
            base = u * pieces
            best = Z[i, base]
            k = 0
            for p in range(1, pieces):
                v = Z[i, base + p]
                # Strictly greater keeps the first of ties; the first NaN wins (np.argmax).
                if v > best or (v != v and best == best):
                    best = v
                    k = p
            A_out[i, u] = best
            argmax_out[i, u] = k


@_jit
def maxout_backward(dA, argmax, pieces, dZ_out):
    """dZ_out[i, u * pieces + argmax[i, u]] := dA[i, u], zero elsewhere.     # OUT: dZ_out"""
    n, units = dA.shape
    if (dZ_out.shape[0] != n or dZ_out.shape[1] != units * pieces or argmax.shape[0] != n
            or argmax.shape[1] != units):
        raise ValueError("maxout_backward: expected dA, argmax (n, units) and dZ_out (n, units * pieces)")
    for i in range(n):
        for j in range(units * pieces):
            dZ_out[i, j] = 0
        for u in range(units):
            k = argmax[i, u]
            if k < 0 or k >= pieces:
                raise IndexError("maxout_backward: argmax out of range")
            dZ_out[i, u * pieces + k] = dA[i, u]


# ------------------------------------------------------------------------ losses
@_jit
def _row_scales(n, k_div, sample_weight):
    """Per-row factor w_i / sum(w) / k_div (1 / n / k_div without weights), float64."""
    out = np.empty(n, np.float64)
    if sample_weight is None:
        c = 1.0 / n / k_div
        for i in range(n):
            out[i] = c
    else:
        if sample_weight.shape[0] != n:
            raise ValueError("sample_weight must have shape (n,)")
        s = 0.0
        for i in range(n):
            s += sample_weight[i]
        c = 1.0 / s / k_div
        for i in range(n):
            out[i] = sample_weight[i] * c
    return out


@_jit
def loss_value(loss, A, Y, sample_weight):
    """Mean (or sample-weighted mean) over rows of the per-sample loss, as a float.     # IN: all"""
    n, k = A.shape
    dt = A.dtype.type
    eps = np.finfo(A.dtype).eps
    lo = dt(eps)
    hi = dt(1.0) - dt(eps)
    one = dt(1.0)
    per = np.empty(n, np.float64)
    if Y.ndim == 1:
        if loss != SPARSE_CATEGORICAL_CROSSENTROPY:
            raise ValueError("loss_value: 1-D integer targets need sparse categorical cross-entropy")
        if Y.shape[0] != n:
            raise ValueError("loss_value: Y must have shape (n,)")
        for i in range(n):
            y = Y[i]
            if y < 0 or y >= k:
                raise IndexError("loss_value: class label out of range")
            p = A[i, y]
            p = p if p > lo else lo
            p = p if p < hi else hi
            per[i] = -np.log(p)
    else:
        if Y.shape[0] != n or Y.shape[1] != k:
            raise ValueError("loss_value: Y must have the shape of A")
        if loss == CATEGORICAL_CROSSENTROPY:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    p = A[i, j]
                    p = p if p > lo else lo
                    p = p if p < hi else hi
                    s += Y[i, j] * np.log(p)
                per[i] = -s
        elif loss == BINARY_CROSSENTROPY:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    p = A[i, j]
                    p = p if p > lo else lo
                    p = p if p < hi else hi
                    y = Y[i, j]
                    s += y * np.log(p) + (one - y) * np.log1p(-p)
                per[i] = -s / k
        elif loss == MSE or loss == HALF_SQUARED_ERROR:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    e = A[i, j] - Y[i, j]
                    s += e * e
                per[i] = s / k if loss == MSE else 0.5 * s / k
        elif loss == MAE:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    s += abs(A[i, j] - Y[i, j])
                per[i] = s / k
        else:
            raise ValueError("loss_value: unknown loss code (or 2-D targets for sparse cross-entropy)")
    total = 0.0
    if sample_weight is None:
        for i in range(n):
            total += per[i]
        return total / n
    if sample_weight.shape[0] != n:
        raise ValueError("loss_value: sample_weight must have shape (n,)")
    wsum = 0.0
    for i in range(n):
        total += per[i] * sample_weight[i]
        wsum += sample_weight[i]
    return total / wsum


@_jit
def loss_output_delta(loss, act, alpha, Z, A, Y, sample_weight, dZ_out):
    """dZ_out := d loss_value / dZ for the output layer.     # IN: Z, A, Y, sample_weight  OUT: dZ_out

    Matched pairs (softmax + (sparse) categorical cross-entropy, sigmoid +
    binary cross-entropy) take the fused, stable ``(A - Y) * scale``.
    """
    n, k = A.shape
    if dZ_out.shape[0] != n or dZ_out.shape[1] != k or Z.shape[0] != n or Z.shape[1] != k:
        raise ValueError("loss_output_delta: Z, A and dZ_out must have one shape")
    dt = A.dtype.type
    eps = np.finfo(A.dtype).eps
    lo = dt(eps)
    hi = dt(1.0) - dt(eps)
    one = dt(1.0)
    per_element = (loss == BINARY_CROSSENTROPY or loss == MSE or loss == HALF_SQUARED_ERROR
                   or loss == MAE)
    scales = _row_scales(n, k if per_element else 1, sample_weight)
    if Y.ndim == 1:
        if loss != SPARSE_CATEGORICAL_CROSSENTROPY:
            raise ValueError("loss_output_delta: 1-D integer targets need sparse categorical cross-entropy")
        if Y.shape[0] != n:
            raise ValueError("loss_output_delta: Y must have shape (n,)")
        for i in range(n):
            if Y[i] < 0 or Y[i] >= k:
                raise IndexError("loss_output_delta: class label out of range")
        if act == SOFTMAX:  # fused: (A - onehot(Y)) * scale
            for i in range(n):
                c = dt(scales[i])
                for j in range(k):
                    dZ_out[i, j] = A[i, j] * c
                dZ_out[i, Y[i]] = (A[i, Y[i]] - one) * c
            return
        for i in range(n):
            for j in range(k):
                dZ_out[i, j] = 0
            p = A[i, Y[i]]
            p = p if p > lo else lo
            p = p if p < hi else hi
            dZ_out[i, Y[i]] = -(one / p) * dt(scales[i])
    else:
        if Y.shape[0] != n or Y.shape[1] != k:
            raise ValueError("loss_output_delta: Y must have the shape of A")
        fused = ((act == SOFTMAX and loss == CATEGORICAL_CROSSENTROPY)
                 or (act == SIGMOID and loss == BINARY_CROSSENTROPY))
        if fused or loss == HALF_SQUARED_ERROR or loss == MSE:
            two = dt(2.0) if loss == MSE else one
            for i in range(n):
                c = dt(scales[i]) * two
                for j in range(k):
                    dZ_out[i, j] = (A[i, j] - Y[i, j]) * c
            if fused:
                return
        elif loss == CATEGORICAL_CROSSENTROPY:
            for i in range(n):
                c = dt(scales[i])
                for j in range(k):
                    p = A[i, j]
                    p = p if p > lo else lo
                    p = p if p < hi else hi
                    dZ_out[i, j] = -(Y[i, j] / p) * c
        elif loss == BINARY_CROSSENTROPY:
            for i in range(n):
                c = dt(scales[i])
                for j in range(k):
                    p = A[i, j]
                    p = p if p > lo else lo
                    p = p if p < hi else hi
                    dZ_out[i, j] = ((p - Y[i, j]) / (p * (one - p))) * c
        elif loss == MAE:
            zero = dt(0.0)
            for i in range(n):
                c = dt(scales[i])
                for j in range(k):
                    e = A[i, j] - Y[i, j]
                    s = one if e > zero else (-one if e < zero else e)  # np.sign, NaN stays NaN
                    dZ_out[i, j] = s * c
        else:
            raise ValueError("loss_output_delta: unknown loss code (or 2-D targets for sparse cross-entropy)")
    # General path: loss'(A) pushed through the activation, in place.
    if act == SOFTMAX:
        _softmax_backward_rows(A, dZ_out, dZ_out)
    else:
        _dact_flat(act, dt(alpha), Z.reshape(n * k), A.reshape(n * k), dZ_out.reshape(n * k))


# ------------------------------------------------------------------- minibatches
@_jit
def gather_rows(X, idx, out):
    """out[i] := X[idx[i]] (negative indices count from the end).     # IN: X, idx  OUT: out"""
    m = idx.shape[0]
    n = X.shape[0]
    if out.shape[0] != m:
        raise ValueError("gather_rows: out must have len(idx) rows")
    if X.ndim == 1:
        for i in range(m):
            r = idx[i]
            if r < 0:
                r += n
            if r < 0 or r >= n:
                raise IndexError("gather_rows: index out of range")
            out[i] = X[r]
    else:
        d = X.shape[1]
        if out.shape[1] != d:
            raise ValueError("gather_rows: out must have the row length of X")
        for i in range(m):
            r = idx[i]
            if r < 0:
                r += n
            if r < 0 or r >= n:
                raise IndexError("gather_rows: index out of range")
            for j in range(d):
                out[i, j] = X[r, j]


# -------------------------------------------------------------------- optimizers
@_jit
def _flat_views(param, grad):
    if grad.size != param.size:
        raise ValueError("optimizer update: param and grad must have one shape")
    return param.reshape(param.size), grad.reshape(grad.size)


@_jit
def _flat_slot(slot, size):
    if slot.size != size:
        raise ValueError("optimizer update: state arrays must have the shape of param")
    return slot.reshape(size)


@_jit
def sgd_update(param_inout, grad, lr, momentum, nesterov, velocity_inout):
    """p -= lr g; with momentum: v := mu v - lr g, p += v (Nesterov: p += mu v - lr g).

    # IN: grad  INOUT: param_inout, velocity_inout (None without momentum)
    """
    p, g = _flat_views(param_inout, grad)
    dt = param_inout.dtype.type
    lr_ = dt(lr)
    if velocity_inout is None or momentum == 0:
        if momentum != 0:
            raise ValueError("sgd_update: momentum > 0 needs velocity_inout")
        for i in range(p.size):
            p[i] -= lr_ * g[i]
        return
    v = _flat_slot(velocity_inout, p.size)
    mu = dt(momentum)
    if nesterov:
        for i in range(p.size):
            t = lr_ * g[i]
            vi = mu * v[i] - t
            v[i] = vi
            p[i] += mu * vi - t
    else:
        for i in range(p.size):
            vi = mu * v[i] - lr_ * g[i]
            v[i] = vi
            p[i] += vi


@_jit
def adagrad_update(param_inout, grad, lr, epsilon, accum_inout):
    """acc += g^2; p -= lr g / (sqrt(acc) + eps).     # IN: grad  INOUT: param_inout, accum_inout"""
    p, g = _flat_views(param_inout, grad)
    acc = _flat_slot(accum_inout, p.size)
    dt = param_inout.dtype.type
    lr_ = dt(lr)
    eps = dt(epsilon)
    for i in range(p.size):
        gi = g[i]
        a = acc[i] + gi * gi
        acc[i] = a
        p[i] -= lr_ * (gi / (np.sqrt(a) + eps))


@_jit
def rmsprop_update(param_inout, grad, lr, rho, epsilon, ms_inout):
    """ms := rho ms + (1 - rho) g^2; p -= lr g / (sqrt(ms) + eps).

    # IN: grad  INOUT: param_inout, ms_inout
    """
    p, g = _flat_views(param_inout, grad)
    ms = _flat_slot(ms_inout, p.size)
    dt = param_inout.dtype.type
    lr_ = dt(lr)
    eps = dt(epsilon)
    r = dt(rho)
    for i in range(p.size):
        gi = g[i]
        g2 = gi * gi
        s = r * (ms[i] - g2) + g2  # = rho ms + (1 - rho) g^2, the reference's rounding
        ms[i] = s
        p[i] -= lr_ * (gi / (np.sqrt(s) + eps))


@_jit
def adam_update(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout):
    """m := b1 m + (1 - b1) g; v := b2 v + (1 - b2) g^2; p -= lr_t m / (sqrt(v) + eps).

    ``lr_t = lr sqrt(1 - b2^step) / (1 - b1^step)``.
    # IN: grad  INOUT: param_inout, m_inout, v_inout
    """
    p, g = _flat_views(param_inout, grad)
    m = _flat_slot(m_inout, p.size)
    v = _flat_slot(v_inout, p.size)
    if step < 1:
        raise ValueError("adam_update: step is the 1-based update count")
    dt = param_inout.dtype.type
    lr_t = dt(lr * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step))
    b1 = dt(beta_1)
    b2 = dt(beta_2)
    eps = dt(epsilon)
    for i in range(p.size):
        gi = g[i]
        mi = b1 * (m[i] - gi) + gi
        vi = b2 * (v[i] - gi * gi) + gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_t * (mi / (np.sqrt(vi) + eps))


# ------------------------------------------------------------------------ warmup
def warmup(dtype=np.float32):
    """Compile (or load from the disk cache) every kernel for ``dtype``.

    Calls each kernel once on tiny arrays, with the argument patterns the
    model uses (with and without bias, input gradient, sample weights and
    momentum; 1-D and 2-D parameters; sparse and one-hot targets).  Returns
    the number of kernel calls made.
    """
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"warmup: dtype must be float32 or float64, got {dt}")
    n, n_in, n_out = 3, 4, 2
    X = np.ones((n, n_in), dt)
    W = np.full((n_in, n_out), 0.1, dt)
    b = np.zeros(n_out, dt)
    Z = np.empty((n, n_out), dt)
    A = np.empty((n, n_out), dt)
    dZ = np.empty((n, n_out), dt)
    dW = np.empty_like(W)
    db = np.empty_like(b)
    dX = np.empty_like(X)
    calls = 0
    for bias in (b, None):
        dense_forward(X, W, bias, RELU, 0.0, Z, A)
        calls += 1
    activation_backward(RELU, 0.0, Z, A, A, dZ)
    calls += 1
    for db_out in (db, None):
        for dX_out in (dX, None):
            dense_backward(X, W, dZ, 0.0, dW, db_out, dX_out)
            calls += 1
    pieces = 2
    argmax = np.empty((n, n_out // pieces), np.int64)
    Am = np.empty((n, n_out // pieces), dt)
    maxout_forward(Z, pieces, Am, argmax)
    maxout_backward(Am, argmax, pieces, dZ)
    calls += 2
    dense_forward(X, W, b, SOFTMAX, 0.0, Z, A)
    labels = np.zeros(n, np.int64)
    onehot = np.zeros((n, n_out), dt)
    onehot[:, 0] = 1
    weights = np.ones(n, dt)
    for Y, loss in ((labels, SPARSE_CATEGORICAL_CROSSENTROPY), (onehot, CATEGORICAL_CROSSENTROPY)):
        for w in (None, weights):
            loss_value(loss, A, Y, w)
            loss_output_delta(loss, SOFTMAX, 0.0, Z, A, Y, w, dZ)
            calls += 2
    gather_rows(X, labels, np.empty_like(X))
    gather_rows(labels, labels, np.empty_like(labels))
    gather_rows(weights, labels, np.empty_like(weights))
    calls += 3
    for p in (W.copy(), b.copy()):  # 2-D kernels and 1-D biases
        g = np.zeros_like(p)
        s1, s2 = np.zeros_like(p), np.zeros_like(p)
        sgd_update(p, g, 0.1, 0.0, False, None)
        sgd_update(p, g, 0.1, 0.9, True, s1)
        adagrad_update(p, g, 0.1, 1e-7, s1)
        rmsprop_update(p, g, 0.1, 0.9, 1e-7, s1)
        adam_update(p, g, 0.1, 0.9, 0.999, 1e-7, 1, s1, s2)
        calls += 5
    return calls


# The optional compiled training loop (``train_batches``) and forward pass
# (``predict_rows``) string the kernels above together; they live in their own
# modules and are exported from here.
from .numba_predict import predict_rows  # noqa: E402  (needs the kernels above)
from .numba_training import train_batches  # noqa: E402

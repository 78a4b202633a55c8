"""Activations and their derivatives (Numba).

The scalar helpers (``_sigmoid``, ``_elu``, ...) are inlined into the loops
over a layer's outputs, which run on flat 1-D views.  Elementwise kernels whose
output may alias an input (``dZ_out is dA``) have an in-place loop: LLVM's
runtime overlap check fails for an exact alias and would fall back to scalar
code.
"""
from ..codes import ELU, GELU, LEAKY_RELU, LINEAR, RELU, SIGMOID, SOFTMAX, SOFTPLUS, SWISH, TANH
from ._jit import _select, jit, jit_inline
from ._math import _dot, _exp, _expm1, _log1p_unit, _norm_cdf, _sum, _tanh

_INV_SQRT_2PI = 0.3989422804014327


@jit_inline
def _sigmoid(z):
    one = type(z)(1.0)
    return one / (one + _exp(-z))


@jit_inline
def _softplus(z):  # max(z, 0) + log1p(exp(-|z|))
    zero = type(z)(0.0)
    return _select(z > zero, z, zero) + _log1p_unit(_exp(-abs(z)))


@jit_inline
def _gelu(z):  # z Phi(z)
    return z * _norm_cdf(z)


@jit_inline
def _elu(z, alpha):
    zero = type(z)(0.0)
    # expm1 of min(z, 0), NaN kept (NaN > 0 is false, so NaN goes to expm1).
    return _select(z > zero, z, alpha * _expm1(_select(z > zero, zero, z)))


@jit_inline
def _d_gelu(z):  # Phi(z) + z phi(z)
    t = type(z)
    return _norm_cdf(z) + z * t(_INV_SQRT_2PI) * _exp(t(-0.5) * z * z)


@jit_inline
def _d_swish(z):  # s (1 + z (1 - s))
    one = type(z)(1.0)
    s = _sigmoid(z)
    return s * (one + z * (one - s))


@jit
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


@jit
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


@jit
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


@jit
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


@jit
def _softmax_backward_rows(A, dA, dZ):
    """dZ := A * (dA - rowsum(dA * A)); dZ may alias dA.     # OUT: dZ"""
    n, m = A.shape
    for i in range(n):
        dot = _dot(dA[i], A[i])
        for j in range(m):
            dZ[i, j] = A[i, j] * (dA[i, j] - dot)


@jit
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

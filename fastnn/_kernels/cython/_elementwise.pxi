# cython: language_level=3
# Generated from the formulas in fastnn/_kernels/codes.py by setup.py: edit codes.py, not this file.
"""The activations' row loops, included by ``_activations.pxd``: one tight loop per code,
chosen once per row, never a switch per element."""
from ._codes cimport ELU, GELU, LEAKY_RELU, LINEAR, RELU, SIGMOID, SOFTMAX, SOFTPLUS, SWISH, TANH


cdef inline void act_forward_row(int act, floating alpha, const floating *z, floating *a,
                                 Py_ssize_t m) noexcept nogil:
    """a := act(z) for one row    # IN z (m,)  OUT a (m,); a may be z."""
    cdef Py_ssize_t j
    cdef floating zj
    if m <= 0:
        return
    if act == SOFTMAX:
        softmax_row(z, a, m)
    elif act == LINEAR:  # z
        if a != z:
            for j in range(m):
                a[j] = z[j]
    elif act == SIGMOID:  # sigmoid(z)
        for j in range(m):
            zj = z[j]
            a[j] = f_sigmoid(zj)
    elif act == TANH:  # tanh(z)
        for j in range(m):
            zj = z[j]
            a[j] = f_tanh(zj)
    elif act == RELU:  # 0 if z <= 0 else z
        for j in range(m):
            zj = z[j]
            a[j] = ((<floating> 0.0) if (zj <= (<floating> 0.0)) else zj)
    elif act == LEAKY_RELU:  # z if z > 0 else alpha * z
        for j in range(m):
            zj = z[j]
            a[j] = (zj if (zj > (<floating> 0.0)) else (alpha * zj))
    elif act == ELU:  # z if z > 0 else alpha * expm1(0 if z > 0 else z)
        for j in range(m):
            zj = z[j]
            a[j] = (zj if (zj > (<floating> 0.0)) else (alpha * f_expm1(((<floating> 0.0) if (zj > (<floating> 0.0)) else zj))))
    elif act == SOFTPLUS:  # (z if z > 0 else 0) + log1p_unit(exp(-abs(z)))
        for j in range(m):
            zj = z[j]
            a[j] = ((zj if (zj > (<floating> 0.0)) else (<floating> 0.0)) + f_log1p_unit(f_exp((-f_abs(zj)))))
    elif act == GELU:  # z * norm_cdf(z)
        for j in range(m):
            zj = z[j]
            a[j] = (zj * f_norm_cdf(zj))
    elif act == SWISH:  # z * sigmoid(z)
        for j in range(m):
            zj = z[j]
            a[j] = (zj * f_sigmoid(zj))


cdef inline void act_backward_row(int act, floating alpha, const floating *z, const floating *a,
                                  const floating *da, floating *dz, Py_ssize_t m) noexcept nogil:
    """dz := da * act'(z) for one row    # IN z, a, da (m,)  OUT dz (m,); dz may be da."""
    cdef Py_ssize_t j
    cdef floating zj, aj
    if m <= 0:
        return
    if act == SOFTMAX:
        softmax_backward_row(a, da, dz, m)
    elif act == LINEAR:  # 1
        if dz != da:
            for j in range(m):
                dz[j] = da[j]
    elif act == SIGMOID:  # a * (1 - a)
        for j in range(m):
            aj = a[j]
            dz[j] = da[j] * (aj * ((<floating> 1.0) - aj))
    elif act == TANH:  # 1 - a * a
        for j in range(m):
            aj = a[j]
            dz[j] = da[j] * ((<floating> 1.0) - (aj * aj))
    elif act == RELU:  # 1 if z > 0 else 0
        for j in range(m):
            zj = z[j]
            dz[j] = da[j] * ((<floating> 1.0) if (zj > (<floating> 0.0)) else (<floating> 0.0))
    elif act == LEAKY_RELU:  # 1 if z > 0 else alpha
        for j in range(m):
            zj = z[j]
            dz[j] = da[j] * ((<floating> 1.0) if (zj > (<floating> 0.0)) else alpha)
    elif act == ELU:  # 1 if z > 0 else a + alpha
        for j in range(m):
            zj = z[j]
            aj = a[j]
            dz[j] = da[j] * ((<floating> 1.0) if (zj > (<floating> 0.0)) else (aj + alpha))
    elif act == SOFTPLUS:  # sigmoid(z)
        for j in range(m):
            zj = z[j]
            dz[j] = da[j] * f_sigmoid(zj)
    elif act == GELU:  # norm_cdf(z) + z * 0.3989422804014327 * exp(-0.5 * z * z)
        for j in range(m):
            zj = z[j]
            dz[j] = da[j] * (f_norm_cdf(zj) + ((zj * (<floating> 0.3989422804014327)) * f_exp((((-(<floating> 0.5)) * zj) * zj))))
    elif act == SWISH:  # sigmoid(z) * (1 + z * (1 - sigmoid(z)))
        for j in range(m):
            zj = z[j]
            dz[j] = da[j] * (f_sigmoid(zj) * ((<floating> 1.0) + (zj * ((<floating> 1.0) - f_sigmoid(zj)))))

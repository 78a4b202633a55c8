"""Activations and their derivatives (NumPy reference)."""
from __future__ import annotations

import numpy as np
from scipy.special import erfc

from ..codes import (
    ELU,
    GELU,
    LEAKY_RELU,
    LINEAR,
    RELU,
    SIGMOID,
    SOFTMAX,
    SOFTPLUS,
    SWISH,
    TANH,
)
from ._scratch import positive_mask as _positive_mask
from ._scratch import scratch as _scratch

_SQRT_HALF = np.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _sigmoid(Z, out):
    with np.errstate(over="ignore"):
        np.negative(Z, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    return out



def activation_forward(act, alpha, Z, A):
    if act == LINEAR:
        np.copyto(A, Z)
    elif act == SIGMOID:
        _sigmoid(Z, A)
    elif act == TANH:
        np.tanh(Z, out=A)
    elif act == RELU:
        np.maximum(Z, 0, out=A)
    elif act == LEAKY_RELU:
        np.multiply(Z, alpha, out=A)
        (np.maximum if alpha <= 1 else np.minimum)(Z, A, out=A)
    elif act == ELU:
        np.minimum(Z, 0, out=A)
        np.expm1(A, out=A)
        A *= alpha
        np.copyto(A, Z, where=_positive_mask(Z))
    elif act == SOFTMAX:
        np.subtract(Z, Z.max(axis=1, keepdims=True), out=A)
        np.exp(A, out=A)
        A /= A.sum(axis=1, keepdims=True)
    elif act == SOFTPLUS:  # log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
        np.abs(Z, out=A)
        np.negative(A, out=A)
        np.exp(A, out=A)
        np.log1p(A, out=A)
        A += np.maximum(Z, 0, out=_scratch(Z))
    elif act == GELU:  # z * Phi(z), Phi(z) = erfc(-z / sqrt 2) / 2 (1 + erf would cancel in the left tail)
        np.multiply(Z, -_SQRT_HALF, out=A)
        erfc(A, out=A)
        A *= Z
        A *= 0.5
    elif act == SWISH:
        _sigmoid(Z, A)
        A *= Z
    else:
        raise ValueError(f"unknown activation code {act}")



def activation_backward(act, alpha, Z, A, dA, dZ_out):
    if act == LINEAR:
        if dZ_out is not dA:
            np.copyto(dZ_out, dA)
    elif act == SIGMOID:  # a (1 - a)
        t = _scratch(A)
        np.subtract(1, A, out=t)
        t *= A
        np.multiply(dA, t, out=dZ_out)
    elif act == TANH:  # 1 - a^2
        t = _scratch(A)
        np.square(A, out=t)
        np.subtract(1, t, out=t)
        np.multiply(dA, t, out=dZ_out)
    elif act == RELU:
        np.multiply(dA, _positive_mask(Z), out=dZ_out)
    elif act == LEAKY_RELU:
        t = _scratch(Z)
        t.fill(alpha)
        np.copyto(t, 1, where=_positive_mask(Z))
        np.multiply(dA, t, out=dZ_out)
    elif act == ELU:  # 1 for z > 0, else a + alpha
        t = _scratch(A)
        np.add(A, alpha, out=t)
        np.copyto(t, 1, where=_positive_mask(Z))
        np.multiply(dA, t, out=dZ_out)
    elif act == SOFTMAX:  # a * (dA - <dA, a>) row-wise
        dot = np.einsum("ij,ij->i", dA, A)[:, None]
        np.subtract(dA, dot, out=dZ_out)
        dZ_out *= A
    elif act == SOFTPLUS:  # sigmoid(z)
        t = _sigmoid(Z, _scratch(Z))
        np.multiply(dA, t, out=dZ_out)
    elif act == GELU:  # Phi(z) + z * phi(z)
        t = _scratch(Z, 0)
        u = _scratch(Z, 1)
        np.square(Z, out=u)
        u *= -0.5
        np.exp(u, out=u)
        u *= _INV_SQRT_2PI
        u *= Z
        np.multiply(Z, -_SQRT_HALF, out=t)
        erfc(t, out=t)
        t *= 0.5
        t += u
        np.multiply(dA, t, out=dZ_out)
    elif act == SWISH:  # s + z s (1 - s) = s (1 + z (1 - s))
        s = _sigmoid(Z, _scratch(Z, 0))
        t = _scratch(Z, 1)
        np.subtract(1, s, out=t)
        t *= Z
        t += 1
        t *= s
        np.multiply(dA, t, out=dZ_out)
    else:
        raise ValueError(f"unknown activation code {act}")

"""Activation functions.

Each activation is a small object: a name, the kernel code the backends
branch on, and its parameter (``alpha``) where it has one.  Calling it on an
array evaluates it with the NumPy reference kernels, and ``derivative(z)``
gives the elementwise derivative, which makes them handy for teaching:

>>> import numpy as np, fastnn as fn
>>> fn.activations.get("relu")(np.array([-1.0, 2.0]))
array([0., 2.])
"""
from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._registry import Configurable, Registry


class Activation(Configurable):
    """Base class.  ``code`` is the kernel code, ``alpha`` the parameter (or 0)."""

    code: int = K.LINEAR
    alpha: float = 0.0

    def __call__(self, z):
        """Evaluate on ``z`` (any shape for elementwise activations; softmax is row-wise)."""
        from ._kernels import numpy as ref

        Z = _as_2d(z)
        A = np.empty_like(Z)
        ref.dense_forward(Z, np.eye(Z.shape[1], dtype=Z.dtype), None, self.code, self.alpha,
                          np.empty_like(Z), A)
        return A.reshape(np.shape(z))

    def derivative(self, z):
        """Elementwise derivative ``f'(z)`` (softmax: not elementwise, use the kernels)."""
        if self.code == K.SOFTMAX:
            raise ValueError("softmax has a Jacobian, not an elementwise derivative")
        from ._kernels import numpy as ref

        Z = _as_2d(z)
        A = _as_2d(self(z))
        out = np.empty_like(Z)
        ref.activation_backward(self.code, self.alpha, Z, A, np.ones_like(Z), out)
        return out.reshape(np.shape(z))


def _as_2d(z):
    Z = np.asarray(z, dtype=np.result_type(np.asarray(z).dtype, np.float32))
    return np.ascontiguousarray(Z.reshape(1, -1) if Z.ndim < 2 else Z.reshape(-1, Z.shape[-1]))


registry = Registry("activation", Activation)


@registry.register("linear", "identity")
class Linear(Activation):
    """f(z) = z."""

    code = K.LINEAR


@registry.register("sigmoid", "logistic")
class Sigmoid(Activation):
    """f(z) = 1 / (1 + e^-z); f' = f (1 - f)."""

    code = K.SIGMOID


@registry.register("tanh")
class Tanh(Activation):
    """f(z) = tanh z; f' = 1 - f^2."""

    code = K.TANH


@registry.register("relu")
class ReLU(Activation):
    """f(z) = max(z, 0); f'(0) is taken as 0."""

    code = K.RELU


@registry.register("leaky_relu")
class LeakyReLU(Activation):
    """f(z) = z for z > 0, alpha * z otherwise."""

    code = K.LEAKY_RELU
    _config_keys = ("alpha",)

    def __init__(self, alpha: float = 0.01):
        self.alpha = _check_alpha(alpha)


@registry.register("elu")
class ELU(Activation):
    """f(z) = z for z > 0, alpha * (e^z - 1) otherwise; f' = f + alpha for z <= 0."""

    code = K.ELU
    _config_keys = ("alpha",)

    def __init__(self, alpha: float = 1.0):
        self.alpha = _check_alpha(alpha)


@registry.register("softmax")
class Softmax(Activation):
    """Row-wise e^z_j / sum_k e^z_k, computed stably (the row maximum is subtracted)."""

    code = K.SOFTMAX


@registry.register("softplus")
class Softplus(Activation):
    """f(z) = log(1 + e^z); f' = sigmoid(z)."""

    code = K.SOFTPLUS


@registry.register("gelu")
class GELU(Activation):
    """f(z) = z * Phi(z) (exact: Phi(z) = erfc(-z / sqrt 2) / 2); f' = Phi(z) + z * phi(z)."""

    code = K.GELU


@registry.register("swish", "silu")
class Swish(Activation):
    """f(z) = z * sigmoid(z)."""

    code = K.SWISH


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha: expected a number, got {type(alpha).__name__} {alpha!r}")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha: expected a finite number >= 0, got {alpha}")
    return alpha


def get(identifier) -> Activation:
    """Resolve a name, an Activation or a config dict; ``None`` means linear."""
    if identifier is None:
        return Linear()
    return registry.get(identifier, "activation")


def serialize(activation: Activation) -> dict:
    return registry.serialize(activation)

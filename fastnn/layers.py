"""Layers: configuration and parameters; the math is in the kernels.

Parameters use the ``(n_in, n_out)`` orientation: a layer computes
``X @ W + b`` for ``X (n, n_in)``.  Per-batch buffers live in a workspace the
model allocates once per batch size (``layer.workspace(n)``).
"""
from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._kernels import aligned
from ._kernels.sparse import SparseBatch
from . import activations, initializers


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def affine_forward(kernels, X, W, b, act, alpha, Z_out, A_out):
    """``Z_out = X @ W + b``, ``A_out = act(Z_out)``: ``dense_forward``, or for a
    ``SparseBatch`` (sparse input to the first layer) ``sparse_dense_forward``."""
    if isinstance(X, SparseBatch):
        kernels.sparse_dense_forward(X.indptr, X.indices, X.data, X.rows, W, b, act, alpha, Z_out, A_out)
    else:
        kernels.dense_forward(X, W, b, act, alpha, Z_out, A_out)


def affine_backward(kernels, X, W, dZ, l2, dW_out, db_out, dX_out):
    """``dense_backward``, or ``sparse_dense_backward`` for a ``SparseBatch`` (which is
    only ever the first layer's input, so ``dX_out`` is None)."""
    if isinstance(X, SparseBatch):
        kernels.sparse_dense_backward(X.indptr, X.indices, X.data, X.rows, dZ, l2, W, dW_out, db_out)
    else:
        kernels.dense_backward(X, W, dZ, l2, dW_out, db_out, dX_out)


class Layer:
    """Base class for fastnn's trainable layers."""

    def __init__(self, units, input_dim=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros"):
        self.units = _positive_int("units", units)
        self.input_dim = None if input_dim is None else _positive_int("input_dim", input_dim)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias: expected a bool, got {type(use_bias).__name__} {use_bias!r}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.l2 = 0.0  # L2 penalty factor added to dW as l2 * W
        self.W = self.b = None
        self.dW = self.db = None

    # Width of the linear part (X @ W has this many columns).
    @property
    def linear_units(self) -> int:
        return self.units

    @property
    def built(self) -> bool:
        return self.W is not None

    def build(self, n_in: int, dtype, rng: np.random.Generator) -> None:
        """Create ``W (n_in, linear_units)`` and ``b (linear_units,)`` from the initializers."""
        if self.input_dim is not None and self.input_dim != n_in:
            raise ValueError(f"input_dim: layer expects {self.input_dim} inputs, got {n_in}")
        self.input_dim = n_in
        shape = (n_in, self.linear_units)
        try:
            self.W = aligned.copy(self.kernel_initializer(shape, dtype, rng, n_in, self.units))
        except MemoryError:
            raise ValueError(
                f"units: a {n_in} x {self.linear_units} weight matrix needs "
                f"{n_in * self.linear_units * np.dtype(dtype).itemsize:.3g} bytes, more than can be "
                f"allocated here") from None
        self.dW = aligned.zeros(self.W.shape, self.W.dtype)
        if self.use_bias:
            self.b = aligned.copy(
                self.bias_initializer((self.linear_units,), dtype, rng, n_in, self.units))
            self.db = aligned.zeros(self.b.shape, self.b.dtype)

    @property
    def params(self) -> list[np.ndarray]:
        return [self.W, self.b] if self.use_bias else [self.W]

    @property
    def grads(self) -> list[np.ndarray]:
        return [self.dW, self.db] if self.use_bias else [self.dW]

    def count_params(self) -> int:
        return sum(p.size for p in self.params) if self.built else 0

    def get_config(self) -> dict:
        return {
            "units": self.units,
            "input_dim": self.input_dim,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.registry.serialize(self.kernel_initializer),
            "bias_initializer": initializers.registry.serialize(self.bias_initializer),
        }

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.units})"


class Dense(Layer):
    """Fully connected layer: ``A = activation(X @ W + b)``.

    Parameters
    ----------
    units : int
        Number of outputs.
    activation : str, Activation or None
        ``None`` means linear.
    use_bias : bool
        Without bias the layer computes ``activation(X @ W)``.
    kernel_initializer, bias_initializer : str or Initializer
    input_dim : int, optional
        Number of inputs; needed on the first layer unless ``fit`` infers it.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_dim=None):
        super().__init__(units, input_dim, use_bias, kernel_initializer, bias_initializer)
        self.activation = activations.get(activation)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}

    class Workspace:
        def __init__(self, n, units, dtype):
            self.Z = aligned.empty((n, units), dtype)
            self.A = aligned.empty((n, units), dtype)
            self.dZ = aligned.empty((n, units), dtype)  # also receives dA from the next layer

        def rows(self, m):
            view = object.__new__(type(self))
            view.Z, view.A, view.dZ = self.Z[:m], self.A[:m], self.dZ[:m]
            return view

    def workspace(self, n, dtype):
        return Dense.Workspace(n, self.units, dtype)

    def forward(self, kernels, X, ws):
        a = self.activation
        affine_forward(kernels, X, self.W, self.b, a.code, a.alpha, ws.Z, ws.A)
        return ws.A

    def output_activation(self):
        return self.activation

    def loss_buffers(self, ws):
        """(Z, A, buffer for dLoss/dZ) of this layer used as the output layer."""
        return ws.Z, ws.A, ws.dZ

    def grad_input_buffer(self, ws):
        """Where the next layer writes dLoss/dA of this layer."""
        return ws.dZ

    def backward(self, kernels, X, ws, dX_out, from_output):
        if not from_output:
            a = self.activation
            kernels.activation_backward(a.code, a.alpha, ws.Z, ws.A, ws.dZ, ws.dZ)
        affine_backward(kernels, X, self.W, ws.dZ, self.l2, self.dW, self.db, dX_out)

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation.name!r})"


class Maxout(Layer):
    """Maxout layer: each of ``units`` outputs is the maximum of ``pieces``
    linear pieces, ``A[:, j] = max_p (X @ W + b)[:, j * pieces + p]``.

    ``W`` is ``(n_in, units * pieces)``.
    """

    def __init__(self, units, pieces=2, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_dim=None):
        super().__init__(units, input_dim, use_bias, kernel_initializer, bias_initializer)
        self.pieces = _positive_int("pieces", pieces)

    @property
    def linear_units(self):
        return self.units * self.pieces

    def get_config(self):
        return {**super().get_config(), "pieces": self.pieces}

    class Workspace:
        def __init__(self, n, units, pieces, dtype):
            self.L = aligned.empty((n, units * pieces), dtype)  # X @ W + b, the pieces
            self.A = aligned.empty((n, units), dtype)
            self.argmax = aligned.empty((n, units), np.int64)
            self.dA = aligned.empty((n, units), dtype)
            self.dZ = aligned.empty((n, units * pieces), dtype)

        def rows(self, m):
            view = object.__new__(type(self))
            for key, value in vars(self).items():
                setattr(view, key, value[:m])
            return view

    def workspace(self, n, dtype):
        return Maxout.Workspace(n, self.units, self.pieces, dtype)

    def forward(self, kernels, X, ws):
        affine_forward(kernels, X, self.W, self.b, K.LINEAR, 0.0, ws.L, ws.L)
        kernels.maxout_forward(ws.L, self.pieces, ws.A, ws.argmax)
        return ws.A

    def output_activation(self):
        return activations.Linear()

    def loss_buffers(self, ws):
        return ws.A, ws.A, ws.dA

    def grad_input_buffer(self, ws):
        return ws.dA

    def backward(self, kernels, X, ws, dX_out, from_output):
        kernels.maxout_backward(ws.dA, ws.argmax, self.pieces, ws.dZ)
        affine_backward(kernels, X, self.W, ws.dZ, self.l2, self.dW, self.db, dX_out)

    def __repr__(self):
        return f"Maxout({self.units}, pieces={self.pieces})"


LAYERS = {"Dense": Dense, "Maxout": Maxout}


def deserialize(config: dict) -> Layer:
    name = config.get("class_name")
    if name not in LAYERS:
        raise ValueError(f"layer: unknown layer class {name!r}; expected one of {sorted(LAYERS)}")
    return LAYERS[name].from_config(config.get("config", {}))

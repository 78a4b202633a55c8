"""Losses.

Every loss is the mean over the batch of a per-sample loss (a weighted mean
with ``sample_weight``).  Cross-entropies sum over classes; binary
cross-entropy, MSE, ½·squared error and MAE average over the outputs.
The matched output/loss pairs softmax + (sparse) categorical cross-entropy and
sigmoid + binary cross-entropy are fused by the kernels into the stable
gradient ``a - y`` with respect to the output layer's pre-activation.
"""
from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._registry import Configurable, Registry


class Loss(Configurable):
    """Base class.

    Attributes
    ----------
    code : int
        Kernel code.
    probabilistic : bool
        The loss reads its inputs as probabilities: the output layer must be
        sigmoid or softmax.
    sparse : bool
        Targets are integer class labels ``(n,)`` rather than ``(n, k)``.
    """

    code: int
    probabilistic = False
    sparse = False

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """Loss value of predictions ``y_pred (n, k)`` against ``y_true``."""
        from ._kernels import numpy as ref

        A = np.ascontiguousarray(y_pred, dtype=np.result_type(np.asarray(y_pred).dtype, np.float32))
        if A.ndim == 1:
            A = A[:, None]
        Y = np.ascontiguousarray(y_true, dtype=np.int64 if self.sparse else A.dtype)
        if not self.sparse and Y.ndim == 1:
            Y = Y[:, None]
        w = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=A.dtype)
        return ref.loss_value(self.code, A, Y, w)

    def check_output_layer(self, activation, units: int) -> None:
        """Raise ValueError if this loss cannot train an output layer of that kind."""
        if self.probabilistic and activation.code not in (K.SIGMOID, K.SOFTMAX):
            raise ValueError(
                f"loss: {self.name} needs probabilities from the output layer "
                f"(activation 'sigmoid' or 'softmax'), got activation {activation.name!r}"
            )
        if self.code in (K.CATEGORICAL_CROSSENTROPY, K.SPARSE_CATEGORICAL_CROSSENTROPY) and units < 2:
            raise ValueError(
                f"loss: {self.name} needs an output layer with at least 2 units (one per class), "
                f"got {units}; for two classes with one unit use 'binary_crossentropy'"
            )
        if activation.code == K.SOFTMAX and units < 2:
            raise ValueError(
                "loss: a 1-unit softmax output always predicts 1.0; use 'sigmoid' for one unit"
            )


registry = Registry("loss", Loss)


@registry.register("binary_crossentropy", "bce", "log_loss")
class BinaryCrossentropy(Loss):
    """-mean_j [y log a + (1 - y) log(1 - a)], logs clipped to [eps, 1 - eps]."""

    code = K.BINARY_CROSSENTROPY
    probabilistic = True


@registry.register("categorical_crossentropy", "cce")
class CategoricalCrossentropy(Loss):
    """-sum_j y_j log a_j with one-hot targets ``(n, k)``."""

    code = K.CATEGORICAL_CROSSENTROPY
    probabilistic = True


@registry.register("sparse_categorical_crossentropy", "scce")
class SparseCategoricalCrossentropy(Loss):
    """-log a_y with integer class labels ``(n,)`` in ``[0, k)``."""

    code = K.SPARSE_CATEGORICAL_CROSSENTROPY
    probabilistic = True
    sparse = True


@registry.register("mse", "mean_squared_error")
class MeanSquaredError(Loss):
    """mean_j (a - y)^2."""

    code = K.MSE


@registry.register("half_squared_error", "half_mse")
class HalfSquaredError(Loss):
    """½ · mean_j (a - y)^2: the textbook E = ½(O - t)^2, whose gradient is a - y."""

    code = K.HALF_SQUARED_ERROR


@registry.register("mae", "mean_absolute_error")
class MeanAbsoluteError(Loss):
    """mean_j |a - y|."""

    code = K.MAE


def get(identifier) -> Loss:
    if identifier is None:
        raise ValueError(f"loss: a loss is required; expected one of {registry.names()}")
    return registry.get(identifier, "loss")

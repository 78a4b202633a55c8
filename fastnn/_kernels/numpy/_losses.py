"""Loss values and the output layer's gradient (NumPy reference)."""
from __future__ import annotations

import numpy as np

from ..codes import (
    BINARY_CROSSENTROPY,
    CATEGORICAL_CROSSENTROPY,
    HALF_SQUARED_ERROR,
    MAE,
    MSE,
    SIGMOID,
    SOFTMAX,
    SPARSE_CATEGORICAL_CROSSENTROPY,
)
from ._activations import activation_backward


def _eps(dtype):
    return np.finfo(dtype).eps


def _row_weights(n, sample_weight, dtype):
    """Per-row factor ``w_i / sum(w)`` (``1 / n`` without weights), shape (n, 1) or scalar;
    zeros where the weights add up to zero (such a batch has no gradient)."""
    if sample_weight is None:
        return dtype.type(1.0 / n)
    total = sample_weight.sum(dtype=np.float64)  # float64, as the compiled kernels: large weights stay finite
    if total == 0:
        return np.zeros((n, 1), dtype)
    return (sample_weight.astype(np.float64) / total).astype(dtype)[:, None]


def _per_sample_loss(loss, A, Y):
    eps = _eps(A.dtype)
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        p = A[np.arange(A.shape[0]), Y]
        return -np.log(np.clip(p, eps, 1 - eps))
    if loss == CATEGORICAL_CROSSENTROPY:
        return -(Y * np.log(np.clip(A, eps, 1 - eps))).sum(axis=1)
    if loss == BINARY_CROSSENTROPY:
        Ac = np.clip(A, eps, 1 - eps)
        return -(Y * np.log(Ac) + (1 - Y) * np.log1p(-Ac)).mean(axis=1)
    if loss == MSE:
        return np.square(A - Y).mean(axis=1)
    if loss == HALF_SQUARED_ERROR:
        return 0.5 * np.square(A - Y).mean(axis=1)
    if loss == MAE:
        return np.abs(A - Y).mean(axis=1)
    raise ValueError(f"unknown loss code {loss}")


def loss_value(loss, A, Y, sample_weight):
    per_sample = _per_sample_loss(loss, A, Y)
    if sample_weight is None:
        return float(per_sample.mean(dtype=np.float64))
    total = sample_weight.sum(dtype=np.float64)
    if total == 0:  # no weight, no loss (and no gradient, see _row_weights)
        return 0.0
    return float(np.dot(per_sample.astype(np.float64), sample_weight.astype(np.float64)) / total)


def _fused(loss, act):
    return (act == SOFTMAX and loss in (CATEGORICAL_CROSSENTROPY, SPARSE_CATEGORICAL_CROSSENTROPY)) or (
        act == SIGMOID and loss == BINARY_CROSSENTROPY
    )


def loss_output_delta(loss, act, alpha, Z, A, Y, sample_weight, dZ_out):
    n, k = A.shape
    scale = _row_weights(n, sample_weight, A.dtype)
    if loss in (BINARY_CROSSENTROPY, MSE, HALF_SQUARED_ERROR, MAE):
        scale = scale / k  # these average over the outputs too
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        rows = np.arange(n)
        if _fused(loss, act):
            np.copyto(dZ_out, A)
            dZ_out[rows, Y] -= 1
            dZ_out *= scale
            return
        eps = _eps(A.dtype)
        dZ_out.fill(0)
        dZ_out[rows, Y] = -1 / np.clip(A[rows, Y], eps, 1 - eps)
        dZ_out *= scale
    elif _fused(loss, act) and loss == CATEGORICAL_CROSSENTROPY:
        # d/dz of -sum_j y_j log softmax_j(z) is a * sum_j y_j - y: a - y for rows that sum to 1
        np.multiply(A, Y.sum(axis=1, keepdims=True), out=dZ_out)
        dZ_out -= Y
        dZ_out *= scale
        return
    elif _fused(loss, act):
        np.subtract(A, Y, out=dZ_out)
        dZ_out *= scale
        return
    elif loss == CATEGORICAL_CROSSENTROPY:
        eps = _eps(A.dtype)
        np.divide(Y, np.clip(A, eps, 1 - eps), out=dZ_out)
        dZ_out *= -scale
    elif loss == BINARY_CROSSENTROPY:
        eps = _eps(A.dtype)
        Ac = np.clip(A, eps, 1 - eps)
        np.divide(Ac - Y, Ac * (1 - Ac), out=dZ_out)
        dZ_out *= scale
    elif loss == MSE:
        np.subtract(A, Y, out=dZ_out)
        dZ_out *= 2 * scale
    elif loss == HALF_SQUARED_ERROR:
        np.subtract(A, Y, out=dZ_out)
        dZ_out *= scale
    elif loss == MAE:
        np.subtract(A, Y, out=dZ_out)
        np.sign(dZ_out, out=dZ_out)
        dZ_out *= scale
    else:
        raise ValueError(f"unknown loss code {loss}")
    activation_backward(act, alpha, Z, A, dZ_out, dZ_out)


"""Metrics reported by ``fit`` and ``evaluate``.

A metric is a callable ``metric(y_true, y_pred) -> float`` on one batch;
``fit`` averages it over the epoch's batches weighted by their size.
Accuracy follows Keras's ``"accuracy"``: one output unit is a binary
decision at 0.5; several are categorical accuracy, the argmax of the outputs
against the class label ``(n,)`` or against the argmax of the targets
``(n, k)`` (one-hot, label-smoothed or any other scores), so every batch,
every batch size and every training path give the same value.
"""
from __future__ import annotations

import numpy as np

from ._registry import Configurable, Registry


class Metric(Configurable):
    # True for metrics that compare outputs with targets of the same shape, which
    # class labels (sparse categorical cross-entropy) are not.
    compares_values = False

    def __call__(self, y_true, y_pred) -> float:
        raise NotImplementedError


registry = Registry("metric", Metric)


@registry.register("accuracy", "acc")
class Accuracy(Metric):
    """Fraction of correct predictions: binary at threshold 0.5 for one output,
    categorical (argmax of outputs vs label, or vs argmax of targets) for several."""

    def __call__(self, y_true, y_pred) -> float:
        y_pred = np.asarray(y_pred)
        y_true = np.asarray(y_true)
        if y_pred.ndim == 1 or y_pred.shape[1] == 1:
            pred = y_pred.reshape(-1) > 0.5
            return float(np.mean(pred == (y_true.reshape(-1) > 0.5)))
        if y_true.ndim == 2 and y_true.shape[1] > 1:
            y_true = y_true.argmax(axis=1)
        return float(np.mean(y_pred.argmax(axis=1) == y_true.reshape(-1)))


@registry.register("mse", "mean_squared_error")
class MeanSquaredError(Metric):
    compares_values = True

    def __call__(self, y_true, y_pred) -> float:
        return float(np.mean(np.square(np.asarray(y_pred) - _as_2d(y_true, y_pred))))


@registry.register("mae", "mean_absolute_error")
class MeanAbsoluteError(Metric):
    compares_values = True

    def __call__(self, y_true, y_pred) -> float:
        return float(np.mean(np.abs(np.asarray(y_pred) - _as_2d(y_true, y_pred))))


def _as_2d(y_true, y_pred):
    y_true = np.asarray(y_true)
    if y_true.size != np.size(y_pred):
        raise ValueError(f"y_true: expected {np.size(y_pred)} values to compare with the outputs "
                         f"{np.shape(y_pred)}, got shape {y_true.shape}")
    return y_true.reshape(np.shape(y_pred))


def get(identifier) -> Metric:
    return registry.get(identifier, "metrics")

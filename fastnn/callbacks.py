"""Callbacks: hooks into ``Sequential.fit``.

A callback sees ``on_train_begin``, ``on_epoch_begin(epoch)``,
``on_epoch_end(epoch, logs)``, ``on_train_end`` and, as in Keras,
``on_train_batch_begin(batch, logs)`` / ``on_train_batch_end(batch, logs)``,
which by default call their aliases ``on_batch_begin`` / ``on_batch_end``
(per-batch hooks cost time, so ``fit`` calls them, on its per-batch path,
only when a callback overrides one of the four).  ``self.params`` is fit's
``{"epochs", "steps", "verbose", "batch_size", "samples", "first_layer"}``.
Setting ``self.model.stop_training = True`` ends training after the current
epoch (after the current batch, from a batch hook).

``on_epoch_end``'s ``logs`` hold the epoch's ``loss`` and metrics, the ``val_*``
values when there is validation data, and ``lr``; ``on_train_end`` gets the last
epoch's.  ``on_train_batch_end``'s hold the epoch's running ``loss`` and metrics
up to that batch (as Keras's) and the batch's ``size``.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np


class Callback:
    """Base class; every hook is a no-op."""

    model = None
    params = None

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...


BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


def overrides(callback: Callback, hook: str) -> bool:
    """True if ``callback`` defines its own ``hook``."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


def wants_batches(callback: Callback) -> bool:
    """True if ``callback`` overrides a per-batch hook."""
    return any(overrides(callback, hook) for hook in BATCH_HOOKS)


class History(Callback):
    """Records ``logs`` of every epoch: ``history.history["loss"]`` is a list.

    ``fit`` always adds one and returns it.
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _number(name, value, low, above=False):
    """``value`` as a float, checked: a real number (not a bool), finite, ``>= low``
    (``> low`` with ``above``); the error names the argument."""
    bad = isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
    if bad or not np.isfinite(value) or (value <= low if above else value < low):
        raise ValueError(f"{name}: expected a number {'>' if above else '>='} {low}, got {value!r}")
    return float(value)


def _count(name, value):
    """``value`` as an int, checked: a whole number >= 0 (2.0 is 2); the error names the argument."""
    number = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
    if not (number and np.isfinite(value) and value >= 0 and value == int(value)):
        raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    return int(value)


class _Monitor(Callback):
    """Shared logic for callbacks that watch one logged quantity."""

    def __init__(self, monitor, mode, min_delta, delta_name="min_delta"):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected the name of a logged quantity, got {monitor!r}")
        min_delta = _number(delta_name, min_delta, 0)
        self.monitor = monitor
        self.min_delta = float(min_delta)
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("score")) else "min"
        self.mode = mode
        self._warned = False

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0

    def _current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None and not self._warned:
            warnings.warn(
                f"{type(self).__name__}: monitor {self.monitor!r} is not in the logs "
                f"(available: {sorted(logs or {})}); it has no effect",
                stacklevel=3,
            )
            self._warned = True
        return value

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _check_verbose(verbose):
    if verbose not in (0, 1):  # True and False included, as in Keras
        raise ValueError(f"verbose: expected 0 or 1, got {verbose!r}")
    return int(verbose)


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs; optionally restore the weights of the best epoch.
    Epochs before ``start_from_epoch`` are not watched (a warm-up); ``verbose=1``
    prints when it stops and when it restores weights, as Keras's."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, baseline=None, verbose=0, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        patience = _count("patience", patience)
        start_from_epoch = _count("start_from_epoch", start_from_epoch)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.baseline = baseline
        self.verbose = _check_verbose(verbose)
        self.start_from_epoch = int(start_from_epoch)
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self._reset()
        if self.baseline is not None:
            self.best = self.baseline
        self.best_weights = None
        self.best_epoch = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = [w.copy() for w in self.model.get_weights()]
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving
    for ``patience`` epochs (not below ``min_lr``; wait ``cooldown`` epochs after)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, mode="auto",
                 cooldown=0, min_lr=0.0, verbose=0):
        super().__init__(monitor, mode, min_delta)
        if not 0 < _number("factor", factor, 0, above=True) < 1:
            raise ValueError(f"factor: expected a value in (0, 1), got {factor}")
        self.factor, self.patience = float(factor), _count("patience", patience)
        self.cooldown, self.min_lr = _count("cooldown", cooldown), _number("min_lr", min_lr, 0)
        self.verbose = _check_verbose(verbose)  # 1: print each reduction, as Keras's

    def on_train_begin(self, logs=None):
        self._reset()
        self.cooldown_counter = 0
        if not isinstance(self.model.optimizer.learning_rate, float):
            raise TypeError(
                "ReduceLROnPlateau: the optimizer follows a learning-rate schedule; "
                "use a constant learning_rate with this callback"
            )

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                opt = self.model.optimizer
                new_lr = max(opt.learning_rate * self.factor, self.min_lr)
                if new_lr < opt.learning_rate:
                    opt.learning_rate = new_lr
                    self.cooldown_counter = self.cooldown
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                self.wait = 0


class TerminateOnNaN(Callback):
    """Stop at once when the batch loss becomes NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            warnings.warn(f"TerminateOnNaN: loss is {loss} at batch {batch}; stopping", stacklevel=2)
            self.model.stop_training = True


class GradientNormStopping(Callback):
    """Stop when the norm of the whole gradient, measured on the epoch's last
    batch (the exact gradient in full-batch GD), falls below ``tol``."""

    requires_grad_norm = True

    def __init__(self, tol=1e-4):
        self.tol = _number("tol", tol, 0, above=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs["grad_norm"] < self.tol:
            self.model.stop_training = True


class WeightChangeStopping(Callback):
    """Stop when the weights moved less than ``tol`` (Euclidean norm over all
    parameters) during an epoch."""

    def __init__(self, tol=1e-6):
        self.tol = _number("tol", tol, 0, above=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._before = [w.copy() for w in self.model.get_weights()]

    def on_epoch_end(self, epoch, logs=None):
        change = math.sqrt(sum(float(np.sum((w - b) ** 2, dtype=np.float64))
                               for w, b in zip(self.model.get_weights(), self._before)))
        if logs is not None:
            logs["weight_change"] = change
        if change < self.tol:
            self.model.stop_training = True


class LossPlateauStopping(_Monitor):
    """Stop when the training loss has not decreased by more than ``tol``
    for ``patience`` consecutive epochs."""

    def __init__(self, tol=1e-4, patience=1, monitor="loss"):
        super().__init__(monitor, "min", tol, delta_name="tol")
        self.tol, self.patience = float(tol), _count("patience", patience)

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if value is None:
            return
        if self._improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True


class OutputRecorder(Callback):
    """Record the network's outputs for fixed inputs after every epoch.

    Parameters
    ----------
    X : array-like, (n_inputs, n_features)
        The inputs to watch (a few rows; each epoch runs ``predict`` on them).
    include_initial : bool
        Also record the outputs before the first epoch (as epoch 0).

    Attributes
    ----------
    epochs : list of int
        Epoch numbers, counted from 1 (0: before training).
    outputs : list of ndarray, (n_inputs, n_outputs)
        ``model.predict(X)`` at each of ``epochs``.

    Examples
    --------
    >>> recorder = fastnn.callbacks.OutputRecorder(X[:4])          # doctest: +SKIP
    >>> model.fit(X, y, epochs=20, callbacks=[recorder])           # doctest: +SKIP
    >>> fastnn.plot.plot_outputs_over_epochs(recorder)             # doctest: +SKIP
    """

    def __init__(self, X, include_initial=True):
        X = np.asarray(X)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X: expected (n_inputs, n_features) with at least one row, got shape {X.shape}")
        self.X = X
        self.include_initial = include_initial
        self.epochs: list[int] = []
        self.outputs: list[np.ndarray] = []

    def _record(self, epoch):
        self.epochs.append(epoch)
        self.outputs.append(np.array(self.model.predict(self.X.astype(self.model.dtype, copy=False))))

    def on_train_begin(self, logs=None):
        if self.include_initial and not self.epochs:
            self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1)

    def as_array(self):
        """The recorded outputs stacked: ``(n_epochs, n_inputs, n_outputs)``."""
        if not self.outputs:
            return np.empty((0, self.X.shape[0], 0))
        return np.stack(self.outputs)


class ProgressLogger(Callback):
    """``verbose=1``: a tqdm bar per epoch; ``verbose=2``: one line per epoch."""

    def __init__(self, verbose=1, epochs=1, steps=1):
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        if self.verbose == 1:
            from tqdm.auto import tqdm  # imported on first use: keeps `import fastnn` fast

            self._bar = tqdm(total=self.steps, desc=f"Epoch {epoch + 1}/{self.epochs}",
                             unit="batch", leave=True, dynamic_ncols=True)

    def on_batch_end(self, batch, logs=None):
        self.advance(1, logs["loss"])

    def advance(self, steps, loss):
        """Move the bar ``steps`` batches on, showing the running ``loss``."""
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self._bar.update(steps)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        text = " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items() if k not in ("lr",))
        if self._bar is not None:
            self._bar.set_postfix_str(f"{text} - {seconds:.2f}s", refresh=True)
            self._bar.close()
            self._bar = None
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {text}", flush=True)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

"""The epoch loops behind ``Sequential.fit``.

``KernelLoop`` is the general path: a Python loop over minibatches calling one
kernel per layer operation; it serves every layer type and every callback.
``CompiledLoop`` hands whole runs of minibatches to the backend's
``train_batches`` kernel (no Python between steps); ``fit`` uses it when the
backend has that kernel, every layer is ``Dense``, and no callback needs
per-batch control.  Both allocate their buffers once, in ``__init__``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from . import metrics as metrics_mod
from .callbacks import ProgressLogger
from .losses import SparseCategoricalCrossentropy, CategoricalCrossentropy

_COMPILED_METRICS = {metrics_mod.Accuracy: 1, metrics_mod.MeanSquaredError: 2, metrics_mod.MeanAbsoluteError: 3}


class _Loop:
    """Shared set-up: batch buffers, shuffling and divergence roll-back."""

    def __init__(self, model, X, y, w, batch_size, shuffle, rng):
        self.model, self.X, self.y, self.w = model, X, y, w
        self.bs, self.shuffle, self.rng = batch_size, shuffle, rng
        self.n = X.shape[0]
        self.steps = math.ceil(self.n / batch_size)
        self.perm = np.arange(self.n, dtype=np.int64)
        self.ws = model._workspace(batch_size)
        # Parameters and optimizer state at the start of the epoch, to roll back to
        # if the loss diverges (a model is never left holding NaNs).
        self.state = model._params + model.optimizer.get_state()
        self.snapshot = [np.empty_like(p) for p in self.state]

    def _begin_epoch(self):
        for s, p in zip(self.snapshot, self.state):
            np.copyto(s, p)
        self._iterations = self.model.optimizer.iterations
        if self.shuffle and self.bs < self.n:
            self.rng.shuffle(self.perm)

    def _diverged(self, batch_loss, step):
        for s, p in zip(self.snapshot, self.state):
            np.copyto(p, s)
        self.model.optimizer.iterations = self._iterations
        warnings.warn(
            f"fit: the loss became {batch_loss} at batch {step}; training stopped and the "
            f"weights were restored to the start of this epoch (try a lower learning rate)",
            RuntimeWarning, stacklevel=4,
        )
        self.model.stop_training = True

    def _grad_norm(self):
        return math.sqrt(sum(float(np.vdot(g, g)) for g in self.model._grads))


class KernelLoop(_Loop):
    """One Python-level step per minibatch; any layers, any callbacks."""

    def __init__(self, model, X, y, w, batch_size, shuffle, rng):
        super().__init__(model, X, y, w, batch_size, shuffle, rng)
        self.gather = shuffle and batch_size < self.n
        if self.gather:
            self.Xb = np.empty((batch_size, X.shape[1]), X.dtype)
            self.yb = np.empty((batch_size,) + y.shape[1:], y.dtype)
            self.wb = None if w is None else np.empty(batch_size, w.dtype)

    def run_epoch(self, batch_hooks, want_grad_norm):
        """One pass over the data; the epoch's logs, or None if the loss diverged."""
        model, K, opt = self.model, self.model._kernels, self.model.optimizer
        self._begin_epoch()
        totals = dict.fromkeys(["loss"] + [name for name, _ in model.metrics], 0.0)
        seen = 0
        for step, start in enumerate(range(0, self.n, self.bs)):
            stop = min(start + self.bs, self.n)
            m = stop - start
            ws = self.ws if m == self.bs else [w.rows(m) for w in self.ws]
            if self.gather:
                idx = self.perm[start:stop]
                Xb, yb = self.Xb[:m], self.yb[:m]
                K.gather_rows(self.X, idx, Xb)
                K.gather_rows(self.y, idx, yb)
                wb = None
                if self.w is not None:
                    wb = self.wb[:m]
                    K.gather_rows(self.w, idx, wb)
            else:
                Xb, yb = self.X[start:stop], self.y[start:stop]
                wb = None if self.w is None else self.w[start:stop]

            batch_loss = model._loss_and_gradients(Xb, yb, wb, ws, metric_totals=totals)
            if not math.isfinite(batch_loss):
                self._diverged(batch_loss, step)
                return None
            totals["loss"] += m * batch_loss
            seen += m
            if want_grad_norm and stop == self.n:
                grad_norm = self._grad_norm()
            opt.apply(K, model._params, model._grads)

            if batch_hooks:
                batch_logs = {"loss": batch_loss, "size": m}
                for cb in batch_hooks:
                    cb.on_batch_end(step, batch_logs)
                if model.stop_training:
                    break
        logs = {name: total / max(seen, 1) for name, total in totals.items()}
        if want_grad_norm:
            logs["grad_norm"] = grad_norm if stop == self.n else math.nan
        return logs


class CompiledLoop(_Loop):
    """Runs of minibatches inside the backend's ``train_batches`` kernel."""

    @staticmethod
    def supports(model, batch_hooks, y) -> bool:
        if not hasattr(model._kernels, "train_batches"):
            return False
        if not model._dense_stack:
            return False
        if any(not isinstance(cb, ProgressLogger) for cb in batch_hooks):
            return False
        for _, metric in model.metrics:
            if type(metric) not in _COMPILED_METRICS:
                return False
            # accuracy of several independent outputs (multilabel) is per label: not compiled
            if isinstance(metric, metrics_mod.Accuracy) and y.ndim == 2 and y.shape[1] > 1 \
                    and not isinstance(model.loss, (SparseCategoricalCrossentropy, CategoricalCrossentropy)):
                return False
        return True

    def __init__(self, model, X, y, w, batch_size, shuffle, rng):
        super().__init__(model, X, y, w, batch_size, shuffle, rng)
        dtype = X.dtype
        layers = model.layers
        empty = np.empty(0, dtype)
        self.Xb = np.empty((batch_size, X.shape[1]), dtype)
        self.Yb = np.empty((batch_size,) + y.shape[1:], y.dtype)
        self.SWb = None if w is None else np.empty(batch_size, dtype)
        self.Ws = tuple(l.W for l in layers)
        self.bs_ = tuple(l.b if l.use_bias else empty for l in layers)
        self.dWs = tuple(l.dW for l in layers)
        self.dbs = tuple(l.db if l.use_bias else empty for l in layers)
        self.acts = np.array([l.activation.code for l in layers], np.int64)
        self.alphas = np.array([l.activation.alpha for l in layers], np.float64)
        self.l2s = np.array([l.l2 for l in layers], np.float64)
        self.Zs = tuple(w.Z for w in self.ws)
        self.As = tuple(w.A for w in self.ws)
        self.dZs = tuple(w.dZ for w in self.ws)
        opt = model.optimizer
        self.opt_code, self.hyper = opt.kernel_spec()
        slots = iter(opt._slots)
        S1W, S1b, S2W, S2b = [], [], [], []
        for layer in layers:
            for use, first, second in ((True, S1W, S2W), (layer.use_bias, S1b, S2b)):
                if not use:
                    first.append(empty)
                    second.append(empty)
                    continue
                s = next(slots)
                first.append(s[0] if len(s) > 0 else empty)
                second.append(s[1] if len(s) > 1 else empty)
        self.slots = tuple(S1W), tuple(S1b), tuple(S2W), tuple(S2b)
        self.lrs = np.empty(self.steps, np.float64)
        self.out = np.zeros(4, np.float64)

    def run_epoch(self, batch_hooks, want_grad_norm):
        model, K, opt = self.model, self.model._kernels, self.model.optimizer
        self._begin_epoch()
        progress = batch_hooks[0] if batch_hooks else None
        chunk = self.steps if progress is None else max(1, self.steps // 50)
        out = self.out
        out.fill(0.0)
        seen = 0
        for first in range(0, self.steps, chunk):
            count = min(chunk, self.steps - first)
            lrs = opt.learning_rates(self.lrs[:count])
            done = K.train_batches(
                self.X, self.y, self.w, self.perm, self.bs, first, count,
                self.Ws, self.bs_, self.dWs, self.dbs, self.acts, self.alphas, self.l2s,
                self.Zs, self.As, self.dZs, self.Xb, self.Yb, self.SWb,
                model.loss.code, self.opt_code, self.hyper, lrs, opt.iterations, *self.slots, out,
            )
            opt.iterations += done
            seen = min((first + done) * self.bs, self.n)
            if done < count:
                self._diverged(math.nan, first + done)
                return None
            if progress is not None:
                progress.advance(count, out[0] / seen)
        logs = {"loss": float(out[0] / seen)}
        for name, metric in model.metrics:
            logs[name] = float(out[_COMPILED_METRICS[type(metric)]] / seen)
        if want_grad_norm:
            logs["grad_norm"] = self._grad_norm()
        return logs

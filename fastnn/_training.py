"""The epoch loops behind ``Sequential.fit``.

Both loops run the one training step of ``fastnn._kernels.step`` over a
``TrainingPlan`` built once per ``fit`` (``make_plan``).  ``KernelLoop`` is the
general path: a Python loop over minibatches calling that step with the
model's kernels; it serves every layer type and every callback.
``CompiledLoop`` hands whole runs of minibatches to the backend's
``train_batches`` kernel (no Python between steps); ``fit`` uses it when the
backend has that kernel, every layer is ``Dense``, and no callback needs
per-batch control.  Both allocate their buffers once, in ``__init__``.
``one_fit_at_a_time`` keeps a second ``fit`` off a model (or estimator) whose
``fit`` is running.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import warnings
import weakref

import numpy as np

from . import metrics as metrics_mod
from ._kernels import aligned
from ._kernels import step as reference
from ._kernels.plan import TrainingPlan
from ._kernels.sparse import SparseInput
from ._thread_policy import ThreadChoice
from . import callbacks as cbks

_COMPILED_METRICS = {metrics_mod.Accuracy: 1, metrics_mod.MeanSquaredError: 2, metrics_mod.MeanAbsoluteError: 3}


class DeferredInterrupt:
    """Ctrl+C during ``fit`` stops training at the next safe point.

    While active (in the main thread, when SIGINT has Python's default handler),
    a first Ctrl+C only sets ``requested``; the loops call ``check()`` between
    batches, between compiled runs of batches and between the validation pass's
    chunks -- where weights, optimizer state, ``iterations`` and History agree --
    and it raises KeyboardInterrupt there.  A request that no ``check()`` saw (one during the last batches or the
    last epoch's callbacks) raises on leaving the ``with`` block, unless an
    exception is already on its way.  A second Ctrl+C interrupts at once.
    """

    def __init__(self):
        self.requested = False
        self._raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            self._raise()
        self.requested = True

    def __exit__(self, exc_type, exc, tb):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if exc_type is None and self.requested and not self._raised:
            self._raise()
        return False

    def check(self):
        if self.requested:
            self._raise()

    def _raise(self):
        self._raised = True
        raise KeyboardInterrupt


class _FitGuard:
    """A model's (or estimator's) fit lock, and the thread and method holding it."""

    __slots__ = ("lock", "thread", "call")

    def __init__(self):
        self.lock, self.thread, self.call = threading.Lock(), None, None


# Kept here, by weak reference, rather than on the objects: no model file, pickle or copy holds a lock.
_FIT_GUARDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_FIT_GUARDS_LOCK = threading.Lock()


@contextlib.contextmanager
def one_fit_at_a_time(owner, what, call="fit()"):
    """Run the block as the only fit of ``owner`` (``what`` names it in messages,
    ``call`` the method).

    A second fit while one runs -- from another thread, or from a callback of
    the running one -- raises ``RuntimeError`` at once, without waiting: both
    would train the same weights and optimizer state.  ``predict``, ``evaluate``
    and fits of other objects are not held."""
    with _FIT_GUARDS_LOCK:
        guard = _FIT_GUARDS.get(owner)
        if guard is None:
            guard = _FIT_GUARDS[owner] = _FitGuard()
    if not guard.lock.acquire(blocking=False):
        running = guard.call or "fit()"
        if guard.thread == threading.get_ident():
            raise RuntimeError(
                f"{call} was called on this {what} from inside its own running {running} (from a "
                f"callback?); a fit cannot start within another: set model.stop_training = True in "
                f"the callback and call {call} after the running one returns")
        raise RuntimeError(
            f"{running} is already running on this {what} in another thread; two fits at once would "
            f"train the same weights and optimizer state in turns. Wait for it to return, or give "
            f"each thread its own {what}")
    try:
        guard.thread, guard.call = threading.get_ident(), call
        yield
    finally:
        guard.thread = guard.call = None
        guard.lock.release()


def refuse_during_fit_elsewhere(owner, what, call):
    """Raise ``RuntimeError`` if a fit of ``owner`` runs in another thread: ``call``
    (``compile()``, ``set_weights()``, ``add()``) would change what it trains under it.
    The fitting thread itself (a callback) may still call it, as Keras' callbacks do."""
    guard = _FIT_GUARDS.get(owner)
    if guard is not None and guard.lock.locked() and guard.thread != threading.get_ident():
        raise RuntimeError(
            f"{call} was called on this {what} while its {guard.call or 'fit()'} runs in another thread; "
            f"it would change the weights or optimizer that fit is training. Wait for fit to return")


def _forget_fit_guards():
    """In a forked child: no fit runs there (a thread does not survive the fork),
    whatever the locks copied from the parent say."""
    global _FIT_GUARDS_LOCK
    _FIT_GUARDS_LOCK = threading.Lock()
    _FIT_GUARDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_fit_guards)


def make_plan(model, X, y, w, batch_size, perm, workspaces) -> TrainingPlan:
    """The ``TrainingPlan`` of ``model`` on ``(X, y, w)``: its arrays are the model's
    own parameters, gradients and optimizer state, and ``workspaces``."""
    dtype = X.dtype
    layers = model.layers
    empty = np.empty(0, dtype)
    dense = model._dense_stack
    opt = model.optimizer
    rule, hyper = opt.kernel_spec()
    slots = iter(opt._slots)
    S1W, S1b, S2W, S2b = [], [], [], []
    for layer in layers:
        for use, first, second in ((True, S1W, S2W), (layer.use_bias, S1b, S2b)):
            s = next(slots) if use else ()
            first.append(s[0] if len(s) > 0 else empty)
            second.append(s[1] if len(s) > 1 else empty)
    return TrainingPlan(
        X=X, Y=y, SW=w, perm=perm, batch_size=batch_size,
        layers=tuple(layers), workspaces=workspaces,
        Ws=tuple(l.W for l in layers),
        bs=tuple(l.b if l.use_bias else empty for l in layers),
        dWs=tuple(l.dW for l in layers),
        dbs=tuple(l.db if l.use_bias else empty for l in layers),
        acts=np.array([l.activation.code for l in layers] if dense else [], np.int64),
        alphas=np.array([l.activation.alpha for l in layers] if dense else [], np.float64),
        l2s=np.array([l.l2 for l in layers], np.float64),
        Zs=tuple(ws.Z for ws in workspaces) if dense else (),
        As=tuple(ws.A for ws in workspaces) if dense else (),
        dZs=tuple(ws.dZ for ws in workspaces) if dense else (),
        # sparse X: batches are read in place, and a dense (batch_size, n_features)
        # buffer could be large (text features), so there is none
        Xb=aligned.empty((0 if isinstance(X, SparseInput) else batch_size, X.shape[1]), dtype),
        Yb=aligned.empty((batch_size,) + y.shape[1:], y.dtype),
        SWb=None if w is None else aligned.empty(batch_size, dtype),
        loss=model.loss.code, optimizer=rule, hyper=hyper,
        S1W=tuple(S1W), S1b=tuple(S1b), S2W=tuple(S2W), S2b=tuple(S2b),
    )


class _Loop:
    """Shared set-up: batch buffers, shuffling and divergence roll-back."""

    def __init__(self, model, X, y, w, batch_size, shuffle, rng, interrupt=None):
        self.model, self.X, self.y, self.w = model, X, y, w
        self.interrupt = interrupt or DeferredInterrupt()
        self.bs, self.shuffle, self.rng = batch_size, shuffle, rng
        self.n = X.shape[0]
        self.shuffles = shuffle and batch_size < self.n
        # Batches are rows perm[start:stop]: gathered into plan.Xb when shuffled; rows of
        # a sparse X are always read in place through perm (no copy, so nothing to skip).
        self.gather = self.shuffles or isinstance(X, SparseInput)
        self.steps = math.ceil(self.n / batch_size)
        self.perm = np.arange(self.n, dtype=np.int64)
        self.ws = model._workspace(batch_size)
        self.plan = make_plan(model, X, y, w, batch_size, self.perm, self.ws)
        # Parameters and optimizer state at the start of the epoch, to roll back to
        # if the loss diverges (a model is never left holding NaNs).
        self.state = model._params + model.optimizer.get_state()
        self.snapshot = [aligned.empty(p.shape, p.dtype) for p in self.state]

    def _begin_epoch(self):
        for s, p in zip(self.snapshot, self.state):
            np.copyto(s, p)
        self._iterations = self.model.optimizer.iterations
        if self.shuffles:
            self.rng.shuffle(self.perm)

    def _weight_of(self, start, stop):
        """The sample weights of the rows in batch positions start .. stop - 1 of this
        epoch (``stop - start`` without weights)."""
        if self.w is None:
            return float(stop - start)
        return float(self.w[self.perm[start:stop]].sum(dtype=np.float64))

    def undo_epoch(self):
        """Parameters, optimizer state and ``iterations`` back to the start of the epoch."""
        for s, p in zip(self.snapshot, self.state):
            np.copyto(p, s)
        self.model.optimizer.iterations = self._iterations

    def _diverged(self, what):
        self.undo_epoch()
        warnings.warn(
            f"fit: {what}; training stopped and the weights were restored to the start of "
            f"this epoch (try a lower learning rate)",
            RuntimeWarning, stacklevel=4,
        )
        self.model.stop_training = True

    def _grad_norm(self):
        return math.sqrt(sum(float(np.vdot(g, g)) for g in self.model._grads))


def _weighted_mean(loss_sum, weight):
    """An epoch's loss from its batches' weighted sums (see ``TrainResult.loss_sum``)."""
    return float(loss_sum / weight) if weight else 0.0


class KernelLoop(_Loop):
    """One Python-level step per minibatch; any layers, any callbacks."""

    def run_epoch(self, batch_hooks, want_grad_norm):
        """One pass over the data; the epoch's logs, or None if the loss diverged."""
        model, K, opt, plan = self.model, self.model._kernels, self.model.optimizer, self.plan
        self._begin_epoch()
        totals = dict.fromkeys(["loss"] + [name for name, _ in model.metrics], 0.0)
        seen = 0
        weight_seen = 0.0  # the loss is the sample-weighted mean over the epoch, as evaluate's
        for step in range(self.steps):
            self.interrupt.check()  # before a batch: a finished epoch is always logged
            start = step * self.bs
            stop = min(start + self.bs, self.n)
            m = stop - start
            if self.gather:
                Xb, yb, wb = reference.gather_batch(K, plan, step)
            else:
                Xb, yb = self.X[start:stop], self.y[start:stop]
                wb = None if self.w is None else self.w[start:stop]
            for cb in batch_hooks:
                cb.on_train_batch_begin(step, {"size": m})
            lr = opt.current_learning_rate()
            batch_loss = reference.train_step(K, plan, Xb, yb, wb, lr, opt.iterations + 1)
            if not math.isfinite(batch_loss):
                self._diverged(f"the loss became {batch_loss} at batch {step}")
                return None
            opt.iterations += 1
            weight = m if wb is None else float(wb.sum(dtype=np.float64))
            totals["loss"] += weight * batch_loss
            A = plan.workspaces[-1].A[:m]
            for name, metric in model.metrics:
                totals[name] += m * metric(yb, A)
            seen += m
            weight_seen += weight
            if want_grad_norm and stop == self.n:
                grad_norm = self._grad_norm()

            if batch_hooks:  # the epoch's running loss and metrics so far, as Keras's
                batch_logs = {"loss": _weighted_mean(totals["loss"], weight_seen),
                              **{name: totals[name] / seen for name, _ in model.metrics}, "size": m}
                for cb in batch_hooks:
                    cb.on_train_batch_end(step, batch_logs)
                if model.stop_training:
                    break
        if not reference.ends_finite(K, plan, Xb):
            self._diverged(f"the outputs overflowed after the update of batch {step}")
            return None
        logs = {name: total / max(seen, 1) for name, total in totals.items()}
        logs["loss"] = _weighted_mean(totals["loss"], weight_seen)
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
        if any(not isinstance(cb, cbks.ProgressLogger) for cb in batch_hooks):
            return False
        for _, metric in model.metrics:
            if type(metric) not in _COMPILED_METRICS:
                return False
        return True

    # Seconds of work per train_batches call: short enough that Ctrl+C is honoured
    # within about this long, long enough that the calls cost nothing measurable.
    CALL_SECONDS = 0.1

    def __init__(self, model, X, y, w, batch_size, shuffle, rng, interrupt=None):
        super().__init__(model, X, y, w, batch_size, shuffle, rng, interrupt)
        self.lrs = np.empty(self.steps, np.float64)
        self.seconds_per_batch = None  # measured on the first calls
        # BLAS threads or one thread, per call, from measured times; the Cython loop
        # chooses its threads itself, inside its parallel region
        self.threads = ThreadChoice(threads=1 if model.backend == "cython" else None,
                                    product_macs=batch_size * max(W.size for W in self.plan.Ws))

    def _batches_per_call(self, most):
        """Batches for the next ``train_batches`` call: about CALL_SECONDS of work at the
        last call's speed (4 for a fit's first call), at most ``most``; a quarter of that
        for a probe of BLAS's threads, which on a busy machine may run each batch several
        times slower than the one thread that measured the speed."""
        if self.seconds_per_batch is None:
            return min(4, most)
        count = min(most, max(1, int(self.CALL_SECONDS / self.seconds_per_batch)))
        if self.threads.probing and self.threads.setting == "threads":
            count = max(1, count // 4)
        return count

    def run_epoch(self, batch_hooks, want_grad_norm):
        model, K, opt = self.model, self.model._kernels, self.model.optimizer
        self._begin_epoch()
        progress = batch_hooks[0] if batch_hooks else None
        most = self.steps if progress is None else max(1, self.steps // 50)
        totals = np.zeros(4, np.float64)  # loss, correct, squared error, absolute error
        seen = first = 0
        weight_seen = 0.0  # the sample weights of the rows seen (their count without weights)
        while first < self.steps:
            self.interrupt.check()  # before a run of batches: a finished epoch is always logged
            count = min(self._batches_per_call(most), self.steps - first)
            lrs = opt.learning_rates(self.lrs[:count])
            self.plan.threads = 1 if self.threads.setting == "one" else 0
            with self.threads.limit():
                start = time.perf_counter()
                result = K.train_batches(self.plan, first, count, lrs, opt.iterations)
                seconds = time.perf_counter() - start
            done = result.batches
            opt.iterations += done
            totals += result.totals
            if done:
                self.seconds_per_batch = max(seconds / done, 1e-7)
                if done == count:  # no batch cut short: comparable with the other calls
                    self.threads.record(self.seconds_per_batch, seconds)
            before, seen = seen, min((first + done) * self.bs, self.n)
            weight_seen += self._weight_of(before, seen)
            if done < count:
                self._diverged(f"the loss became nan or infinite at batch {first + done}")
                return None
            if progress is not None:
                progress.advance(count, _weighted_mean(totals[0], weight_seen))
            first += count
        if not result.ends_finite:  # the call that ran the epoch's last batch checked it
            self._diverged(f"the outputs overflowed after the update of batch {self.steps - 1}")
            return None
        logs = {"loss": _weighted_mean(totals[0], weight_seen)}
        for name, metric in model.metrics:
            logs[name] = float(totals[_COMPILED_METRICS[type(metric)]] / seen)
        if want_grad_norm:
            logs["grad_norm"] = self._grad_norm()
        return logs


def run_epochs(model, X, y, w, val, bs, epochs, initial_epoch, shuffle, callbacks, verbose, first_layer):
    """``fit``'s epochs ``initial_epoch .. epochs - 1`` on checked, standardized ``(X, y, w)``
    in batches of ``bs`` rows (``val``: the validation rows, or ``None``), with the
    callbacks' hooks around them; returns the ``History`` (also ``model.history``)."""
    n = X.shape[0]
    steps = math.ceil(n / bs)
    history = cbks.History()
    params = {"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": bs, "samples": n,
              "first_layer": first_layer}
    # History comes last (as in Keras), so it records what other callbacks add to logs.
    callback_list = list(callbacks or [])
    if verbose:
        callback_list.append(cbks.ProgressLogger(verbose, epochs, steps))
    callback_list.append(history)
    for cb in callback_list:  # checked by fit (_fit_inputs.check_callbacks)
        cb.set_model(model)
        cb.set_params(params)
    batch_hooks = [cb for cb in callback_list if cbks.wants_batches(cb)]
    want_grad_norm = any(getattr(cb, "requires_grad_norm", False) for cb in callback_list)

    model.history = history
    model.stop_training = False
    # Seeded: the model's stream (from the first fit after compile, at its initial_epoch), so
    # that fit(epochs=1) called in a loop shuffles each epoch anew, and the same calls on a
    # model of the same seed repeat the same orders.
    if model.seed is None:
        shuffle_rng = np.random.default_rng()
    else:
        if model._shuffle_rng is None:
            model._shuffle_rng = np.random.default_rng([model.seed, 1, initial_epoch])
        shuffle_rng = model._shuffle_rng
    Loop = CompiledLoop if CompiledLoop.supports(model, batch_hooks, y) else KernelLoop
    interrupt = DeferredInterrupt()
    loop = Loop(model, X, y, w, bs, shuffle, shuffle_rng, interrupt)
    for cb in callback_list:
        cb.on_train_begin()
    logs = None  # the last epoch's, for on_train_end (as Keras)
    try:
        with interrupt:  # Ctrl+C stops at the next batch boundary
            for epoch in range(initial_epoch, epochs):
                for cb in callback_list:
                    cb.on_epoch_begin(epoch)
                epoch_logs = loop.run_epoch(batch_hooks, want_grad_norm)
                if epoch_logs is None:  # diverged: weights restored to the start of the epoch
                    break
                if val is not None:
                    epoch_logs.update({f"val_{k}": v for k, v in _validate(model, val, bs, loop).items()})
                epoch_logs["lr"] = model.optimizer.current_learning_rate()
                logs = epoch_logs
                try:
                    for cb in callback_list[:-1]:
                        cb.on_epoch_end(epoch, logs)
                finally:  # the epoch ran: History records it even if a callback raised
                    history.on_epoch_end(epoch, logs)
                if model.stop_training:
                    break
    except KeyboardInterrupt as interrupted:
        _end_training(callback_list, logs, interrupted)
        raise
    except BaseException:
        _end_training(callback_list, logs)  # an error of on_train_end replaces this one, as at a normal end
        raise
    _end_training(callback_list, logs)
    return history


def _end_training(callback_list, logs, interrupted=None):
    """Every callback's ``on_train_end``, each with a copy of the last epoch's logs.

    After an interrupt (``interrupted``: the KeyboardInterrupt on its way out of ``fit``)
    a callback that raises does not replace it: its error is reported in a warning and
    a note on the interrupt, and the other callbacks still run."""
    for cb in callback_list:
        try:
            cb.on_train_end(None if logs is None else dict(logs))
        except Exception as error:
            if interrupted is None:
                raise
            message = (f"fit: {type(cb).__name__}.on_train_end raised {type(error).__name__}: {error} "
                       f"after fit was interrupted; the KeyboardInterrupt goes on")
            if hasattr(interrupted, "add_note"):  # Python 3.11+: printed with the interrupt's traceback
                interrupted.add_note(message)
            try:
                warnings.warn(message, RuntimeWarning, stacklevel=4)
            except Warning:  # warnings turned into errors: they must not replace the interrupt either
                pass


def _validate(model, val, batch_size, loop):
    """The validation pass after an epoch: Ctrl+C stops it between chunks, and the epoch,
    which then goes unlogged, is undone so History and weights agree."""
    try:
        return model._evaluate(*val, batch_size=max(batch_size, 1024), interrupt=loop.interrupt)
    except KeyboardInterrupt:
        loop.undo_epoch()
        raise

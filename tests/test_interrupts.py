"""Ctrl+C during ``fit``: training stops soon, on every backend and at any verbosity, and
leaves the weights, optimizer state, ``iterations`` and History in agreement."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn as fn

CHILD = textwrap.dedent("""
    import json, signal, sys, time
    import numpy as np
    import fastnn as fn

    # Ctrl+C as in a terminal, even when this test runs where SIGINT is ignored and the
    # child inherits that (a suite started in the background of a non-interactive shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    backend, verbose, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6000, 120))
    y = rng.integers(0, 10, 6000)

    def model():
        m = fn.Sequential([fn.Dense(96, activation="relu", input_dim=120), fn.Dense(10, activation="softmax")],
                          backend=backend, dtype="float64", seed=5)
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    model().fit(X[:200], y[:200], epochs=1, verbose=0)  # compile and load everything first
    m = model()
    print("ready", flush=True)
    try:
        m.fit(X, y, epochs=100000, batch_size=32, verbose=verbose)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    np.savez(out, *m.get_weights(), *m.optimizer.get_state())
    with open(out + ".json", "w") as f:
        json.dump({"iterations": m.optimizer.iterations, "epochs": len(m.history.history["loss"]),
                   "steps": m.history.params["steps"]}, f)
""")


@pytest.mark.parametrize("verbose", [0, 2])
@pytest.mark.parametrize("backend", fn.backends.available())
def test_ctrl_c_stops_fit_soon_and_leaves_a_consistent_model(backend, verbose, tmp_path):
    out = str(tmp_path / "state.npz")
    child = subprocess.Popen([sys.executable, "-c", CHILD, backend, str(verbose), out],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline()
        while line and line.strip() != "interrupted":  # verbose=2 prints epoch lines
            line = child.stdout.readline()
        latency = time.perf_counter() - sent
        assert line.strip() == "interrupted"
        assert child.wait(timeout=60) == 0, child.stderr.read()
    finally:
        child.kill()
    # The target is 0.1 s (a compiled call runs about that long); the bound leaves room
    # for a busy machine.
    assert latency < 3.0, f"fit stopped {latency:.2f} s after Ctrl+C"
    info = json.loads(open(out + ".json").read())
    assert info["iterations"] > 0
    assert info["epochs"] == info["iterations"] // info["steps"]

    # Replay exactly that many updates on the per-batch path: same weights and state.
    class StopAfter(fn.callbacks.Callback):
        seen = 0

        def on_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == info["iterations"]:
                self.model.stop_training = True

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6000, 120))
    y = rng.integers(0, 10, 6000)
    m = fn.Sequential([fn.Dense(96, activation="relu", input_dim=120), fn.Dense(10, activation="softmax")],
                      backend="numpy", dtype="float64", seed=5)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(X, y, epochs=info["epochs"] + 1, batch_size=32, verbose=0, callbacks=[StopAfter()])
    assert m.optimizer.iterations == info["iterations"]
    saved = np.load(out)
    expected = m.get_weights() + m.optimizer.get_state()
    assert len(saved.files) == len(expected)
    for i, e in enumerate(expected):
        np.testing.assert_allclose(saved[f"arr_{i}"], e, rtol=1e-6, atol=1e-9)


def test_a_second_ctrl_c_interrupts_at_once_and_handlers_are_restored():
    import fastnn._training as training

    with training.DeferredInterrupt() as interrupt:
        if interrupt._previous is None:
            pytest.skip("not in the main thread, or SIGINT has a handler of its own")
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _deferred_ctrl_c_available():
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a handler of its own here")


def _small_fit_model():
    m = fn.Sequential([fn.Dense(8, activation="relu", input_dim=4), fn.Dense(1)], backend="numpy", seed=0)
    m.compile("sgd", "mse")
    return m


class CtrlCAt(fn.callbacks.Callback):
    """Sends SIGINT to this process at the last batch or the last epoch's end."""

    def __init__(self, where, epochs, steps):
        self.where, self.epochs, self.steps = where, epochs, steps
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if self.where == "last batch" and self.epoch == self.epochs - 1 and batch == self.steps - 1:
            os.kill(os.getpid(), signal.SIGINT)

    def on_epoch_end(self, epoch, logs=None):
        if self.where == "last epoch end" and epoch == self.epochs - 1:
            os.kill(os.getpid(), signal.SIGINT)


class FailsAtTrainEnd(fn.callbacks.Callback):
    def on_train_end(self, logs=None):
        raise ValueError("cannot end")


@pytest.mark.parametrize("fails_at_end", [False, True], ids=["", "on_train_end raises"])
@pytest.mark.parametrize("where", ["last batch", "last epoch end"])
def test_ctrl_c_late_in_fit_still_raises(where, fails_at_end):
    """Also when a callback's on_train_end raises then: its error is a warning, the
    KeyboardInterrupt is what fit raises."""
    _deferred_ctrl_c_available()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.standard_normal((40, 1))
    m = _small_fit_model()
    callbacks = [CtrlCAt(where, 3, 4)] + ([FailsAtTrainEnd()] if fails_at_end else [])
    warned = (pytest.warns(RuntimeWarning, match=r"FailsAtTrainEnd\.on_train_end raised ValueError: cannot end")
              if fails_at_end else contextlib.nullcontext())
    with warned, pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=3, batch_size=10, verbose=0, callbacks=callbacks)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # the last epoch finished before the request was honoured: all of it is logged
    assert len(m.history.history["loss"]) == 3
    assert m.optimizer.iterations == 12
    m.fit(X, y, epochs=1, batch_size=10, verbose=0)  # and training can go on


def test_ctrl_c_stops_the_validation_pass_between_chunks():
    _deferred_ctrl_c_available()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.standard_normal((40, 1))
    Xv, yv = rng.standard_normal((50 * 1024, 4)), rng.standard_normal((50 * 1024, 1))
    m = _small_fit_model()
    m.fit(X, y, epochs=1, batch_size=10, verbose=0)
    before = m.get_weights() + m.optimizer.get_state()
    forward, chunks = m._forward, []

    def forward_then_ctrl_c(Xb, ws):
        if Xb.shape[0] == 1024:  # a validation chunk (training batches have 10 rows)
            chunks.append(Xb.shape[0])
            if len(chunks) == 1:
                os.kill(os.getpid(), signal.SIGINT)
        return forward(Xb, ws)

    m._forward = forward_then_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=5, batch_size=10, verbose=0, validation_data=(Xv, yv))
    assert len(chunks) <= 2, f"{len(chunks)} of 50 validation chunks ran after Ctrl+C"
    # the interrupted epoch is not logged, and its updates are undone
    assert m.history.history.get("loss", []) == []
    assert m.optimizer.iterations == 4
    for b, a in zip(before, m.get_weights() + m.optimizer.get_state()):
        np.testing.assert_array_equal(b, a)

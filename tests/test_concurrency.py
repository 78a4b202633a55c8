"""Many threads, one model: servers call ``predict`` concurrently, and two models may
train at once in one process.  Results must equal the serial ones on every backend.
A second ``fit`` of one model while one runs is refused at once."""
import contextlib
import os
import threading

import numpy as np
import pytest

import fastnn as fn

BACKENDS = fn.backends.available()


def _run_threads(target, n_threads):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _model(backend, layers, dtype="float32"):
    model = fn.Sequential(layers, backend=backend, dtype=dtype, seed=3)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["dense", "maxout", "sparse input", "normalization", "wide"])
def test_concurrent_predict_and_evaluate_equal_serial_results(backend, kind):
    rng = np.random.default_rng(0)
    # Different sizes per thread, so threads use workspaces of different sizes too.
    inputs = [rng.standard_normal((300 + 97 * i, 40)).astype(np.float32) for i in range(6)]
    if kind == "maxout":
        layers = [fn.Maxout(16, pieces=3, input_dim=40), fn.Dense(5, activation="softmax")]
    elif kind == "wide":  # a 1 MiB W, which the compiled kernels read through per-call copies
        layers = [fn.Dense(512, activation="relu", input_dim=40), fn.Dense(512, activation="relu"),
                  fn.Dense(5, activation="softmax")]
    else:
        layers = [fn.Dense(64, activation="relu", input_dim=40), fn.Dense(5, activation="softmax")]
    if kind == "normalization":
        layers.insert(0, fn.Normalization().adapt(3 * inputs[0] + 1))
    if kind == "sparse input":
        import scipy.sparse as sp

        inputs = [sp.csr_matrix(np.where(x > 1, x, 0)) for x in inputs]
    model = _model(backend, layers)
    labels = [rng.integers(0, 5, x.shape[0]) for x in inputs]
    expected = [model.predict(x, batch_size=128) for x in inputs]
    expected_eval = [model.evaluate(x, y, batch_size=128) for x, y in zip(inputs, labels)]
    results = {}

    def work(i):
        for repeat in range(8):
            j = (i + repeat) % len(inputs)
            results[(i, repeat)] = (j, model.predict(inputs[j], batch_size=128),
                                    model.evaluate(inputs[j], labels[j], batch_size=128))

    _run_threads(work, 6)
    for (j, out, ev) in results.values():
        np.testing.assert_allclose(out, expected[j], rtol=1e-5, atol=1e-6)
        assert ev["loss"] == pytest.approx(expected_eval[j]["loss"], rel=1e-5)
        assert ev["accuracy"] == pytest.approx(expected_eval[j]["accuracy"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_models_trained_at_once_in_two_threads_equal_serial_training(backend):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((600, 30)).astype(np.float32)
    y = rng.integers(0, 4, 600)
    shapes = [(32,), (24, 12)]  # two different models: different buffer shapes and sizes

    def make(hidden):
        layers = [fn.Dense(hidden[0], activation="tanh", input_dim=30)]
        layers += [fn.Dense(h, activation="relu") for h in hidden[1:]]
        return _model(backend, layers + [fn.Dense(4, activation="softmax")])

    serial = []
    for hidden in shapes:
        m = make(hidden)
        m.fit(X, y, epochs=3, batch_size=32, verbose=0)
        serial.append(m.get_weights())
    models = [make(hidden) for hidden in shapes]
    _run_threads(lambda i: models[i].fit(X, y, epochs=3, batch_size=32, verbose=0), 2)
    for m, weights in zip(models, serial):
        for a, b in zip(m.get_weights(), weights):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


class HoldFirstEpoch(fn.callbacks.Callback):
    """Holds its fit at the end of the first epoch until ``release`` is set."""

    def __init__(self):
        self.holding, self.release = threading.Event(), threading.Event()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.holding.set()
            assert self.release.wait(timeout=60), "the test never released the fit"


@contextlib.contextmanager
def _fit_running(model, X, y, callbacks=(), **fit_args):
    """A ``fit`` of ``model`` in another thread, held at the end of its first epoch for
    the block; after it the fit runs to its end, which must raise nothing."""
    hold, errors = HoldFirstEpoch(), []

    def fit():
        try:
            model.fit(X, y, verbose=0, callbacks=[hold, *callbacks], **fit_args)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=fit)
    thread.start()
    try:
        assert hold.holding.wait(timeout=60)
        yield
    finally:
        hold.release.set()
        thread.join()
    assert errors == []


def _blobs(n=200):
    rng = np.random.default_rng(4)
    return rng.standard_normal((n, 10)).astype(np.float32), rng.integers(0, 3, n)


def _small(backend="numpy"):
    return _model(backend, [fn.Dense(16, activation="relu", input_dim=10), fn.Dense(3, activation="softmax")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_fit_of_one_model_raises_at_once_while_predict_and_evaluate_go_on(backend, tmp_path):
    X, y = _blobs()
    model = _small(backend)
    model.fit(X, y, epochs=1, verbose=0)
    iterations = model.optimizer.iterations
    with _fit_running(model, X, y, epochs=3, batch_size=50):
        held = model.get_weights()
        with pytest.raises(RuntimeError, match=r"^fit\(\) is already running on this model in another thread"):
            model.fit(X, y, epochs=1, verbose=0)
        with pytest.raises(RuntimeError, match="already running"):  # also with arguments fit would refuse
            model.fit(X[:, :3], y, epochs=1, verbose=0)
        for a, b in zip(held, model.get_weights()):  # the refused calls changed nothing
            np.testing.assert_array_equal(a, b)
        # predict and evaluate from other threads are not held
        twin = _small(backend)
        twin.set_weights(held)
        np.testing.assert_allclose(model.predict(X), twin.predict(X), rtol=1e-6)
        assert model.evaluate(X, y)["loss"] == pytest.approx(twin.evaluate(X, y)["loss"], rel=1e-6)
    # the first fit ran alone: its three epochs of four batches, nothing else
    assert model.history.epoch == [0, 1, 2]
    assert model.optimizer.iterations == iterations + 3 * 4
    model.fit(X, y, epochs=1, verbose=0)  # the guard is released
    # and it is no part of the model: the model saves, loads and trains as before
    model.save(tmp_path / "m.fastnn")
    fn.load_model(tmp_path / "m.fastnn").fit(X, y, epochs=1, verbose=0)


def test_compile_set_weights_and_add_from_another_thread_are_refused_while_a_fit_runs():
    """While a fit runs in one thread, compile(), set_weights() and add() from another
    would change what it trains: RuntimeError, nothing changed.  A callback of the running
    fit (its own thread) may still set weights, as Keras' callbacks do."""
    X, y = _blobs()
    model = _small("numpy")
    model.fit(X, y, epochs=1, verbose=0)

    class SetsWeights(fn.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.model.set_weights(self.model.get_weights())

    with _fit_running(model, X, y, callbacks=[SetsWeights()], epochs=2):
        held, optimizer = model.get_weights(), model.optimizer
        for call, name in [(lambda: model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy"),
                            "compile"),
                           (lambda: model.set_weights([np.zeros_like(w) for w in held]), "set_weights"),
                           (lambda: model.add(fn.Dense(3, activation="softmax")), "add")]:
            with pytest.raises(RuntimeError, match=rf"^{name}\(\) was called on this model while its fit\(\) runs"):
                call()
        assert model.optimizer is optimizer and len(model.layers) == 2
        for a, b in zip(held, model.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert model.history.epoch == [0, 1]
    model.set_weights(model.get_weights())  # the fit is over: allowed again
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_process_forked_while_another_thread_fits_can_fit_the_model():
    """The fit guard a thread held at the fork is not held in the child, where that
    thread does not run."""
    X, y = _blobs()
    model = _small("numpy")
    with _fit_running(model, X, y, epochs=2):
        pid = os.fork()
        if pid == 0:  # the child: fit, then leave without running the parent's cleanup
            code = 1
            try:
                model.fit(X, y, epochs=1, verbose=0)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("failure", ["bad input", "callback error", "KeyboardInterrupt"])
def test_a_fit_that_raises_lets_the_next_fit_run(failure):
    X, y = _blobs()
    model = _small()
    error = {"callback error": RuntimeError("callback failed"), "KeyboardInterrupt": KeyboardInterrupt()}

    class Fails(fn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise error[failure]

    if failure == "bad input":
        with pytest.raises(ValueError):
            model.fit(X[:, :3], y, verbose=0)
    else:
        with pytest.raises(type(error[failure])):
            model.fit(X, y, epochs=2, verbose=0, callbacks=[Fails()])
    model.fit(X, y, epochs=1, verbose=0)
    _run_threads(lambda i: model.fit(X, y, epochs=1, verbose=0), 1)  # from another thread too
    assert model.history.epoch == [0]


def test_fit_called_from_a_callback_of_the_running_fit_is_refused():
    X, y = _blobs()
    model = _small()

    class FitsAgain(fn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.fit(X, y, epochs=1, verbose=0)

    with pytest.raises(RuntimeError, match=r"fit\(\) was called on this model from inside its own running fit"):
        model.fit(X, y, epochs=3, batch_size=50, verbose=0, callbacks=[FitsAgain()])
    assert model.history.epoch == [0] and model.optimizer.iterations == 4
    model.fit(X, y, epochs=1, verbose=0)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_compiled_training_releases_the_gil(backend):
    """Another Python thread keeps running while a compiled epoch runs."""
    import time

    rng = np.random.default_rng(2)
    X = rng.standard_normal((20000, 100)).astype(np.float32)
    y = rng.integers(0, 10, 20000)
    model = _model(backend, [fn.Dense(128, activation="relu", input_dim=100), fn.Dense(10, activation="softmax")])
    model.fit(X[:500], y[:500], epochs=1, verbose=0)  # compile first
    ticks, done = [], threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.002)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        start = time.perf_counter()
        model.fit(X, y, epochs=6, batch_size=32, verbose=0)
        stop = time.perf_counter()
    finally:
        done.set()
        thread.join()
    # While the GIL is held the ticker cannot run; it must tick throughout the fit
    # (holding the GIL for one compiled call of about 0.1 s would show as such pauses).
    gaps = np.diff([t for t in ticks if start < t < stop])
    assert len(gaps) >= 20 and gaps.max() < 0.08, f"{len(gaps)} ticks, longest pause {gaps.max():.3f} s"

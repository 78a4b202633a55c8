"""The steady state of ``fit`` allocates no per-batch arrays.

tracemalloc sees NumPy's data buffers.  During the third epoch of a
784-128-10 Adam fit (batch 128), the peak of newly allocated memory must stay
below the size of a single (128, 128) float32 activation buffer: every
workspace, gradient, optimizer slot and scratch buffer was allocated in
epoch 1, and only NumPy's own small temporaries (reductions, the loss of
one batch) may come and go.
"""
import tracemalloc

import numpy as np

import fastnn as fn

ONE_ACTIVATION_BUFFER = 128 * 128 * 4


class PeakProbe(fn.callbacks.Callback):
    def __init__(self, epoch):
        self.epoch, self.extra = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            tracemalloc.start()
            self.start = tracemalloc.get_traced_memory()[0]

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.extra = tracemalloc.get_traced_memory()[1] - self.start
            tracemalloc.stop()


def test_no_per_step_allocations_in_steady_state(backend):
    rng = np.random.default_rng(0)
    X = rng.random((2048, 784), dtype=np.float32)
    y = rng.integers(0, 10, 2048)
    model = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784), fn.Dense(10, activation="softmax")],
                          backend=backend, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    probe = PeakProbe(epoch=2)
    model.fit(X, y, epochs=3, batch_size=128, callbacks=[probe], verbose=0)
    assert probe.extra is not None
    assert probe.extra < ONE_ACTIVATION_BUFFER, f"{probe.extra} bytes allocated at peak during a steady-state epoch"


def test_numpy_scratch_buffers_do_not_grow_with_row_counts():
    from fastnn._kernels.numpy import _scratch

    _scratch._buffers().clear()
    rng = np.random.default_rng(0)
    X = rng.random((300, 16))
    y = rng.random((300, 1))
    model = fn.Sequential([fn.Dense(64, activation="softplus", input_dim=16), fn.Dense(32, activation="elu"),
                           fn.Dense(1)], backend="numpy", seed=0)
    model.compile(optimizer="adam", loss="mse")
    for n in range(1, 301):
        model.predict(X[:n])
    for n in range(280, 301):
        model.fit(X[:n], y[:n], epochs=1, batch_size=n, verbose=0)
    buffers = _scratch._buffers()
    assert len(buffers) <= 16, f"{len(buffers)} scratch buffers kept for one model"
    assert sum(b.nbytes for b in buffers.values()) <= 4 * 300 * 64 * 8
    assert len(buffers) <= _scratch.MAX_BUFFERS


def test_numpy_scratch_keeps_at_most_max_buffers():
    from fastnn._kernels.numpy import _scratch

    for width in range(1, 3 * _scratch.MAX_BUFFERS):
        t = _scratch.scratch(np.zeros((3, width)))
        assert t.shape == (3, width)
    assert len(_scratch._buffers()) <= _scratch.MAX_BUFFERS
    # a buffer for more rows serves fewer as a leading view, and grows when asked for more
    big = _scratch.scratch(np.zeros((10, 5)), slot=7)
    small = _scratch.scratch(np.zeros((4, 5)), slot=7)
    assert small.shape == (4, 5) and np.shares_memory(big, small)
    assert _scratch.scratch(np.zeros((12, 5)), slot=7).shape == (12, 5)
    assert _scratch.scratch(np.zeros((), np.float32), slot=7).shape == ()

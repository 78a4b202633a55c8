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

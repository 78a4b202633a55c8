"""Measurements of the sparse first layer: its data and its timing, shared by
``benchmarks/sparse_input.py`` (the MNIST table and ``--crossover``).

The timing is the harness's own (``cases.TrainingRun``: a warm-up fit, then
one ``fit(epochs=1)`` per epoch, each epoch timed from ``on_epoch_begin`` to
``on_epoch_end``), with ``fit``'s ``first_layer`` choosing the path.
"""
from __future__ import annotations

import numpy as np

from .cases import TrainingRun, Workload


def mnist_images():
    """``(X_train, y_train, X_test, y_test, source)``, float32 in [0, 1]: real MNIST
    (``$FASTNN_DATA/mnist``), else the digits upscaled to 784 pixels, which are mostly
    zero as MNIST is (random pixels would not be)."""
    from fastnn.datasets import load_digits, load_mnist, to_float

    try:
        (X, y), (Xt, yt) = load_mnist(download=False, progress=False)
        return to_float(X), y, to_float(Xt), yt, "MNIST"
    except (FileNotFoundError, ValueError, TypeError):
        X, y = load_digits()
        X = np.repeat(np.repeat(X.reshape(-1, 8, 8), 4, axis=1), 4, axis=2).reshape(-1, 1024)[:, :784]
        return X[:1500].astype(np.float32), y[:1500], X[1500:].astype(np.float32), y[1500:], "digits, upscaled"


def nonzero_share(X) -> float:
    """The share of non-zero values of a dense ``X``."""
    return np.count_nonzero(X) / X.size


def thin(X, density, seed=0):
    """A copy of ``X`` with non-zero values set to zero at random, each kept with the same
    probability, so that about ``density`` of all values stay non-zero (``X`` itself, copied,
    if it is not denser than that)."""
    keep = density / nonzero_share(X)
    if keep >= 1:
        return X.copy()
    rng = np.random.default_rng(seed)
    return np.where(rng.random(X.shape, dtype=np.float32) < keep, X, 0).astype(X.dtype)


def fastest_epochs(widths, backend, X, y, epochs, first_layers=("dense", "sparse"), dtype="float32"):
    """``{first_layer: (seconds, model)}``: the fastest of ``epochs`` epochs of a ReLU network
    of ``widths`` (softmax output, Adam, batch 128) on ``(X, y)`` for each ``fit(first_layer=...)``,
    their epochs taking turns so that a busy spell of the machine slows them alike."""
    workload = Workload("sparse", tuple(widths), "relu", "adam", 128)
    runs = {first_layer: TrainingRun(workload, backend, dtype, first_layer=first_layer, data=(X, y))
            for first_layer in first_layers}
    for run in runs.values():
        run.warm_up()
    for _ in range(epochs):
        for run in runs.values():
            run()
    return {first_layer: (min(run.epoch_seconds), run.model) for first_layer, run in runs.items()}


def crossover(densities, sparse_seconds, dense_seconds):
    """``(density, intercept, slope)``: the density at which the sparse epoch reaches
    ``dense_seconds``, on the line ``intercept + slope * density`` fitted to the sparse
    epochs measured at ``densities``.  Its work grows with the stored values, so the line
    is the model; the fit is Theil-Sen's (the median of the pairwise slopes), which a few
    epochs slowed down by other processes do not move.  None if the line never reaches it."""
    from scipy.stats import theilslopes

    slope, intercept, _, _ = theilslopes(sparse_seconds, densities)
    density = (dense_seconds - intercept) / slope if slope > 0 else None
    if density is not None and density <= 0:  # slower even with no stored value at all
        density = None
    return density, intercept, slope

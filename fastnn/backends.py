"""Kernel backends: ``available()`` lists those that work on this machine."""
from __future__ import annotations

import numpy as np

from ._kernels import BACKEND_MODULES, available, resolve

__all__ = ["available", "names", "resolve", "warmup"]


def names() -> list[str]:
    """Every backend fastnn knows, available here or not."""
    return list(BACKEND_MODULES)


def warmup(backend: str = "auto", dtypes=("float32",), depths=(2, 3)) -> None:
    """Compile a JIT backend's common specializations ahead of time.

    Numba compiles each kernel on first use (seconds to tens of seconds on a
    cold cache, then cached on disk).  This trains tiny models -- one epoch per
    dtype and depth, integer labels and one-hot targets, with and without
    sample weights -- so that the first real ``fit`` starts at once.  A no-op
    in effect for the numpy and cython backends.
    """
    from .layers import Dense
    from .model import Sequential

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    labels = rng.integers(0, 3, 40)
    for dtype in dtypes:
        for depth in depths:
            for loss, y in (("sparse_categorical_crossentropy", labels),
                            ("categorical_crossentropy", np.eye(3)[labels])):
                for weights in (None, np.ones(40)):
                    layers = [Dense(4, activation="relu", input_dim=5)]
                    layers += [Dense(4, activation="tanh") for _ in range(depth - 2)]
                    layers.append(Dense(3, activation="softmax"))
                    model = Sequential(layers, backend=backend, dtype=dtype, seed=0)
                    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
                    model.fit(X, y, epochs=1, batch_size=16, sample_weight=weights, verbose=0)
                    model.predict(X)

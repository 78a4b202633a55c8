"""fastnn: the fastest way to train a multilayer perceptron on a CPU from Python.

>>> import fastnn as fn
>>> model = fn.Sequential([
...     fn.Dense(128, activation="relu", input_dim=784, kernel_initializer="he_normal"),
...     fn.Dense(10, activation="softmax"),
... ], seed=0)
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""
# The compiled Cython kernels are optional: without them (no C compiler at install
# time) backend="auto" picks numba or numpy and says so once (fastnn._kernels.resolve).
# A source folder without them that hides an installed fastnn says so at import (fastnn._install).
from ._install import warn_if_shadowing as _warn_if_shadowing

_warn_if_shadowing()
from . import activations, backends, callbacks, initializers, losses, metrics, optimizers, schedules
from .layers import Dense, Maxout
from .model import NotBuiltError, Sequential
from .normalization import Normalization
from .saving import load_model
from ._threads import get_num_threads, set_num_threads


_LAZY_MODULES = ("datasets", "onnx", "plot", "sklearn")  # they import scikit-learn / matplotlib / onnx


def __getattr__(name):  # load heavy parts on first use, keeping `import fastnn` fast
    import importlib

    if name == "__version__":  # the installed metadata's, read on first use (fastnn._install)
        from ._install import package_version

        globals()["__version__"] = version = package_version()
        return version
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in ("MLPClassifier", "MLPRegressor"):
        return getattr(importlib.import_module(".sklearn", __name__), name)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")

__all__ = [
    "Dense",
    "MLPClassifier",
    "MLPRegressor",
    "Maxout",
    "NotBuiltError",
    "Normalization",
    "Sequential",
    "activations",
    "backends",
    "callbacks",
    "initializers",
    "load_model",
    "losses",
    "metrics",
    "optimizers",
    "schedules",
    "get_num_threads",
    "set_num_threads",
]

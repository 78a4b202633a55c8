"""Saving and loading the estimators without pickle, and their pickled state.

``save_estimator`` writes one NumPy ``.npz`` archive: a JSON description
(parameters and fitted attributes) plus the model in fastnn's own ``.fastnn``
format; ``load`` reads it back.  ``pickle_state`` / ``unpickle_state`` store
``model_`` in the same ``.fastnn`` form inside a pickle (the model holds kernel
modules, which do not pickle).  Estimator classes are found by name among those
passed to ``register``, so this module imports none of them.
"""
from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

from .. import optimizers, schedules
from ..saving import load_model, save_model, write_npz_atomically

__all__ = ["load"]

_ESTIMATORS = {}  # class name -> estimator class that load() may build


def register(cls):
    """Class decorator: let ``load`` build saved estimators of class ``cls``."""
    _ESTIMATORS[cls.__name__] = cls
    return cls


# ---------------------------------------------------- model and parameters
def _model_to_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory(prefix="fastnn-") as folder:
        path = os.path.join(folder, "model.fastnn")
        save_model(model, path)
        with open(path, "rb") as f:
            return f.read()


def _model_from_bytes(data: bytes, backend=None):
    with tempfile.TemporaryDirectory(prefix="fastnn-") as folder:
        path = os.path.join(folder, "model.fastnn")
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path, backend=backend)


def _param_to_json(value):
    if isinstance(value, optimizers.Optimizer):
        return {"fastnn_optimizer": optimizers.registry.serialize(value)}
    if isinstance(value, schedules.LearningRateSchedule):
        return {"fastnn_schedule": schedules.registry.serialize(value)}
    if isinstance(value, np.random.RandomState):
        return None
    if isinstance(value, type):
        return np.dtype(value).name
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, tuple):
        return {"tuple": [_param_to_json(v) for v in value]}
    return _scalar_to_json(value)


def _param_from_json(value):
    if isinstance(value, dict):
        if "fastnn_optimizer" in value:
            return optimizers.get(value["fastnn_optimizer"])
        if "fastnn_schedule" in value:
            return schedules.get(value["fastnn_schedule"])
        if "tuple" in value:
            return tuple(_param_from_json(v) for v in value["tuple"])
    return value


def _scalar_to_json(value):
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_scalar_to_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, dict)):
        return value
    raise TypeError(f"save: cannot store {type(value).__name__} {value!r} without pickle")


def _scalar_from_json(value):
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value


def _array_to_storable(arr, name):
    if arr.dtype != object:
        return arr, "plain"
    if all(isinstance(v, str) for v in arr.ravel()):
        return arr.astype(str), "object-str"
    raise TypeError(f"save: {name} holds Python objects that are not strings ({arr[:3]!r}...); "
                    "they cannot be stored without pickle (use joblib or pickle instead)")

# ---------------------------------------------------------------- pickling
def pickle_state(state):
    """``__getstate__``: ``state`` with ``model_`` replaced by its ``.fastnn`` bytes."""
    if "model_" in state:  # kernels are modules: store the model in its .fastnn form
        state = dict(state)
        state["model_"] = {"fastnn_model_bytes": _model_to_bytes(state["model_"])}
    return state


def unpickle_state(state):
    """``__setstate__``: the inverse of ``pickle_state``."""
    model = state.get("model_")
    if isinstance(model, dict) and "fastnn_model_bytes" in model:
        state = dict(state)
        state["model_"] = _model_from_bytes(model["fastnn_model_bytes"])
    return state


# ------------------------------------------------------------------- files
def save_estimator(est, path):
    """Write fitted ``est`` to ``path`` (the body of ``save``)."""
    params = {key: _param_to_json(value) for key, value in est.get_params(deep=False).items()}
    attributes, arrays = {}, {}
    for name in est._SAVED_ATTRIBUTES + est._EXTRA_ATTRIBUTES:
        if name not in est.__dict__:
            continue
        value = est.__dict__[name]
        if isinstance(value, np.ndarray):
            arrays[f"attribute:{name}"], kind = _array_to_storable(value, name)
            attributes[name] = {"array": kind}
        else:
            attributes[name] = _scalar_to_json(value)
    config = {"format": "fastnn-sklearn", "version": 1, "estimator": type(est).__name__,
              "params": params, "attributes": attributes}
    arrays["config"] = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    arrays["model"] = np.frombuffer(_model_to_bytes(est.model_), dtype=np.uint8)
    write_npz_atomically(path, arrays)


def load(path, backend=None):
    """Load an estimator written by ``MLPClassifier.save`` / ``MLPRegressor.save``.

    Parameters
    ----------
    path : str or PathLike
    backend : str, optional
        Kernel backend for the loaded model (default: the saved one if
        available here, else ``"auto"``).  The ``backend`` parameter of the
        estimator is kept as saved.

    Raises
    ------
    ValueError
        The file is not a saved fastnn estimator.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {key: data[key] for key in data.files}
        config = json.loads(entries["config"].tobytes().decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any failure here means "not our file"
        raise ValueError(f"{path}: not a saved fastnn estimator ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict) or config.get("format") != "fastnn-sklearn":
        raise ValueError(f"{path}: not a saved fastnn estimator (a Sequential is read by fastnn.load_model)")
    if config.get("version", 0) > 1:
        raise ValueError(f"{path}: saved estimator version {config.get('version')!r}; this fastnn reads version 1")
    cls = _ESTIMATORS.get(config.get("estimator"))
    if cls is None:
        raise ValueError(f"{path}: unknown estimator {config.get('estimator')!r}")
    est = cls(**{key: _param_from_json(value) for key, value in config["params"].items()})
    for name, value in config["attributes"].items():
        if isinstance(value, dict) and "array" in value:
            arr = entries[f"attribute:{name}"]
            value = arr.astype(object) if value["array"] == "object-str" else arr
        elif isinstance(value, list):
            value = [_scalar_from_json(v) for v in value]
        else:
            value = _scalar_from_json(value)
        setattr(est, name, value)
    est.model_ = _model_from_bytes(entries["model"].tobytes(), backend=backend)
    est._after_load()
    return est

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
from .._file_schema import BadFile
from .._npz_reader import Archive
from ..saving import _read_config, check_backend, check_path, load_model, save_model, write_npz_atomically

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
        try:
            return load_model(path, backend=backend)
        except ValueError as exc:  # name the entry, not the temporary file
            raise BadFile(f"model: {str(exc).removeprefix(path + ': ')}") from None


def _param_to_json(value):
    if isinstance(value, optimizers.Optimizer):
        return {"fastnn_optimizer": optimizers.registry.serialize(value)}
    if isinstance(value, schedules.LearningRateSchedule):
        if schedules.holds_function(value):
            raise TypeError(f"save: cannot store {value!r} without pickle (a file holds no code); "
                            f"give a fastnn schedule such as 'exponential' or ExponentialDecay(...) to save it")
        return {"fastnn_schedule": schedules.registry.serialize(value)}
    if isinstance(value, np.random.RandomState):
        return None
    if isinstance(value, type):
        return np.dtype(value).name
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, tuple):
        return {"tuple": [_param_to_json(v) for v in value]}
    if isinstance(value, range):  # hidden_layer_sizes=range(3, 5): array-like, as scikit-learn documents it
        return {"range": [value.start, value.stop, value.step]}
    if isinstance(value, np.ndarray) and value.ndim <= 1 and value.dtype.kind in "biuf":
        return {"ndarray": [_scalar_to_json(v) for v in value.tolist()], "dtype": value.dtype.name}
    return _scalar_to_json(value)


def _param_from_json(value):
    if isinstance(value, dict):
        if "fastnn_optimizer" in value:
            return optimizers.get(value["fastnn_optimizer"])
        if "fastnn_schedule" in value:
            return schedules.get(value["fastnn_schedule"])
        if "tuple" in value:
            return tuple(_param_from_json(v) for v in value["tuple"])
        if set(value) == {"range"}:
            return range(*value["range"])
        if set(value) == {"ndarray", "dtype"}:
            return np.asarray([_scalar_from_json(v) for v in value["ndarray"]], dtype=value["dtype"])
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
    path : str, bytes or PathLike
    backend : str, optional
        Kernel backend for the loaded model (default: the saved one if
        available here, else ``"auto"``).  The ``backend`` parameter of the
        estimator is kept as saved.

    Raises
    ------
    ValueError
        The file is not a saved fastnn estimator, or is corrupt.  As with
        ``fastnn.load_model``, every entry is checked before it is read: no
        pickle, entries stored uncompressed, no entry larger than the file,
        and only the estimator's own saved attributes.
    """
    path = check_path(path)
    check_backend(backend)
    try:
        with Archive(path) as archive:
            config = _read_config(archive)
            est = _read_estimator(archive, config, backend)
    except MemoryError:
        raise
    except BadFile as exc:
        kind = "not a saved fastnn estimator" if exc.kind == "not a fastnn model file" else \
            "corrupt saved fastnn estimator"
        raise ValueError(f"{path}: {kind} ({exc.detail})") from None
    except Exception as exc:  # noqa: BLE001 - a bad config fails in the estimator's own checks
        raise ValueError(f"{path}: corrupt saved fastnn estimator ({type(exc).__name__}: {exc})") from None
    return est


def _read_estimator(archive, config, backend):
    if not isinstance(config, dict) or config.get("format") != "fastnn-sklearn":
        raise BadFile("a Sequential is read by fastnn.load_model", kind="not a fastnn model file")
    version = config.get("version")
    if version != 1:
        raise BadFile(f"version: this fastnn reads version 1, got {version!r}")
    cls = _ESTIMATORS.get(config.get("estimator")) if isinstance(config.get("estimator"), str) else None
    if cls is None:
        raise BadFile(f"estimator: expected one of {sorted(_ESTIMATORS)}, got {config.get('estimator')!r}")
    params, attributes = config.get("params"), config.get("attributes")
    if not isinstance(params, dict) or not isinstance(attributes, dict):
        raise BadFile("params, attributes: expected JSON objects")
    allowed = set(cls._SAVED_ATTRIBUTES + cls._EXTRA_ATTRIBUTES)
    names = [f"attribute:{name}" for name, value in attributes.items()
             if isinstance(value, dict) and "array" in value]
    unexpected = sorted(set(attributes) - allowed) + sorted(set(archive.entries) - set(names) - {"config", "model"})
    if unexpected:
        raise BadFile(f"unexpected attributes or entries {unexpected}")
    if "model" not in archive.entries or set(names) - set(archive.entries):
        raise BadFile(f"entries: expected model and {names}, got {sorted(archive.entries)}")
    est = cls(**{key: _param_from_json(value) for key, value in params.items()})
    for name, value in attributes.items():
        if isinstance(value, dict) and "array" in value:
            arr = archive.read(f"attribute:{name}", None, max_length=archive.size)
            value = arr.astype(object) if value["array"] == "object-str" else arr
        elif isinstance(value, list):
            value = [_scalar_from_json(v) for v in value]
        else:
            value = _scalar_from_json(value)
        setattr(est, name, value)
    _check_attributes(est)
    model = archive.read("model", np.uint8, max_length=archive.size)
    est.model_ = _model_from_bytes(model.tobytes(), backend=backend)
    est._after_load()
    _check_consistent(est)
    return est


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# What a fitted estimator's saved attributes hold: (test, what it expects); all are
# required but feature_names_in_ (set only by a fit on named columns).
_ATTRIBUTE_TYPES = {
    "n_features_in_": (_whole, "an integer >= 0"),
    "feature_names_in_": (lambda v: isinstance(v, np.ndarray) and v.ndim == 1, "a 1-D array of names"),
    "n_iter_": (_whole, "an integer >= 0"),
    "t_": (_whole, "an integer >= 0"),
    "loss_": (lambda v: v is None or _real(v), "a number or null"),
    "loss_curve_": (lambda v: isinstance(v, list) and all(map(_real, v)), "a list of numbers"),
    "best_loss_": (lambda v: v is None or _real(v), "a number or null"),
    "validation_scores_": (lambda v: v is None or (isinstance(v, list) and all(map(_real, v))),
                           "a list of numbers or null"),
    "best_validation_score_": (lambda v: v is None or _real(v), "a number or null"),
    "n_layers_": (_whole, "an integer >= 0"),
    "n_outputs_": (_whole, "an integer >= 0"),
    "out_activation_": (lambda v: isinstance(v, str), "a string"),
    "_no_improvement_count": (_whole, "an integer >= 0"),
    "_epochs_seen": (_whole, "an integer >= 0"),
    "_grad_factor": (_real, "a number"),
    "_loss_factor": (_real, "a number"),
    "classes_": (lambda v: isinstance(v, np.ndarray) and v.ndim in (1, 2), "an array of classes"),
    "_target_kind": (lambda v: isinstance(v, str), "a string"),
    "target_mean_": (lambda v: v is None or isinstance(v, np.ndarray), "an array or null"),
    "target_scale_": (lambda v: v is None or isinstance(v, np.ndarray), "an array or null"),
    "_y_ndim": (lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2"),
}
_OPTIONAL_ATTRIBUTES = {"feature_names_in_"}


def _check_attributes(est):
    """Every saved attribute the estimator needs is there, of the type it needs."""
    cls = type(est)
    for name in cls._SAVED_ATTRIBUTES + cls._EXTRA_ATTRIBUTES:
        if name not in est.__dict__:
            if name in _OPTIONAL_ATTRIBUTES:
                continue
            raise BadFile(f"attributes: {name} is missing")
        test, expected = _ATTRIBUTE_TYPES[name]
        if not test(est.__dict__[name]):
            raise BadFile(f"attributes: {name}: expected {expected}, got {est.__dict__[name]!r:.80}")


def _check_consistent(est):
    """The saved attributes agree with the model (a file edited by hand may not)."""
    model = est.model_
    n_outputs, activation, _ = est._output_spec()
    got = (est.n_features_in_, n_outputs)
    expected = (model.input_dim, model.layers[-1].units)
    if got != expected:
        raise BadFile(f"n_features_in_, outputs: the model expects {expected}, the attributes give {got}")

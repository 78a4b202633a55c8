"""The schema of a ``.fastnn`` file's config, checked before anything is built.

``check_config`` checks the type and range of every field and computes, from
the config alone (no layer is built), the shape of every array the file must
hold.  Every problem raises ``BadFile`` naming the field, what was expected
and what was found.
"""
from __future__ import annotations

import inspect
import reprlib
from typing import NamedTuple

import numpy as np

from . import activations, initializers, losses, optimizers
from . import layers as layers_mod
from . import metrics as metrics_mod
from ._archive import FORMAT, VERSION

MAX_PARAMETERS = 2 ** 31  # the most parameters a model file may declare
MAX_ITERATIONS = 2 ** 53  # optimizer_iterations must be an exact integer in a float64
_DTYPES = ("float32", "float64")


class BadFile(ValueError):
    """A problem with a model file; ``kind`` says whether it is ours at all."""

    def __init__(self, detail, kind="corrupt fastnn model file"):
        super().__init__(f"{kind}: {detail}")
        self.detail, self.kind = detail, kind


class StateArray(NamedTuple):
    shape: tuple
    nonnegative: bool  # an accumulator of squared gradients


class Spec(NamedTuple):
    """What a valid file holds, computed from its config."""

    config: dict
    dtype: np.dtype
    weights: list  # shapes, in get_weights() order
    state: list  # StateArray per optimizer_<i> entry (empty when not compiled)
    optimizer: str  # class name, for messages
    statistics: dict  # entry name -> shape: the normalizers' input_/target_ mean and variance


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def _show(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return _short.repr(value)
    return f"{type(value).__name__} {_short.repr(value)}"


def _fail(where, expected, value):
    raise BadFile(f"{where}: expected {expected}, got {_show(value)}")


def _dict(where, value, required=(), optional=()):
    if not isinstance(value, dict):
        _fail(where, "a dict", value)
    for key in required:
        if key not in value:
            raise BadFile(f"{where}: missing key {key!r}")
    for key in value:
        if key not in required and key not in optional:
            raise BadFile(f"{where}: unexpected key {_short.repr(key)}; expected keys among "
                          f"{sorted({*required, *optional})}")
    return value


def _int(where, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        _fail(where, f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}", value)
    return value


def _registered(where, registry, value, allow_none=False):
    """A name or ``{"class_name": ..., "config": {...}}`` that ``registry`` builds."""
    if value is None and allow_none:
        return None
    if isinstance(value, dict):
        _dict(where, value, ("class_name",), ("config",))
        if not isinstance(value["class_name"], str):
            _fail(f"{where}.class_name", f"a name among {registry.names()}", value["class_name"])
        config = value.get("config", {})
        if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
            _fail(f"{where}.config", "a dict of arguments", config)
    elif not isinstance(value, str):
        _fail(where, f"a name among {registry.names()} or a dict", value)
    try:
        return registry.get(value, where)
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadFile(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None


_LAYER_KEYS = {name: tuple(inspect.signature(cls.__init__).parameters)[1:]
               for name, cls in layers_mod.LAYERS.items()}


def _layer(where, entry, n_in):
    """Check one layer entry; return ``(W shape, b shape or None, units)``."""
    _dict(where, entry, ("class_name", "config"))
    if entry["class_name"] not in layers_mod.LAYERS:
        _fail(f"{where}.class_name", f"one of {sorted(layers_mod.LAYERS)}", entry["class_name"])
    where = f"{where}.config"
    config = _dict(where, entry["config"], ("units",), _LAYER_KEYS[entry["class_name"]])
    units = _int(f"{where}.units", config["units"], 1, MAX_PARAMETERS)
    pieces = _int(f"{where}.pieces", config.get("pieces", 1), 1, MAX_PARAMETERS)
    input_dim = config.get("input_dim")
    if n_in is None:
        n_in = _int(f"{where}.input_dim", input_dim, 1, MAX_PARAMETERS)
    elif input_dim is not None and input_dim != n_in:
        _fail(f"{where}.input_dim", f"{n_in} (the previous layer's units) or null", input_dim)
    if not isinstance(config.get("use_bias", True), bool):
        _fail(f"{where}.use_bias", "a bool", config["use_bias"])
    if "activation" in config:
        _registered(f"{where}.activation", activations.registry, config["activation"], allow_none=True)
    for key in ("kernel_initializer", "bias_initializer"):
        if key in config:
            _registered(f"{where}.{key}", initializers.registry, config[key])
    try:
        layers_mod.LAYERS[entry["class_name"]].from_config(config)  # no weights: build() is not called
    except (TypeError, ValueError) as exc:
        raise BadFile(f"{where}: {exc}") from None
    width = units * pieces
    return (n_in, width), ((width,) if config.get("use_bias", True) else None), units


def _normalization(where, entry, n_features, axes):
    """Check a normalizer entry; return the shape of its statistics (None: not adapted)."""
    _dict(where, entry, ("axis", "statistics_shape"), optional=("count",))  # count: absent in older files
    if entry["axis"] not in axes or isinstance(entry["axis"], bool):
        _fail(f"{where}.axis", f"one of {list(axes)}", entry["axis"])
    count = entry.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        _fail(f"{where}.count", "an integer >= 0", count)
    shape = entry["statistics_shape"]
    allowed = [[]] if entry["axis"] is None else [[], [n_features]]
    if shape is not None and shape not in allowed:
        _fail(f"{where}.statistics_shape", f"null or one of {allowed}", shape)
    return None if shape is None else tuple(shape)


def _model(config):
    """The weight shapes (in ``get_weights()`` order) and the normalizers' statistics
    entries ``{name: shape}``."""
    _dict("model", config, ("layers",),
          ("name", "backend", "dtype", "seed", "input_normalization", "target_normalization"))
    for key in ("name", "backend"):
        if key in config and not isinstance(config[key], str):
            _fail(f"model.{key}", "a string", config[key])
    if config.get("dtype", "float32") not in _DTYPES:
        _fail("model.dtype", f"one of {list(_DTYPES)}", config["dtype"])
    if config.get("seed") is not None:
        _int("model.seed", config["seed"], 0)
    layers = config["layers"]
    if not isinstance(layers, list) or not layers:
        _fail("model.layers", "a non-empty list of layers", layers)
    shapes, n_in, total = [], None, 0
    for i, entry in enumerate(layers):
        W, b, n_in = _layer(f"model.layers[{i}]", entry, n_in)
        total += W[0] * W[1] + (b[0] if b else 0)
        if total > MAX_PARAMETERS:
            raise BadFile(f"model.layers: layers 0 to {i} need {total:,} parameters; a fastnn model "
                          f"file holds at most {MAX_PARAMETERS:,}")
        shapes += [W] if b is None else [W, b]
    statistics = {}
    for prefix, n_features, axes in (("input", shapes[0][0], (-1, None)), ("target", n_in, (-1,))):
        entry = config.get(f"{prefix}_normalization")
        if entry is not None:
            shape = _normalization(f"model.{prefix}_normalization", entry, n_features, axes)
            if shape is not None:
                statistics[f"{prefix}_mean"] = statistics[f"{prefix}_variance"] = shape
    return shapes, statistics


def _compile(config, weights):
    """The optimizer's class name and the StateArray of each ``optimizer_<i>`` entry."""
    if config is None:
        return "", []
    if not isinstance(config, dict):
        _fail("compile", "a dict or null", config)
    _dict("compile", config, ("optimizer", "loss", "metrics"))
    optimizer = _registered("compile.optimizer", optimizers.registry, config["optimizer"])
    if not isinstance(config["loss"], str):
        _fail("compile.loss", "a loss name", config["loss"])
    _registered("compile.loss", losses.registry, config["loss"])
    metrics = config["metrics"]
    if not isinstance(metrics, list) or not all(
            isinstance(m, list) and len(m) == 2 and all(isinstance(s, str) for s in m) for m in metrics):
        _fail("compile.metrics", "a list of [name, metric class name] pairs", metrics)
    for i, (_, cls) in enumerate(metrics):
        _registered(f"compile.metrics[{i}]", metrics_mod.registry, cls)
    slots = range(optimizer.n_slots)
    state = [StateArray(shape, j in optimizer.nonnegative_slots) for shape in weights for j in slots]
    return type(optimizer).__name__, state


def check_config(config) -> Spec:
    """Check a decoded config (see ``fastnn.saving``); raise ``BadFile`` or return its ``Spec``."""
    if not isinstance(config, dict):
        _fail("config", "a dict", config)
    if config.get("format") != FORMAT:
        raise BadFile(f"format {_short.repr(config.get('format'))}", kind="not a fastnn model file")
    version = config.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise BadFile(f"version {version}; this fastnn reads versions up to {VERSION}",
                      kind="unsupported fastnn model file")
    _int("version", version, 1, VERSION)
    _dict("config", config, ("format", "version", "model"), ("compile", "optimizer_iterations"))
    weights, statistics = _model(config["model"])
    optimizer, state = _compile(config.get("compile"), weights)
    _int("optimizer_iterations", config.get("optimizer_iterations", 0), 0, MAX_ITERATIONS)
    return Spec(config, np.dtype(config["model"].get("dtype", "float32")), weights, state, optimizer, statistics)

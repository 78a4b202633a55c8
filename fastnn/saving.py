"""The ``.fastnn`` file format: one NumPy ``.npz`` archive, no pickle.

Entries:

* ``config`` -- UTF-8 JSON (as a uint8 array)::

    {"format": "fastnn", "version": 2,
     "model": <Sequential.get_config()>,
     "compile": {"optimizer": {...}, "loss": "...", "metrics": [...]} or null,
     "optimizer_iterations": int}

* ``weight_<i>`` -- the parameters in ``get_weights()`` order;
* ``optimizer_<i>`` -- the optimizer's state arrays (``Optimizer.get_state()``),
  so training resumes exactly where it stopped;
* ``input_mean``, ``input_variance``, ``target_mean``, ``target_variance`` --
  float64 statistics of the input ``Normalization`` layer and of
  ``target_normalization``, when the model has them and they are adapted
  (the config's ``input_normalization`` / ``target_normalization`` give
  their axis and shape; version 2).

Files are written to a temporary file in the target folder and renamed into
place, so a crash never leaves a half-written model.

Loading reads no pickle and checks the whole file before allocating anything:
the config's schema (``fastnn._file_schema``), then each array's stored shape
and dtype against the shapes the config implies (at most ``MAX_PARAMETERS``
parameters), then the values (finite; optimizer accumulators >= 0).  Arrays
must be stored uncompressed, as ``save`` writes them, so no entry can expand
beyond the file's size.  A bad file raises ``ValueError`` naming the file.
"""
from __future__ import annotations

import json
import os

import numpy as np

from . import _kernels, optimizers
from . import metrics as metrics_mod
from ._archive import FORMAT, VERSION, as_path, save_model, write_npz_atomically  # noqa: F401 - the writing half
from ._file_schema import MAX_PARAMETERS, BadFile, Spec, check_config  # noqa: F401 - MAX_PARAMETERS is documented
from ._npz_reader import Archive
from ._validation import check_finite
from .model import Sequential

MAX_CONFIG_BYTES = 16 * 2 ** 20


def load_model(path, backend=None):
    """Load a model written by ``Sequential.save``.

    Parameters
    ----------
    path : str, bytes or PathLike
    backend : str, optional
        Override the backend stored in the file (e.g. load a model trained
        with ``"numba"`` on a machine that only has ``"numpy"``); by default
        the stored one is used if available here, else ``"auto"``.  Checked
        before the file is read.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        No file at ``path``, or a directory.
    TypeError
        ``path`` is not a file name, or ``backend`` not a string.
    ValueError
        The file is not a fastnn model, is corrupt, or is from a newer version.
    """
    path = check_path(path)
    check_backend(backend)
    try:
        with Archive(path) as archive:
            spec = check_config(_read_config(archive))
            weights, state, statistics = _read_arrays(archive, spec)
    except MemoryError:
        raise
    except BadFile as exc:
        raise ValueError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - zip, npy and json layers raise all kinds
        raise ValueError(f"{path}: corrupt fastnn model file ({type(exc).__name__}: {exc})") from None
    try:
        return _build(spec, weights, state, statistics, backend)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise ValueError(f"{path}: corrupt fastnn model file ({type(exc).__name__}: {exc})") from None


def check_path(path) -> str:
    """``path`` (str, bytes or os.PathLike) as a str naming an existing file."""
    path = as_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"path: {path!r} is a directory, expected a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    return path


def check_backend(backend) -> None:
    """The ``backend`` argument of a loader: ``None`` (the saved one) or a usable backend name."""
    if backend is None:
        return
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a backend name or None, got {type(backend).__name__} {backend!r}")
    _kernels.resolve(backend)  # ValueError for an unknown name, ImportError for one not built here


def _read_config(archive):
    if "config" not in archive.entries:
        raise BadFile("no 'config' entry", kind="not a fastnn model file")
    try:
        raw = archive.read("config", np.uint8, max_length=MAX_CONFIG_BYTES)
    except BadFile as exc:
        raise BadFile(exc.detail, kind="not a fastnn model file") from None

    def no_constants(name):
        raise ValueError(f"{name} is not a number in strict JSON")

    try:
        return json.loads(raw.tobytes().decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadFile(f"config is not UTF-8 JSON ({type(exc).__name__}: {exc})") from None


def _read_arrays(archive, spec: Spec):
    """The weight and optimizer arrays, each checked against ``spec`` before it is read."""
    n_w, n_s = len(spec.weights), len(spec.state)
    names = [f"weight_{i}" for i in range(n_w)]
    stored = sum(key.startswith("optimizer_") for key in archive.entries)
    if stored not in (0, n_s):
        raise BadFile(f"optimizer state: expected {n_s} entries (optimizer_0 to optimizer_{n_s - 1}) for "
                      f"{spec.optimizer or 'an uncompiled model'}, or none; got {stored}")
    names += [f"optimizer_{i}" for i in range(stored)]
    stat_names = list(spec.statistics)
    missing = [key for key in names + stat_names if key not in archive.entries]
    if missing:
        raise BadFile(f"entries: expected {', '.join([names[0], 'to', names[-1]] + stat_names)}; "
                      f"{', '.join(missing)} missing")
    unexpected = sorted(set(archive.entries) - set(names) - set(stat_names) - {"config"})
    if unexpected:
        raise BadFile(f"unexpected entries {unexpected}")
    arrays = [archive.read(key, spec.dtype, shape)
              for key, shape in zip(names, spec.weights + [s.shape for s in spec.state])]
    for key, arr in zip(names, arrays):
        try:
            check_finite(arr, key)
        except ValueError as exc:
            raise BadFile(str(exc)) from None
    for i, (s, arr) in enumerate(zip(spec.state[:stored], arrays[n_w:])):
        if s.nonnegative and arr.size and arr.min() < 0:
            raise BadFile(f"optimizer_{i}: expected values >= 0 ({spec.optimizer} accumulates squared "
                          f"gradients here), got {float(arr.min())}")
    statistics = {key: archive.read(key, np.float64, shape) for key, shape in spec.statistics.items()}
    for key, arr in statistics.items():
        try:
            check_finite(arr, key)
        except ValueError as exc:
            raise BadFile(str(exc)) from None
        if key.endswith("_variance") and arr.size and arr.min() < 0:
            raise BadFile(f"{key}: expected values >= 0, got {float(arr.min())}")
    return arrays[:n_w], arrays[n_w:], statistics


def _build(spec: Spec, weights, state, statistics, backend):
    model_config, compile_config = spec.config["model"], spec.config.get("compile")
    if backend is None:
        stored = model_config.get("backend", "auto")
        backend = stored if stored in _kernels.available() else "auto"
    model = Sequential.from_config(model_config, backend=backend)
    model.set_weights(weights)
    for prefix, norm in (("input", model.input_normalizer), ("target", model.target_normalizer)):
        if f"{prefix}_mean" in statistics:
            norm.set_statistics(statistics[f"{prefix}_mean"], statistics[f"{prefix}_variance"])
            norm.count = model_config[f"{prefix}_normalization"].get("count", 0)  # files before it: 0
    if compile_config:
        model.compile(
            optimizer=optimizers.get(compile_config["optimizer"]),
            loss=compile_config["loss"],
            metrics=[_metric_as_compiled(name, cls) for name, cls in compile_config["metrics"]],
        )
        if len(state) == len(spec.state):  # also restores the count of a stateless optimizer
            model.optimizer.set_state(state, spec.config.get("optimizer_iterations", 0))
    return model


def _metric_as_compiled(name, cls):
    """What ``compile`` took for a saved metric: its name when the name is one the registry
    knows for that metric (an alias such as ``"acc"`` stays the key of the logs), else
    the metric itself (reported under its own name)."""
    metric = metrics_mod.registry.get(cls)
    try:
        return name if type(metrics_mod.get(name)) is type(metric) else metric
    except (ValueError, TypeError):
        return metric

"""The ``.fastnn`` file format: one NumPy ``.npz`` archive, no pickle.

Entries:

* ``config`` -- UTF-8 JSON (as a uint8 array)::

    {"format": "fastnn", "version": 1,
     "model": <Sequential.get_config()>,
     "compile": {"optimizer": {...}, "loss": "...", "metrics": [...]} or null,
     "optimizer_iterations": int}

* ``weight_<i>`` -- the parameters in ``get_weights()`` order;
* ``optimizer_<i>`` -- the optimizer's state arrays (``Optimizer.get_state()``),
  so training resumes exactly where it stopped.

Files are written to a temporary file in the target folder and renamed into
place, so a crash never leaves a half-written model.  Loading uses
``allow_pickle=False`` and validates everything before building the model.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from . import losses, optimizers
from . import metrics as metrics_mod

FORMAT = "fastnn"
VERSION = 1


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring)."""
    path = os.fspath(path)
    model._require_built("save")
    compile_config = None
    if model.compiled:
        compile_config = {
            "optimizer": optimizers.registry.serialize(model.optimizer),
            "loss": losses.registry.name_of(model.loss),
            "metrics": [[name, metrics_mod.registry.name_of(m)] for name, m in model.metrics],
        }
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.get_config(),
        "compile": compile_config,
        "optimizer_iterations": model.optimizer.iterations if model.compiled else 0,
    }
    arrays = {"config": np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)}
    for i, w in enumerate(model._params):
        arrays[f"weight_{i}"] = w
    if model.compiled and model.optimizer.built:
        for i, s in enumerate(model.optimizer.get_state()):
            arrays[f"optimizer_{i}"] = s
    write_npz_atomically(path, arrays)


def write_npz_atomically(path, arrays: dict) -> None:
    """Write ``arrays`` as an ``.npz`` archive to ``path``: a temporary file in
    the same folder, flushed to disk, then renamed into place (never half-written)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_model(path, backend=None):
    """Load a model written by ``Sequential.save``.

    Parameters
    ----------
    path : str or PathLike
    backend : str, optional
        Override the backend stored in the file (e.g. load a model trained
        with ``"numba"`` on a machine that only has ``"numpy"``); by default
        the stored one is used if available here, else ``"auto"``.

    Raises
    ------
    ValueError
        The file is not a fastnn model, is corrupt, or is from a newer version.
    """
    from . import _kernels
    from .model import Sequential

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(f"{path}: not a fastnn model file (not a readable .npz archive: {exc})") from None
    if "config" not in entries:
        raise ValueError(f"{path}: not a fastnn model file (no 'config' entry)")
    try:
        config = json.loads(entries["config"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: corrupt fastnn model file (config is not JSON: {exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastnn model file (format {config.get('format') if isinstance(config, dict) else None!r})")
    if not isinstance(config.get("version"), int) or config["version"] > VERSION:
        raise ValueError(f"{path}: fastnn model file version {config.get('version')!r}; "
                         f"this fastnn reads versions up to {VERSION}")
    try:
        model_config = config["model"]
        if backend is None:
            stored = model_config.get("backend", "auto")
            backend = stored if stored in _kernels.available() else "auto"
        model = Sequential.from_config(model_config, backend=backend)
        n_weights = sum(1 for key in entries if key.startswith("weight_"))
        weights = [entries[f"weight_{i}"] for i in range(n_weights)]
        model.set_weights(weights)
        compile_config = config.get("compile")
        if compile_config:
            model.compile(
                optimizer=optimizers.get(compile_config["optimizer"]),
                loss=compile_config["loss"],
                metrics=[metrics_mod.registry.get(cls) if name != cls else name
                         for name, cls in compile_config["metrics"]],
            )
            state = [entries[f"optimizer_{i}"] for i in range(sum(k.startswith("optimizer_") for k in entries))]
            if state:
                model.optimizer.set_state(state, config.get("optimizer_iterations", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: corrupt fastnn model file ({type(exc).__name__}: {exc})") from None
    return model

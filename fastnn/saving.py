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
import zipfile

import numpy as np

from . import _kernels, optimizers
from . import metrics as metrics_mod
from ._archive import FORMAT, VERSION, save_model, write_npz_atomically  # noqa: F401 - the writing half
from .model import Sequential

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

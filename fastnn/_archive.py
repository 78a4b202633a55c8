"""Writing ``.fastnn`` files (the format is described in ``fastnn.saving``).

Kept apart from ``saving.load_model`` so that ``Sequential.save`` can write a
file without the model module and the loader importing each other.
"""
from __future__ import annotations

import json
import os
import tempfile

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
    """Write ``arrays`` as an ``.npz`` archive to ``path`` atomically (see ``write_atomically``)."""
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path, write) -> None:
    """Call ``write(f)`` on a binary file that becomes ``path``: a temporary file in
    the same folder, flushed to disk, then renamed into place (never half-written)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

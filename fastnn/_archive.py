"""Writing ``.fastnn`` files (the format is described in ``fastnn.saving``).

Kept apart from ``saving.load_model`` so that ``Sequential.save`` can write a
file without the model module and the loader importing each other.

Temporary files: on Linux the data is written to an unnamed ``O_TMPFILE``
file in the target folder and only linked in (as ``.fastnn-<random>.tmp``)
when complete, just before the rename, so a save killed even by SIGKILL
leaves nothing behind.  Elsewhere (or on a file system without
``O_TMPFILE``) the temporary file is named from the start and locked with
``flock`` while it is written; each save removes the ``.fastnn-*.tmp`` files
in its folder older than ``STALE_AFTER`` seconds that no writer has locked.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import time

import numpy as np

from . import losses, optimizers
from . import metrics as metrics_mod

try:
    import fcntl
except ImportError:  # Windows: no flock, so stale temporaries are left alone
    fcntl = None

FORMAT = "fastnn"
VERSION = 2  # 2: input and target normalization
STALE_AFTER = 3600.0  # seconds after which an unlocked temporary file is a killed save's
ANONYMOUS_TEMPORARIES = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_PREFIX, _SUFFIX = ".fastnn-", ".tmp"


def as_path(path) -> str:
    """``path`` (str, bytes or os.PathLike) as a str; ``TypeError`` naming ``path`` otherwise."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"path: expected a file name (str, bytes or os.PathLike), got "
                        f"{type(path).__name__} {path!r}") from None


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring)."""
    path = as_path(path)
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
    for prefix, norm in (("input", model.input_normalizer), ("target", model.target_normalizer)):
        if norm is not None and norm.adapted:
            arrays[f"{prefix}_mean"], arrays[f"{prefix}_variance"] = norm.mean, norm.variance
    write_npz_atomically(path, arrays)


def write_npz_atomically(path, arrays: dict) -> None:
    """Write ``arrays`` as an ``.npz`` archive to ``path`` atomically (see ``write_atomically``)."""
    write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path, write) -> None:
    """Call ``write(f)`` on a binary file that becomes ``path``: a temporary file in
    the same folder, flushed to disk, then renamed into place (never half-written).
    The file gets the mode of a newly created file (``0o666 & ~umask``).  A symbolic link
    is followed, as ``open(path, "wb")`` would: its target is replaced, the link stays."""
    path = os.path.realpath(as_path(path))
    folder = os.path.dirname(path)
    remove_stale_temporaries(folder)
    fd, tmp = _open_temporary(folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            if tmp is None:  # anonymous: give it a name now that it is complete
                tmp = _link_anonymous(f.fileno(), folder)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _named(folder, create):
    """Call ``create(name)`` with fresh ``.fastnn-*.tmp`` names in ``folder`` until one is free."""
    for _ in range(100):
        name = os.path.join(folder, f"{_PREFIX}{secrets.token_hex(8)}{_SUFFIX}")
        try:
            create(name)
            return name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


def _link_anonymous(fd, folder):
    """Give the ``O_TMPFILE`` file ``fd`` a temporary name in ``folder`` (``linkat`` with
    ``AT_SYMLINK_FOLLOW``: a dir fd makes ``os.link`` use linkat, not link)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _named(folder, lambda name: os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True))
    finally:
        os.close(proc)


def _open_temporary(folder):
    """``(fd, name)`` of a new temporary file in ``folder``, locked; ``name`` is None for an
    anonymous (``O_TMPFILE``) one.  Mode 0o666: the umask applies, as to any new file."""
    fd = None
    if ANONYMOUS_TEMPORARIES:
        try:
            fd, name = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    if fd is None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fds = []
        name = _named(folder, lambda n: fds.append(os.open(n, flags, 0o666)))
        fd = fds[0]
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel when the writer dies
    return fd, name


def remove_stale_temporaries(folder, max_age=STALE_AFTER) -> None:
    """Remove ``.fastnn-*.tmp`` files in ``folder`` last modified over ``max_age`` seconds
    ago whose writer is gone (no ``flock`` held on them).  Best effort: errors are ignored."""
    if fcntl is None:
        return
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(_PREFIX) and entry.name.endswith(_SUFFIX)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_file(follow_symlinks=False) or time.time() - st.st_mtime < max_age:
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer holds it
            if os.path.samestat(os.fstat(fd), os.stat(entry.path, follow_symlinks=False)):
                os.unlink(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)

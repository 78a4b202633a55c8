"""Where data files are looked for, and argument checks shared by the loaders.

Search order for a file that is not given explicitly:

1. ``$FASTNN_DATA`` and the data set's sub-folders in it (e.g. ``mnist/``),
2. system copies installed by the OS (e.g. Debian's ``dataset-fashion-mnist``),
3. the cache folder, ``~/.cache/fastnn/<data set>/`` unless ``cache_dir`` is given.
"""
import os

import numpy as np

ENV_VAR = "FASTNN_DATA"


def default_cache_dir():
    """``~/.cache/fastnn``: where downloads are kept."""
    return os.path.join(os.path.expanduser("~"), ".cache", "fastnn")


def search_dirs(name, env_subdirs, *, cache_dir=None, system_dirs=()):
    """Folders to look in, in order: $FASTNN_DATA (+ sub-folders), system copies, cache."""
    dirs = []
    root = os.environ.get(ENV_VAR)
    if root:
        dirs += [os.path.join(root, sub) if sub else root for sub in env_subdirs]
    dirs += list(system_dirs)
    dirs.append(os.path.join(os.fsdecode(cache_dir) if cache_dir else default_cache_dir(), name))
    return dirs


def find_file(filenames, dirs):
    """First existing ``dir/filename`` over ``dirs`` (outer) and ``filenames`` (inner), or None."""
    for folder in dirs:
        for filename in filenames:
            candidate = os.path.join(folder, filename)
            if os.path.isfile(candidate):
                return candidate
    return None


def not_found_message(what, missing, dirs, hint):
    """Error text: which files are missing, where we looked, where to put them."""
    looked = "\n".join(f"  {d}" for d in dirs)
    return (
        f"{what}: {', '.join(missing)} not found. Looked in:\n{looked}\n"
        f"Put the file(s) in one of these folders, or set {ENV_VAR} to a folder "
        f"that holds them. {hint}"
    )


def float_dtype(dtype):
    """``np.dtype`` for 'float32' or 'float64'; anything else is a ValueError."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved

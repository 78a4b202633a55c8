"""What is installed where: fastnn's version, and whether ``import fastnn`` came
from a source folder that hides an installed fastnn.

The second case: after ``pip install .`` (not ``-e``), running ``python -m
fastnn`` or ``python`` from the source folder imports the source folder's
``fastnn/`` (the current folder comes first on ``sys.path``), whose Cython
extensions were built into the installed copy, not here.  fastnn then runs on
its slower numba/numpy backends; ``warn_if_shadowing`` says why, once, at
import.  Kept free of fastnn imports so that ``fastnn/__init__.py`` can call it
first.
"""
from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES, PathFinder
from pathlib import Path

# pyproject.toml's version, for a source folder that is not installed (a test checks they agree).
FALLBACK_VERSION = "0.1.0"
PACKAGE_DIR = Path(__file__).resolve().parent
# One of the Cython extensions stands for them all: setup.py builds all or none of
# them in practice, and the cython backend needs every one.
_EXTENSION = Path("_kernels", "cython", "_dense")


def package_version() -> str:
    """fastnn's version from the installed metadata, else ``FALLBACK_VERSION``."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python >= 3.8 has it
        return FALLBACK_VERSION
    try:
        return version("fastnn")
    except PackageNotFoundError:
        return FALLBACK_VERSION


def has_built_extensions(package_dir: Path) -> bool:
    """Whether ``package_dir`` (a ``fastnn/`` folder) holds the compiled Cython kernels."""
    stem = Path(package_dir) / _EXTENSION
    return any(stem.with_name(stem.name + suffix).is_file() for suffix in EXTENSION_SUFFIXES)


def is_source_folder(package_dir: Path) -> bool:
    """Whether ``package_dir`` is the ``fastnn/`` of a source checkout (setup.py beside it)."""
    root = Path(package_dir).parent
    return (root / "setup.py").is_file() and (root / "pyproject.toml").is_file()


def shadowed_install(package_dir: Path = PACKAGE_DIR, path=None, finders=None) -> Path | None:
    """The folder of another fastnn that ``package_dir`` hides, or None.

    Only when ``package_dir`` is a source folder without its built extensions:
    then the ``fastnn`` that would be imported from another folder -- the first
    found on ``path`` (default ``sys.path``, the source folder left out), else
    by the other ``finders`` (default ``sys.meta_path``: an editable install's
    finder).
    """
    package_dir = Path(package_dir).resolve()
    if has_built_extensions(package_dir) or not is_source_folder(package_dir):
        return None
    root = package_dir.parent
    entries = []
    for entry in sys.path if path is None else path:
        try:
            if Path(entry or os.getcwd()).resolve() != root:
                entries.append(entry)
        except (OSError, RuntimeError, TypeError):
            continue
    candidates = [lambda: PathFinder.find_spec("fastnn", entries)]
    for finder in sys.meta_path if finders is None else finders:
        if finder is not PathFinder and hasattr(finder, "find_spec"):
            candidates.append(lambda finder=finder: finder.find_spec("fastnn", None))
    for find in candidates:
        try:
            spec = find()
        except Exception:  # noqa: BLE001 - a third-party finder must not break the import
            continue
        origin = getattr(spec, "origin", None)
        if not origin or not origin.endswith("__init__.py"):
            continue
        other = Path(origin).resolve().parent
        if other != package_dir:
            return other
    return None


def shadowing_message(other: Path, package_dir: Path = PACKAGE_DIR) -> str:
    root = Path(package_dir).resolve().parent
    return (f"fastnn: you are running from the source folder {root}: its fastnn/ hides the fastnn "
            f"installed at {other}, and has no built Cython kernels, so the slower numba or numpy "
            f"backend is used. Run from another folder, or `pip install -e .` in {root} to build "
            f"the kernels there.")


def warn_if_shadowing() -> None:
    """Warn (RuntimeWarning) when ``import fastnn`` is a source folder hiding an installed fastnn."""
    try:
        other = shadowed_install()
    except Exception:  # noqa: BLE001 - a diagnostic must never break the import
        return
    if other is not None:
        import warnings

        warnings.warn(shadowing_message(other), RuntimeWarning, stacklevel=3)

"""Kernel backends: ``available()`` lists those that work on this machine."""
from ._kernels import BACKEND_MODULES, available, resolve

__all__ = ["available", "names", "resolve"]


def names() -> list[str]:
    """Every backend fastnn knows, available here or not."""
    return list(BACKEND_MODULES)

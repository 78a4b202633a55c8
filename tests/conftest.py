import os
from pathlib import Path

import numpy as np
import pytest

# The suite trains hundreds of model shapes: the Numba backend compiles one loop
# for all of them rather than one per model (tests/test_numba_backend.py holds the
# per-model loops to it).  Set before fastnn is imported; subprocesses inherit it.
os.environ.setdefault("FASTNN_NUMBA_SPECIALIZE", "0")

import fastnn as fn  # noqa: E402

AVAILABLE = fn.backends.available()


@pytest.fixture(params=AVAILABLE)
def backend(request):
    """Every backend that is available here (CI builds all of them)."""
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def shared_data():
    """The folder of real data sets named by FASTNN_DATA (the test skips without it)."""
    path = os.environ.get("FASTNN_DATA")
    if not path or not Path(path).is_dir():
        pytest.skip(f"no data folder: set FASTNN_DATA to a folder of real data sets (got {path!r})")
    return Path(path)


def pytest_report_header(config):
    return f"fastnn backends available: {AVAILABLE}"

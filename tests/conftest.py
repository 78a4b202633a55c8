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
    """The folder of real data sets (FASTNN_DATA, else ../shared/data beside the repo)."""
    path = os.environ.get("FASTNN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    if not Path(path).is_dir():
        pytest.skip(f"no data folder at {path} (set FASTNN_DATA)")
    return Path(path)


def pytest_report_header(config):
    return f"fastnn backends available: {AVAILABLE}"

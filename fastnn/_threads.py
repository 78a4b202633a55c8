"""One knob for every thread pool fastnn uses.

``set_num_threads(n)`` limits the BLAS pools (NumPy's and SciPy's OpenBLAS,
through threadpoolctl), OpenMP, Numba's pool (if Numba is loaded) and the
thread count that fastnn's own compiled kernels use, all together, so they
never multiply into more threads than cores (OpenMP loops next to a busy
BLAS pool run many times slower: ``docs/performance.md``, "BLAS and OpenMP
thread pools").
"""
from __future__ import annotations

import os
import sys

_num_threads: int | None = None
_limits = None


def default_num_threads() -> int:
    """Cores available to this process (respects CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """The thread count fastnn's kernels use (default: every available core)."""
    return _num_threads if _num_threads is not None else default_num_threads()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in fastnn's kernels and in every BLAS/OpenMP/Numba pool.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.
    """
    global _num_threads, _limits
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive integer number of threads, got {n!r}")
    from threadpoolctl import threadpool_limits

    _num_threads = n
    numba = sys.modules.get("numba")
    if numba is not None:  # first: Numba's OpenMP layer resets the OpenMP count
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    _limits = threadpool_limits(limits=n)  # stays in force until changed again


def reapply_limits() -> None:
    """Apply the last ``set_num_threads`` to pools loaded since (new backends)."""
    if _num_threads is not None:
        set_num_threads(_num_threads)

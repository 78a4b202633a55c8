"""Python threads that run the Numba kernels' serial, ``nogil`` loops side by side.

``predict_rows`` and ``train_batches`` split their work across threads this way
rather than with ``prange``, whose parallel compilation alone took seconds of a
first call on an empty cache (``docs/performance.md``, "Numba: compiling once
per model").  Each has a pool of its own, so that a training call never waits
for a predict's threads (its threads would then wait at their barriers).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from numba import config

_pools = {}  # name -> (pid, size, executor)
_lock = threading.Lock()


def workers(name, needed):
    """The process's pool ``name`` with at least ``needed`` threads (and at least
    ``NUMBA_NUM_THREADS - 1``), started on demand and idle between calls; a new
    one in a forked child, whose copy has no threads."""
    with _lock:
        found = _pools.get(name)
        if found is None or found[0] != os.getpid() or found[1] < needed:
            if found is not None and found[0] == os.getpid():
                found[2].shutdown(wait=False)  # its threads end once idle
            size = max(needed, config.NUMBA_NUM_THREADS - 1, 1)
            found = _pools[name] = (os.getpid(), size,
                                    ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"fastnn-{name}"))
        return found[2]


def wait_all(futures):
    """Wait for every worker, through Ctrl+C too: they write into arrays that the
    caller's next step reads.  An interrupt that arrives while waiting is raised
    once they are done."""
    interrupted = None
    while True:
        try:
            wait(futures)
            break
        except KeyboardInterrupt as error:
            interrupted = error
    if interrupted is not None:
        raise interrupted

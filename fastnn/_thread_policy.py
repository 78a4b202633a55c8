"""BLAS threads or one thread, chosen from measured step times, per ``fit``.

The NumPy and Numba training loops run their products in BLAS, whose pool
threads spin while they wait for a core.  On a busy machine (a test suite in
another terminal, a Dask worker beside others) those threads wait on cores
that other processes hold and every call gets several times slower than one
thread would be (``docs/performance.md``, "Threads and busy machines").
``ThreadChoice`` watches the time per batch of each ``train_batches`` call
(``CompiledLoop`` makes one call per ~0.1 s of work) and, when there is a
reason to doubt the threads -- other processes' load on the cores, or two calls
in a row slower than the best one so far -- runs the next call
with BLAS held at one thread and keeps whichever was faster.  A probe that
loses doubles the wait before the next one, so a quiet machine pays almost
nothing.  The limit holds only for the duration of a call (threadpoolctl
restores the pools after it): nothing carries over to the next ``fit``, to
``predict`` or to other code in the process.

The Cython loop has its own policy inside its parallel region (it measures
its threads' waits at barriers) and does not use this one.
"""
from __future__ import annotations

import contextlib
import os

from ._threads import get_num_threads

_controller = None


def _blas_limit(n):
    """A context that holds every loaded BLAS at ``n`` threads and restores it after."""
    global _controller
    from threadpoolctl import ThreadpoolController

    if _controller is None:  # finding the loaded libraries costs milliseconds: once per process
        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


def _load_average() -> float:
    """The machine's 1-minute load average (runnable threads, this process's included)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average on this platform
        return 0.0


class ThreadChoice:
    """Which of two settings -- BLAS's own threads (``threads``) or one thread
    (``one``) -- runs the next call, from the seconds per batch of the calls so far.

    Use: ``with choice.limit(): run a call``, then ``choice.record(seconds_per_batch)``.
    """

    SLOWER = 1.3  # two calls in a row this much slower than the best of their setting: a reason to probe
    BETTER = 0.8  # a probe must be this much faster than the recent calls to win
    BUSY = 0.5  # other processes' load per core from which the threads are in doubt
    FIRST_WAIT, MAX_WAIT = 8, 256  # calls between a probe and the next; doubles while probes lose

    def __init__(self, threads: int | None = None, load=_load_average, limit=_blas_limit):
        self.threads = get_num_threads() if threads is None else threads
        self.enabled = self.threads > 1
        self._load, self._limit = load, limit
        self.current = "threads"
        self.best = {"threads": None, "one": None}  # fastest seconds per batch seen in each setting
        self.recent = []  # seconds per batch of the current setting's last two calls
        self.probing = False
        self.wait = 0  # calls to wait before the next probe may start
        self.backoff = self.FIRST_WAIT
        self.probes = self.switches = 0  # for tests and curious users

    @property
    def setting(self) -> str:
        """The setting of the next call: the current one, or the other one while probing."""
        if not self.probing:
            return self.current
        return "one" if self.current == "threads" else "threads"

    def limit(self):
        """A context for the next call: BLAS held at one thread when that is its setting."""
        if self.enabled and self.setting == "one":
            return self._limit(1)
        return contextlib.nullcontext()

    def record(self, seconds_per_batch: float) -> None:
        """The seconds per batch of the call just made; decides the next call's setting."""
        if not self.enabled:
            return
        setting = self.setting
        best = self.best[setting]
        self.best[setting] = seconds_per_batch if best is None else min(best, seconds_per_batch)
        if self.probing:
            self.probing = False
            # against the better of the current setting's last two calls, so that one
            # slow call (noise) cannot make a slower setting look faster
            if seconds_per_batch < self.BETTER * min(self.recent):
                self.current = setting
                self.recent = [seconds_per_batch]
                self.switches += 1
                self.backoff = self.FIRST_WAIT
            else:
                self.backoff = min(2 * self.backoff, self.MAX_WAIT)
            self.wait = self.backoff
            return
        self.recent = self.recent[-1:] + [seconds_per_batch]
        if self.wait > 0:
            self.wait -= 1
            return
        if self._doubt():
            self.probing = True
            self.probes += 1

    def _doubt(self) -> bool:
        """A reason to try the other setting.  On one thread: always, once the wait is
        over (the machine may be free again).  On the threads: other processes keep
        the cores busy (the load average less this process's own threads), or the
        last two calls were slower than the best so far (the load changed)."""
        if self.current == "one":
            return True
        if (self._load() - self.threads) / self.threads >= self.BUSY:
            return True
        return len(self.recent) == 2 and min(self.recent) > self.SLOWER * self.best["threads"]

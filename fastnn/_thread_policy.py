"""BLAS threads or one thread, chosen from measured step times, per ``fit``.

The NumPy and Numba training loops run their products in BLAS, whose pool
threads spin while they wait for a core.  On a busy machine (a test suite in
another terminal, a Dask worker beside others) those threads wait on cores
that other processes hold and every call gets several times slower than one
thread would be (``docs/performance.md``, "Threads and busy machines").
``ThreadChoice`` watches the time per batch of each ``train_batches`` call
(``CompiledLoop`` makes one call per ~0.1 s of work) and, when there is a
reason to doubt the threads -- other processes' threads waiting for the cores
(the run queue, ``/proc/loadavg``), two calls in a row slower than the best
one so far, or once after the first second of training -- runs the next call
with BLAS held at one thread and keeps whichever was faster (the run queue is
read at most once per ``LOOK_SECONDS`` of calls: in the first call after the
process slept a read costs about 50 us, a few per cent of a small model's
epoch).  A probe that loses doubles the wait before the next one, so a quiet
machine pays almost nothing.  Once on one thread, it tries the threads again only when the run
queue shows free cores for them (or after the longest wait): on a busy machine
a probe of the threads is the expensive one, each of its calls several times
slower than one thread.  A fit starts on one thread when the run queue leaves
no core free for its threads.  The limit holds only for the duration of a call
(threadpoolctl restores the pools after it): nothing carries over to the next
``fit``, to ``predict`` or to other code in the process.  The one thing fits
share is when a call on the threads last ended: for about 0.1 s after it, BLAS's
pool still spins and shows in the run queue as this process's own threads, not
as a crowd.

For the Numba loop "the threads" are its own batch split across threads
where the batches are large enough (and BLAS's threads below that);
``CompiledLoop`` passes the setting as ``TrainingPlan.threads``.  The Cython
loop has its own policy inside its parallel region (it measures its threads'
waits at barriers and its time per batch against one thread's) and does not
use this one.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time

from ._kernels import blas_threads
from ._threads import get_num_threads

_lock = threading.Lock()
# When a fit's call on BLAS's threads last ended (time.monotonic()): for a while
# after it the pool's threads still spin, and the run queue counts them as running.
_threads_ended = float("-inf")
SPIN_SECONDS = 0.2  # OpenBLAS's threads spin for about 0.1 s after a call before they sleep
# OpenBLAS runs a product of at most this many multiply-adds on one thread whatever its
# thread count (its interface/gemm.c: 65536 x GEMM_MULTITHREAD_THRESHOLD, 4 by default).
# Holding BLAS at one thread around calls whose products are all this small changes
# nothing but costs the hold: about 25 us, 200 us in the first call after the process
# slept (threadpoolctl's calls into each loaded BLAS), 15 % of a small model's epoch.
BLAS_ONE_THREAD_MACS = 4 * 65536


def _blas_limit(n=1):
    """BLAS held at one thread for a ``with`` block, counted process-wide (see
    ``fastnn._kernels.blas_threads``: predict_rows takes the same hold)."""
    if n != 1:
        raise ValueError(f"_blas_limit: only one thread is supported, got {n}")
    return blas_threads.one_thread()


_loadavg = None  # a descriptor of /proc/loadavg, kept open: pread costs ~2 us, open + read ~20


def _runnable() -> float:
    """Threads running or waiting for a core on the whole machine right now, this
    one included (Linux: ``/proc/loadavg``); elsewhere the 1-minute load average."""
    global _loadavg
    try:
        if _loadavg is None:
            with _lock:
                if _loadavg is None:
                    _loadavg = os.open("/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC)
        return float(os.pread(_loadavg, 128, 0).split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError, AttributeError):  # AttributeError: no os.pread
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):  # pragma: no cover - no load figure on this platform
            return 0.0


class ThreadChoice:
    """Which of two settings -- BLAS's own threads (``threads``) or one thread
    (``one``) -- runs the next call, from the seconds per batch of the calls so far.

    Use: ``with choice.limit(): run a call``, then ``choice.record(seconds_per_batch)``.
    """

    SLOWER = 1.3  # two calls in a row this much slower than the best of their setting: a reason to probe
    # a probe must be this much faster than the recent calls to win: one thread by a clear
    # margin, the threads (the default, and the setting of a quiet machine) by a little
    BETTER = {"one": 0.8, "threads": 0.95}
    BUSY = 0.5  # other processes' runnable threads per core of the machine from which the threads are in doubt
    FIRST_WAIT, MAX_WAIT = 8, 256  # calls between a probe and the next; doubles while probes lose
    # (on one thread, while the run queue shows no free cores for the threads, they are
    # tried again only after MAX_WAIT calls)
    CHECK_AFTER = 1.0  # seconds of training after which one probe is made anyway
    PROBE_CALLS = 2  # a probe's calls; only the last is judged (the first pays for the switch)
    # Seconds of calls between two looks at the run queue.  A look costs about 2 us, but
    # 50 us in the first call after the process slept (measured in a 2-core VM), and a fit of
    # a few ms (a small model trained between requests) would pay that at every call.
    LOOK_SECONDS = 0.01

    def __init__(self, threads: int | None = None, load=None, limit=None, cores: int | None = None,
                 product_macs: float = float("inf")):
        self.threads = get_num_threads() if threads is None else threads
        # the largest product of a call, in multiply-adds: BLAS runs it on one thread anyway
        # at or below BLAS_ONE_THREAD_MACS, and then "one" needs no hold on BLAS
        self.holds_blas = product_macs > BLAS_ONE_THREAD_MACS
        # The run queue counts the whole machine's threads, so it is weighed against
        # the whole machine's cores, not the ones this process may use: pinned to two
        # cores of sixteen, six threads on the other cores are no crowd here.
        self.cores = max(self.threads, cores if cores is not None else os.cpu_count() or 1)
        self.enabled = self.threads > 1
        self._load = load if load is not None else _runnable
        self._limit = limit if limit is not None else _blas_limit
        # A fit starts on one thread when the threads would not find a free core: on a
        # busy machine its first calls on the threads would cost several times more.
        # This process runs one thread now, or all of them while BLAS's pool still
        # spins after an earlier fit's call on the threads.
        spinning = time.monotonic() - _threads_ended < SPIN_SECONDS
        own = self.threads if spinning else 1
        self.current = "one" if self.enabled and self._waits_for_cores(own) else "threads"
        self.best = {"threads": None, "one": None}  # fastest seconds per batch seen in each setting
        self.recent = []  # seconds per batch of the current setting's last two calls
        self.crowded = []  # whether other threads wanted the cores, at the last two calls
        self.idle = 0  # calls on one thread without a probe, once the wait was over
        self.probing = 0  # calls of the probe still to make
        self.calls = 0
        self.wait = 0  # calls to wait before the next probe may start
        self.backoff = self.FIRST_WAIT
        self.trained = 0.0  # seconds of calls so far
        self.looked = 0.0  # self.trained at the last look at the run queue (the one above)
        self.checked = False  # the one probe after CHECK_AFTER seconds was made
        self.probes = self.switches = 0  # for tests and curious users

    @property
    def setting(self) -> str:
        """The setting of the next call: the current one, or the other one while probing."""
        if not self.probing:
            return self.current
        return "one" if self.current == "threads" else "threads"

    def limit(self):
        """A context for the next call: BLAS held at one thread when that is its setting
        (and the calls' products are large enough for BLAS's threads)."""
        if self.enabled and self.setting == "one" and self.holds_blas:
            return self._limit(1)
        return contextlib.nullcontext()

    def record(self, seconds_per_batch: float, seconds: float = 0.0) -> None:
        """The seconds per batch of the call just made (and its ``seconds`` in all);
        decides the next call's setting."""
        global _threads_ended
        if not self.enabled:
            return
        self.trained += seconds
        self.calls += 1
        setting = self.setting
        if setting == "threads":
            _threads_ended = time.monotonic()
        if self.calls == 1:
            return  # a fit's first, short call (caches, pools waking) is no reference
        best = self.best[setting]
        self.best[setting] = seconds_per_batch if best is None else min(best, seconds_per_batch)
        if self.probing:
            self.probing -= 1
            if self.probing:
                return  # the probe's first call: the other pool still settles
            # against the mean of the current setting's last two calls, with a margin
            # so that noise cannot make a slower setting look faster
            if seconds_per_batch < self.BETTER[setting] * sum(self.recent) / len(self.recent):
                self.current = setting
                self.recent = [seconds_per_batch]
                self.crowded = []
                self.switches += 1
                self.backoff = self.FIRST_WAIT
            else:
                self.backoff = min(2 * self.backoff, self.MAX_WAIT)
            self.wait = self.backoff
            return
        self.recent = self.recent[-1:] + [seconds_per_batch]
        # (the check after the first second is for the threads: on one thread the wait holds)
        if self.wait > 0 and (self.checked or self.current == "one" or self.trained < self.CHECK_AFTER):
            self.wait -= 1
            return
        if self._doubt():
            self.probing = self.PROBE_CALLS
            self.probes += 1

    def _waits_for_cores(self, own: int) -> bool:
        """Whether the threads would wait for a core: the machine's runnable threads
        less this process's ``own``, plus the threads, exceed the cores."""
        return self._load() - own + self.threads > self.cores

    def _doubt(self) -> bool:
        """A reason to try the other setting.  On one thread: the run queue shows free
        cores for the threads (at two looks in a row: the machine may be free again),
        or MAX_WAIT calls went by without a probe.  On the threads: other processes
        want the cores (the machine's runnable threads less this process's own, at two
        looks in a row), or the last two calls were slower than the best so far.  The
        run queue is read at most once per LOOK_SECONDS of calls."""
        look = self.trained - self.looked >= self.LOOK_SECONDS
        if look:
            self.looked = self.trained
        if self.current == "one":
            self.idle += 1
            if look:  # this process runs one thread now, its caller's
                self.crowded = self.crowded[-1:] + [self._waits_for_cores(own=1)]
            if (look and self.crowded == [False, False]) or self.idle >= self.MAX_WAIT:
                self.idle = 0
                return True
            return False
        # runnable threads beyond this process's own (its caller and BLAS threads still
        # spinning after the call), seen at two looks in a row: one look can catch a
        # passing process
        if look:
            others = self._load() - self.threads
            self.crowded = self.crowded[-1:] + [others / self.cores >= self.BUSY]
            if self.crowded == [True, True]:
                return True
        if not self.checked and self.trained >= self.CHECK_AFTER:
            # a machine busy since before this fit shows neither in the run queue's
            # samples nor as a slowdown: one probe, once the fit is long enough that
            # a lost one costs at most a few per cent
            self.checked = True
            return True
        return len(self.recent) == 2 and min(self.recent) > self.SLOWER * self.best["threads"]

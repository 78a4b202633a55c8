"""Facts about the machine, first-call latency and peak memory.

Latency and memory are measured in fresh Python subprocesses, one per
backend, because both depend on what a process has already imported,
compiled and allocated.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata

from . import BENCHMARKS

SUBPROCESS_TIMEOUT = 900


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None where unknown."""
    cores, package = set(), "0"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    package = value.strip()
                elif key.strip() == "core id":
                    cores.add((package, value.strip()))
    except OSError:
        return None
    return len(cores) or None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isdir(os.path.join(root, ".git")):
        return None
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + (" with uncommitted changes" if dirty else "")) or None


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_facts() -> dict:
    """The thread pools loaded in this process (threadpoolctl) and Numba's thread count."""
    facts = {"thread_env": {key: os.environ[key] for key in THREAD_VARIABLES if key in os.environ}}
    try:
        from threadpoolctl import threadpool_info

        facts["threadpools"] = [
            {"api": info.get("internal_api"), "version": info.get("version"),
             "threads": info.get("num_threads"), "library": os.path.basename(info.get("filepath", "")),
             "architecture": info.get("architecture")}
            for info in threadpool_info()
        ]
    except ImportError:
        facts["threadpools"] = []
    if "numba" in sys.modules:
        import numba

        facts["numba_threads"] = numba.get_num_threads()
    return facts


def machine_facts(backends: list[str]) -> dict:
    """CPU, threads, BLAS libraries (threadpoolctl) and library versions of this process.

    Call after the backends are loaded: the thread pools listed are those
    loaded at that point (NumPy's and SciPy's OpenBLAS, OpenMP).
    """
    import fastnn

    facts = {
        "cpu": cpu_model(),
        "avx512": "avx512f" in _cpu_flags(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "backends": backends,
        "unavailable": {name: fastnn._kernels._failed.get(name, "not available")
                        for name in fastnn.backends.names() if name not in fastnn.backends.available()},
        "fastnn": fastnn.__version__,
        "commit": _git_commit(),
        "versions": {dist: _version(dist) for dist in
                     ("numpy", "scipy", "numba", "llvmlite", "Cython", "threadpoolctl", "pytest-benchmark",
                      "matplotlib")},
    }
    facts.update(thread_facts())
    if "cython" in backends:
        from fastnn._kernels.cython._blas import openmp_enabled

        facts["cython_openmp"] = bool(openmp_enabled())
    return facts


# ------------------------------------------------------------ subprocesses
# Runs in a fresh interpreter: nothing of fastnn may be imported before t0.
_LATENCY_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import fastnn
t1 = time.perf_counter()
fastnn._kernels.load(sys.argv[1])
t2 = time.perf_counter()
import numpy as np
from harness.cases import WORKLOADS
w = WORKLOADS[sys.argv[2]]
rng = np.random.default_rng(0)
X = rng.random((2 * w.batch_size, w.widths[0]), dtype=np.float32)
y = rng.integers(0, w.widths[-1], 2 * w.batch_size)
t3 = time.perf_counter()
model = w.build(sys.argv[1], "float32")
model.fit(X, y, epochs=1, batch_size=w.batch_size, verbose=0)
t4 = time.perf_counter()
model.fit(X, y, epochs=1, batch_size=w.batch_size, verbose=0)
t5 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "backend": t2 - t1, "first_step": t4 - t3, "next_step": t5 - t4}))
"""

_MEMORY_SCRIPT = r"""
import json, sys
from harness.cases import WORKLOADS, TrainingRun
from fastnn.callbacks import Callback

def status_bytes(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None

def reset_peak():  # resets VmHWM (Linux >= 4.0); False where that is not possible
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

class EpochMemory(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.before = status_bytes("VmRSS")
        self.reset = reset_peak()
    def on_epoch_end(self, epoch, logs=None):
        self.peak = status_bytes("VmHWM") if self.reset else None

def max_rss():  # getrusage's peak; resetting VmHWM resets it too, so read it before each reset
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

probe = EpochMemory()
run = TrainingRun(WORKLOADS[sys.argv[2]], sys.argv[1], "float32", int(sys.argv[3]), callbacks=[probe])
run.warm_up()
process_peak = max_rss()
before_fit = status_bytes("VmRSS")
reset = reset_peak()
run()
fit_peak = status_bytes("VmHWM") if reset else None
if process_peak is not None:
    process_peak = max(process_peak, max_rss())
print(json.dumps({"rss_before": before_fit, "epoch_before": probe.before, "epoch_peak": probe.peak,
                  "fit_peak": fit_peak, "process_peak": process_peak, "epoch_seconds": run.epoch_seconds[-1]}))
"""


def child_env(env_extra: dict | None = None) -> dict:
    """The environment of a benchmark subprocess: this one's, plus ``env_extra``, with ``benchmarks/``
    (for ``harness``) and the checkout holding it (for its ``fastnn``) first on ``PYTHONPATH``."""
    env = dict(os.environ, **(env_extra or {}))
    paths = (str(BENCHMARKS), str(BENCHMARKS.parent), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return env


def run_child(script: str, args: list[str], env_extra: dict | None = None) -> dict:
    """Run ``python -c script *args`` in a fresh process; the JSON of its last line of output.

    Raises ``RuntimeError`` with the end of its standard error if it fails.
    """
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env=child_env(env_extra), timeout=SUBPROCESS_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess {args} failed (exit status {proc.returncode}):\n"
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def first_call_latency(backend: str, workload: str = "mnist128", env: dict | None = None) -> dict:
    """Import time and first ``fit`` step of ``backend`` in fresh processes.

    ``{"cold": {...}, "warm": {...}}``; cold runs with an empty Numba cache
    (a new ``NUMBA_CACHE_DIR``), warm runs again with the cache the cold run
    filled.  Each holds seconds for ``import`` (``import fastnn``), ``backend``
    (loading the backend module), ``first_step`` (building the model and
    the first ``fit`` call on two batches, compilation included) and
    ``next_step`` (the same call again).  ``env`` adds environment variables.
    """
    with tempfile.TemporaryDirectory(prefix="fastnn-numba-cache-") as cache_dir:
        env = dict(env or {}, NUMBA_CACHE_DIR=cache_dir)
        cold = run_child(_LATENCY_SCRIPT, [backend, workload], env)
        warm = run_child(_LATENCY_SCRIPT, [backend, workload], env)
    return {"cold": cold, "warm": warm}


def epoch_memory(backend: str, rows: int, workload: str = "mnist128", env: dict | None = None) -> dict:
    """Resident memory around one training epoch of ``workload`` in a fresh process (bytes).

    ``rss_before``: before the ``fit(epochs=1)`` call (data loaded, model
    built and warmed up); ``fit_peak``: the peak during that call, input
    checks included; ``epoch_before`` and ``epoch_peak``: the same around the
    epoch alone (``on_epoch_begin`` to ``on_epoch_end``); ``process_peak``:
    the process's peak from ``resource.getrusage`` (data loading and
    compilation included).  Peaks are Linux's VmHWM after resetting it, None
    where that is not possible.
    ``env`` adds environment variables.
    """
    return run_child(_MEMORY_SCRIPT, [backend, workload, str(rows)], env)

"""The busy-machine check: fastnn's epoch beside CPU-bound processes, with its default threads and with one.

Pool threads that spin while another process holds their core can make a
training run many times slower than one thread would be
(``docs/performance.md``, "Threads and busy machines").  ``measure`` starts
1, then 3 processes that only spin (``cpu_load``), and beside them times the
mnist128 and small-batch-32 epochs of each backend in fresh processes: once
with fastnn's default thread count and once after ``fastnn.set_num_threads(1)``.
The target is a default epoch at most ``TARGET`` times the one-thread epoch.

``python benchmarks/report.py --busy`` runs it (off unless asked for, also in
``--quick``, where it times 2,048 rows).  The spinning processes are killed
when the check ends, also on an error or Ctrl+C, and end on their own if the
process that started them dies.
"""
from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys

from . import probes
from .tables import fmt, fmt_seconds, table

LOADS = (1, 3)  # CPU-bound processes beside the measured one
WORKLOADS = ("mnist128", "small-batch-32")
TARGET = 1.15  # default-threads epoch over one-thread epoch, at most
ROUNDS = 3  # timed epochs per process, after a warm-up

# Spins until killed, or until its parent is gone (then it has been re-parented).
_SPIN = ("import os\n"
         "parent = os.getppid()\n"
         "while os.getppid() == parent:\n"
         "    for _ in range(1_000_000):\n"
         "        pass\n")


@contextlib.contextmanager
def cpu_load(n: int):
    """Run ``n`` CPU-bound Python processes for the duration of the ``with`` block; yields their ``Popen``s."""
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


_EPOCH_SCRIPT = r"""
import json, sys
import fastnn
from harness.cases import WORKLOADS, TrainingRun
workload, backend, rows, threads, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
run = TrainingRun(WORKLOADS[workload], backend, "float32", rows)
if threads == "one":
    fastnn.set_num_threads(1)
run.warm_up()
for _ in range(rounds):
    run.reset()
    run()
print(json.dumps({"epoch_seconds": run.epoch_seconds, "threads": fastnn.get_num_threads()}))
"""


def epoch_seconds(workload: str, backend: str, rows: int, one_thread: bool, rounds: int = ROUNDS,
                  env: dict | None = None) -> dict:
    """``{"epoch_seconds": [...], "threads": n}``: ``rounds`` epochs of ``workload`` in a fresh process."""
    return probes.run_child(_EPOCH_SCRIPT, [workload, backend, str(rows), "one" if one_thread else "default",
                                            str(rounds)], env)


def measure(backends, rows: int, env: dict | None = None, loads=LOADS, workloads=WORKLOADS, rounds=ROUNDS,
            epochs=epoch_seconds, load=cpu_load) -> list[dict]:
    """One dict per (load, workload, backend): ``load``, ``workload``, ``backend``, and ``default`` and
    ``one_thread`` (``epoch_seconds``'s results), or ``error`` if a measuring process failed."""
    out = []
    for n in loads:
        with load(n):
            for workload in workloads:
                for backend in backends:
                    print(f"busy machine: {workload}, {backend}, {n} busy process(es) beside ...", flush=True)
                    row = {"load": n, "workload": workload, "backend": backend}
                    try:
                        row["default"] = epochs(workload, backend, rows, False, rounds, env)
                        row["one_thread"] = epochs(workload, backend, rows, True, rounds, env)
                    except (RuntimeError, subprocess.SubprocessError) as exc:
                        row["error"] = str(exc).splitlines()[0]
                    out.append(row)
    return out


def failures(rows: list[dict]) -> list[str]:
    return [f"the busy-machine check of {r['backend']} on {r['workload']} ({r['load']} busy) failed: {r['error']}"
            for r in rows if "error" in r]


def render(rows: list[dict] | None, n_rows: int) -> list[str]:
    """The "Busy machine" section from ``measure``'s result; [] if it did not run."""
    if not rows:
        return []
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["workload"], r["load"], r["backend"], "failed", "failed", "—", f"≤ {TARGET}", "—"])
            continue
        default = statistics.median(r["default"]["epoch_seconds"])
        one = statistics.median(r["one_thread"]["epoch_seconds"])
        ratio = default / one
        lines.append([r["workload"], r["load"], r["backend"],
                      f"{fmt_seconds(default)} ({r['default']['threads']} threads)", fmt_seconds(one),
                      fmt(ratio, "{:.2f}"), f"≤ {TARGET}", "yes" if ratio <= TARGET else "**no**"])
    intro = (f"Each row: a fresh process times {ROUNDS} epochs of {n_rows:,} float32 rows after a warm-up "
             "(median shown) while that many CPU-bound processes (`while True: pass`) run beside it, once with "
             "fastnn's default thread count and once after `fastnn.set_num_threads(1)`. The target: the "
             f"default at most {TARGET}× the one-thread epoch, so that a busy machine never makes the default "
             "much slower than one thread.")
    headers = ["workload", "busy processes", "backend", "default threads", "one thread", "default ÷ one thread",
               "target", "met"]
    return ["## Busy machine", "", intro, ""] + table(headers, lines)

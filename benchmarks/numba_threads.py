"""The Numba training loop's batch split against its other thread settings, in one process.

    python benchmarks/numba_threads.py                  # mnist128, tiny and wide, 5 rounds
    python benchmarks/numba_threads.py wide --rounds 3
    python benchmarks/numba_threads.py --quick          # smoke run (CI)

For each workload, one epoch of ``train_batches`` calls (50 batches each, as
``fit`` makes them, without its thread policy) in turns, per round:

* ``split``: the batch split across threads (``numba/_training.py``), BLAS on
  one thread -- what a quiet machine now runs;
* ``blas``: one thread of the loop between BLAS calls on BLAS's own threads --
  what ran before the split, and what still runs below its size;
* ``one``: one thread, BLAS held at one thread (a busy machine);
* ``cython``: the Cython loop on the same workload, for reference.

Medians over the rounds.  Each setting waits 0.3 s first: OpenBLAS's pool
threads spin for about 0.1 s after a call on them and would take the cores
from the next setting's threads.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np

from fastnn import _kernels as K
from fastnn._kernels import blas_threads
from fastnn._training import CompiledLoop
from harness.cases import TRAIN_ROWS, WORKLOADS, image_rows

CALL_BATCHES = 50


def plan_for(workload, backend, X, y):
    """A warmed-up model's ``TrainingPlan`` over all of ``X`` (no shuffling)."""
    model = workload.build(backend, "float32")
    model.fit(X[:1000], y[:1000], epochs=1, batch_size=workload.batch_size, verbose=0)
    return CompiledLoop(model, X, y, None, workload.batch_size, False, np.random.default_rng(0)).plan


def epoch(kernels, plan) -> float:
    """Seconds for one epoch of train_batches calls."""
    steps = plan.n_batches
    lrs = np.full(steps, 1e-3)
    start = time.perf_counter()
    for first in range(0, steps, CALL_BATCHES):
        count = min(CALL_BATCHES, steps - first)
        kernels.train_batches(plan, first, count, lrs[:count], 1000)
    return time.perf_counter() - start


def measure(name: str, rows: int, rounds: int) -> dict:
    from fastnn._kernels.numba import _training as numba_training

    workload = WORKLOADS[name]
    X, y = image_rows("train", "float32", rows)
    numba_plan, cython_plan = plan_for(workload, "numba", X, y), None
    try:
        cython_plan = plan_for(workload, "cython", X, y)
    except ImportError:
        pass
    flops = numba_training.MIN_PARALLEL_FLOPS

    def run(setting):
        time.sleep(0.3)
        if setting == "cython":
            return epoch(K.load("cython"), cython_plan)
        numba_plan.threads = 0 if setting != "one" else 1
        numba_training.MIN_PARALLEL_FLOPS = flops if setting == "split" else float("inf")
        try:
            with blas_threads.one_thread() if setting == "one" else contextlib.nullcontext():
                return epoch(K.load("numba"), numba_plan)
        finally:
            numba_training.MIN_PARALLEL_FLOPS = flops

    settings = ["split", "blas", "one"] + (["cython"] if cython_plan is not None else [])
    times = {s: [] for s in settings}
    for s in settings:  # warm-up round
        run(s)
    for _ in range(rounds):
        for s in settings:
            times[s].append(run(s))
    numba_plan.threads = 0
    return {s: statistics.median(t) for s, t in times.items()} | {"threads": numba_training._threads_for(numba_plan)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workloads", nargs="*", default=["mnist128", "tiny", "wide"], choices=sorted(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 1 round")
    args = parser.parse_args(argv)
    rows, rounds = (2000, 1) if args.quick else (TRAIN_ROWS, args.rounds)
    print(f"epoch of {rows:,} float32 rows, median of {rounds} rounds")
    for name in args.workloads:
        if WORKLOADS[name].regression:
            continue
        t = measure(name, rows, rounds)
        cells = ", ".join(f"{s} {t[s] * 1e3:.0f} ms" for s in ("split", "blas", "one", "cython") if s in t)
        print(f"{name} ({t['threads']} threads): {cells}; split / blas {t['split'] / t['blas']:.2f}")


if __name__ == "__main__":
    main()

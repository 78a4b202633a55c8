"""Which compiled backend trains which shape faster: the table behind ``backend="auto"``.

    python benchmarks/backend_grid.py                       # the grid below, 8,192 rows, 5 rounds
    python benchmarks/backend_grid.py --rows 20000 --rounds 7
    python benchmarks/backend_grid.py --quick               # smoke run (CI)

For each first-layer width (784-U-10, and 784-256-256-10) and batch size, a
Numba and a Cython model of the same seed train one epoch per ``fit`` call on
the same mostly-zero 784-column float32 rows (ReLU, softmax, Adam, the dense
first layer), the two in turns, each round from the same weights; the table
gives the fastest call of each and Numba over Cython (below 1: Numba faster).
Whole ``fit`` calls: what a user waits for, the loops' Python side included.

``backend="auto"`` takes Cython wherever it is built (``fastnn._kernels.resolve``);
the table is how that was decided, and what to run again on another machine
before changing it (docs/performance.md, "Which compiled backend 'auto' picks").
Numba's first ``fit`` of a model also compiles for about 8 s on an empty cache,
which no per-epoch gain of a few percent earns back in a short fit.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import fastnn as fn

SHAPES = ((64,), (256,), (1024,), (256, 256))
BATCHES = (16, 64, 256)


def data(rows: int, seed: int = 0):
    """``rows`` x 784 float32 values, 80 % zeros (MNIST-like), and 10 classes."""
    rng = np.random.default_rng(seed)
    X = (rng.random((rows, 784)) < 0.2).astype(np.float32) * rng.random((rows, 784), dtype=np.float32)
    return X, rng.integers(0, 10, rows)


def model(backend: str, hidden) -> fn.Sequential:
    layers = [fn.Dense(hidden[0], activation="relu", input_dim=784)]
    layers += [fn.Dense(units, activation="relu") for units in hidden[1:]]
    m = fn.Sequential(layers + [fn.Dense(10, activation="softmax")], backend=backend, seed=0)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


def fastest_fits(hidden, batch_size: int, X, y, rounds: int) -> dict:
    """The fastest of ``rounds`` one-epoch ``fit`` calls per backend, in turns."""
    models = {b: model(b, hidden) for b in ("numba", "cython")}
    for m in models.values():  # compiles (Numba) and warms the caches
        m.fit(X[:1024], y[:1024], epochs=1, batch_size=batch_size, verbose=0, first_layer="dense")
    start = {b: m.get_weights() for b, m in models.items()}
    seconds = {b: [] for b in models}
    for _ in range(rounds):
        for b, m in models.items():
            m.set_weights(start[b])
            t = time.perf_counter()
            m.fit(X, y, epochs=1, batch_size=batch_size, verbose=0, first_layer="dense")
            seconds[b].append(time.perf_counter() - t)
    return {b: min(v) for b, v in seconds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one small shape, 1,024 rows, 1 round")
    args = parser.parse_args(argv)
    missing = {"numba", "cython"} - set(fn.backends.available())
    if missing:
        raise SystemExit(f"backend_grid: needs both compiled backends; not available here: {sorted(missing)}")
    shapes, batches, rows, rounds = SHAPES, BATCHES, args.rows, args.rounds
    if args.quick:
        shapes, batches, rows, rounds = ((64,),), (64,), 1024, 1
    X, y = data(rows)
    print(f"one-epoch fit calls of {rows:,} float32 rows, fastest of {rounds} rounds, "
          f"{fn.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    print()
    print("| network | batch | numba | cython | numba / cython |")
    print("|---|---|---|---|---|")
    for hidden in shapes:
        for batch_size in batches:
            best = fastest_fits(hidden, batch_size, X, y, rounds)
            name = "784-" + "-".join(map(str, hidden)) + "-10"
            print(f"| {name} | {batch_size} | {best['numba'] * 1e3:.1f} ms | {best['cython'] * 1e3:.1f} ms "
                  f"| {best['numba'] / best['cython']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

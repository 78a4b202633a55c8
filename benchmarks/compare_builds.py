"""Epoch times of two builds of fastnn side by side, in one run.

    python benchmarks/compare_builds.py OLD_TREE NEW_TREE [--rows N] [--rounds R] [--dtype float64]
    python benchmarks/compare_builds.py OLD_TREE NEW_TREE --network 784-1024-10/256 [--network ...]

Each tree is a source checkout with its extensions built in place
(``python setup.py build_ext --inplace``), e.g. a ``git worktree`` of the
previous commit beside this one.  For every workload of the benchmark suite
and every backend, each round runs one subprocess per tree (alternating which
goes first) that warms up and then times ``--epochs`` epochs (``--network``: other
ReLU/softmax networks on random rows instead of the workloads); the table gives
the fastest epoch over all rounds and the median over rounds of each process's
fastest epoch, with the ratios new/old.  On a shared machine the fastest is the
steadier figure.  Only the ratios mean anything, and only within one run.

``--first-fit`` times the first ``fit`` (two batches) on an empty Numba cache
instead, the compile time: each round starts one process per tree at the same
time, so that both compile under the same load (one core each; the order of
the two starts alternates), and the table gives each tree's median CPU seconds
and the median of the rounds' differences new - old.  The backend defaults to
numba there::

    python benchmarks/compare_builds.py OLD_TREE NEW_TREE --first-fit --workloads mnist128 --rounds 8
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

WORKLOADS = {  # name: (widths, activation, optimizer, batch size, regression)
    "tiny": ((784, 16, 16, 10), "sigmoid", "sgd", 100, False),
    "mnist128": ((784, 128, 10), "relu", "adam", 128, False),
    "wide": ((784, 512, 512, 10), "relu", "adam", 256, False),
    "regression": ((13, 128, 128, 64, 1), "relu", "rmsprop", 16, True),
    "small-batch": ((784, 128, 10), "relu", "adam", 16, False),
    "small-batch-32": ((784, 128, 10), "relu", "adam", 32, False),
}

MODEL = r"""
import json, resource, sys, time
import numpy as np
import fastnn as fn
widths, act, opt, bs, regression, backend, rows, epochs, dtype = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
rows = 404 if regression else rows
X = rng.random((rows, widths[0])).astype(dtype)
y = rng.standard_normal(rows).astype(dtype) if regression else rng.integers(0, widths[-1], rows)
layers = [fn.Dense(o, activation=act, input_dim=i) for i, o in zip(widths[:-2], widths[1:-1])]
layers.append(fn.Dense(widths[-1], activation=None if regression else "softmax"))
m = fn.Sequential(layers, backend=backend, seed=0, dtype=dtype)
m.compile(optimizer=opt, loss="mse" if regression else "sparse_categorical_crossentropy")
"""

CHILD = MODEL + r"""
times = []
class T(fn.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None): times.append(time.perf_counter() - self.t)
m.fit(X, y, epochs=1, batch_size=bs, verbose=0)  # warm-up: compile, caches, denormal-free state
m.fit(X, y, epochs=epochs, batch_size=bs, verbose=0, callbacks=[T()])
print(json.dumps(min(times)))
"""

# The first fit, two batches, on the cache the parent made empty: wall and CPU seconds.
FIRST_FIT = MODEL + r"""
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
wall, start = time.perf_counter(), cpu()
m.fit(X[:2 * bs], y[:2 * bs], epochs=1, batch_size=bs, verbose=0)
print(json.dumps([time.perf_counter() - wall, cpu() - start]))
"""


def epoch_time(tree, spec):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env, cwd=os.path.abspath(tree),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def first_fits(trees, spec):
    """The first fit's ``[wall, cpu]`` seconds in each of ``trees``, started at the same
    time, each on an empty Numba cache of its own."""
    with tempfile.TemporaryDirectory(prefix="fastnn-first-fit-") as tmp:
        children = []
        for i, tree in enumerate(trees):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), NUMBA_CACHE_DIR=os.path.join(tmp, str(i)))
            children.append(subprocess.Popen([sys.executable, "-c", FIRST_FIT, json.dumps(spec)], env=env,
                                             cwd=os.path.abspath(tree), stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True))
        results = []
        for child in children:
            out, err = child.communicate()
            if child.returncode != 0:
                raise subprocess.CalledProcessError(child.returncode, child.args, out, err)
            results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def network_spec(text):
    """``WIDTHS/BATCH[/OPTIMIZER]`` (``784-1024-10/256/adam``) as a ``WORKLOADS`` entry:
    ReLU hidden layers, a softmax output, Adam unless named."""
    parts = text.split("/")
    try:
        widths = tuple(int(w) for w in parts[0].split("-"))
        batch = int(parts[1])
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected WIDTHS/BATCH[/OPTIMIZER] such as "
                                         f"784-1024-10/256, got {text!r}") from None
    if len(widths) < 2 or min(widths) < 1 or batch < 1 or len(parts) > 3:
        raise argparse.ArgumentTypeError(f"expected at least two positive widths, a positive "
                                         f"batch and at most an optimizer after them, got {text!r}")
    return widths, "relu", parts[2] if len(parts) == 3 else "adam", batch, False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default=None, help="default cython,numba,numpy (--first-fit: numba)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--network", action="append", default=[], type=network_spec,
                        metavar="WIDTHS/BATCH[/OPTIMIZER]",
                        help="a ReLU/softmax network to time instead of the workloads, e.g. 784-1024-10/256")
    parser.add_argument("--first-fit", action="store_true",
                        help="time the first fit on an empty Numba cache (compilation), both trees at once")
    args = parser.parse_args(argv)
    backends = (args.backends or ("numba" if args.first_fit else "cython,numba,numpy")).split(",")
    if args.network:
        cases = {"{}/{}/{}".format("-".join(map(str, w)), b, o): (w, a, o, b, r) for w, a, o, b, r in args.network}
    else:
        unknown = sorted(set(args.workloads.split(",")) - set(WORKLOADS))
        if unknown:
            parser.error(f"argument --workloads: unknown {', '.join(unknown)}; expected some of {', '.join(WORKLOADS)}")
        cases = {name: WORKLOADS[name] for name in args.workloads.split(",")}
    if args.first_fit:
        print("| workload | backend | old, CPU s (median) | new, CPU s (median) | new - old (median of rounds) |\n"
              "|---|---|---|---|---|")
    else:
        print("| workload | backend | old, fastest (ms) | new, fastest (ms) | new / old | new / old, medians |\n"
              "|---|---|---|---|---|---|")
    for name, case in cases.items():
        for backend in backends:
            spec = [*case, backend, args.rows, args.epochs, args.dtype]
            old, new = [], []
            for r in range(args.rounds):
                if args.first_fit:  # [wall, cpu] of old and new, started in alternating order
                    pair = first_fits([args.old, args.new] if r % 2 == 0 else [args.new, args.old], spec)
                    pair = pair if r % 2 == 0 else pair[::-1]
                    old.append(pair[0][1])
                    new.append(pair[1][1])
                    continue
                order = [(args.old, old), (args.new, new)]
                for tree, results in (order if r % 2 == 0 else order[::-1]):
                    results.append(epoch_time(tree, spec))
            if args.first_fit:
                diff = statistics.median(n - o for o, n in zip(old, new))
                print(f"| {name} | {backend} | {statistics.median(old):.3f} | {statistics.median(new):.3f} "
                      f"| {diff:+.3f} |", flush=True)
                continue
            o, n = min(old), min(new)
            medians = statistics.median(new) / statistics.median(old)
            print(f"| {name} | {backend} | {o * 1e3:.1f} | {n * 1e3:.1f} | {n / o:.3f} | {medians:.3f} |", flush=True)


if __name__ == "__main__":
    main()

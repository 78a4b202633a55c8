"""Where a first Numba ``fit`` and ``predict`` spend their compile time.

Runs one 784-128-10 ReLU/softmax model (``--optimizer``, default adam) on an
empty Numba cache in this process and prints the wall time of the first ``fit``
and ``predict``, how many functions Numba compiled for each, and every
function's exclusive compile time (its own, without the functions it caused to
compile), largest first::

    python benchmarks/numba_compile_profile.py [--optimizer sgd] [--top 20] [--one-loop]

``--one-loop`` profiles the loop compiled once for every model
(``FASTNN_NUMBA_SPECIALIZE=0``) instead of the default per-model loop.

Numba times each compile through its ``numba:compile`` event; nested events
are the callees a function compiles while its types are inferred.
"""
import argparse
import collections
import os
import sys
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--one-loop", action="store_true", help="FASTNN_NUMBA_SPECIALIZE=0")
    args = parser.parse_args(argv)
    os.environ["FASTNN_NUMBA_SPECIALIZE"] = "0" if args.one_loop else "1"
    with tempfile.TemporaryDirectory(prefix="fastnn-numba-cache-") as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache  # read when numba is first imported
        if "numba" in sys.modules:
            raise SystemExit("run this in a fresh process: Numba is already imported")
        profile(args.optimizer, args.top)


def profile(optimizer, top):
    import numpy as np
    from numba.core import event

    records = []  # (function, exclusive seconds)

    class Timer(event.Listener):
        def __init__(self):
            self.stack = []  # [start, seconds spent in nested compiles]

        def on_start(self, ev):
            self.stack.append([time.perf_counter(), 0.0])

        def on_end(self, ev):
            start, nested = self.stack.pop()
            spent = time.perf_counter() - start
            if self.stack:
                self.stack[-1][1] += spent
            py_func = getattr(ev.data.get("dispatcher"), "py_func", None)
            records.append((getattr(py_func, "__qualname__", "?"), spent - nested))

    event.register("numba:compile", Timer())
    import fastnn as fn

    rng = np.random.default_rng(0)
    X = rng.random((4000, 784), dtype=np.float32)
    y = rng.integers(0, 10, len(X))
    model = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784),
                           fn.Dense(10, activation="softmax")], backend="numba", seed=0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    t0 = time.perf_counter()
    model.fit(X[:256], y[:256], epochs=1, batch_size=128, verbose=0)
    t1 = time.perf_counter()
    n_fit = len(records)
    model.predict(X)
    t2 = time.perf_counter()
    print(f"first fit {t1 - t0:.2f} s ({n_fit} functions compiled), "
          f"first predict {t2 - t1:.2f} s ({len(records) - n_fit})")
    totals = collections.defaultdict(lambda: [0, 0.0])
    for name, seconds in records:
        totals[name][0] += 1
        totals[name][1] += seconds
    print(f"{'seconds':>8}  {'times':>5}  function (exclusive compile time)")
    for name, (count, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{seconds:8.2f}  {count:5d}  {name}")


if __name__ == "__main__":
    main()

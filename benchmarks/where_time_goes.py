"""Where the time of a compiled training epoch goes, part by part.

    python benchmarks/where_time_goes.py                 # mnist128 on the Cython backend
    python benchmarks/where_time_goes.py wide --backend numba
    python benchmarks/where_time_goes.py --predict       # predict on 10,000 rows instead
    python benchmarks/where_time_goes.py --quick         # smoke run (CI)

The Cython backend splits every batch across the threads (each calling BLAS on
one thread), so one thread's share of an epoch is made of: its GEMMs (forward
and input gradients on its rows, weight gradients on its rows of dW), the
gather of its rows from memory, and the optimizer update of its share of the
parameters.  This script times each part alone, on one thread, at exactly
those shapes, and compares their sum with a measured epoch (two threads) and
with the GEMM-peak floor.  What the parts do not explain is synchronisation,
epilogues, the loss and the small layers; for the Cython backend the script
also prints the first thread's time per phase in place
(``fastnn._kernels.cython._training.phase_statistics``), where the parts
run with cold caches and wait for each other.

With ``--predict`` it does the same for ``predict`` on the test rows: the
compiled backend's threads take blocks of rows (``predict_rows``), so the
GEMMs of half the rows, timed on one thread in blocks of that size, bound
the call from below.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastnn as fn
from fastnn import _kernels as K
from harness.cases import TRAIN_ROWS, WORKLOADS, dense_flops, image_rows


def best_of(call, repeat: int) -> float:
    """Fastest of ``repeat`` timings of ``call`` (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(quick: bool) -> float:
    """float32 GEMM throughput of this machine now (numpy, square matrices, fastest of 10)."""
    n = 512 if quick else 2048
    A = np.random.default_rng(0).random((n, n), dtype=np.float32)
    return 2 * n**3 / best_of(lambda: A @ A, 10) / 1e9


def parts(workload, rows: int, threads: int, backend: str, repeat: int) -> dict:
    """Seconds per epoch of one thread's share of each part, timed on one thread."""
    widths, batch = workload.widths, workload.batch_size
    batches = -(-rows // batch)
    share = -(-batch // threads)  # batch rows per thread
    rng = np.random.default_rng(0)
    f32 = np.float32
    out = {"GEMMs": 0.0, "gather": 0.0, "optimizer update": 0.0}
    kernels = K.load(backend)
    with threadpool_limits(1):
        for layer, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            X = rng.random((batch, n_in), dtype=f32)
            W = rng.random((n_in, n_out), dtype=f32)
            dZ = rng.random((batch, n_out), dtype=f32)
            Z = np.empty((share, n_out), f32)
            dW = np.empty((-(-n_in // threads), n_out), f32)
            dX = np.empty((share, n_in), f32)
            rows_of_dW = dW.shape[0]
            # the backend's own products (the Cython backend's skip BLAS for small batches): the
            # forward without bias, as a linear layer, and the weight gradient of this thread's rows
            Xs, Ws = X[:share].copy(), W[:rows_of_dW].copy()
            Xd = np.ascontiguousarray(X[:, :rows_of_dW])
            out["GEMMs"] += best_of(lambda: kernels.dense_forward(Xs, W, None, K.LINEAR, 0.0, Z, Z), repeat)
            out["GEMMs"] += best_of(lambda: kernels.dense_backward(Xd, Ws, dZ, 0.0, dW, None, None), repeat)
            if layer > 0:
                out["GEMMs"] += best_of(lambda: np.matmul(dZ[:share], W.T, out=dX), repeat)
            p = rng.random(n_in * n_out // threads, dtype=f32)
            g, m, v = (rng.random(p.size, dtype=f32) * 1e-3 for _ in range(3))
            out["optimizer update"] += best_of(
                lambda: kernels.adam_update(p, g, 1e-3, 0.9, 0.999, 1e-7, 10, m, v), repeat)
        X, _ = image_rows("train", "float32", rows) if widths[0] == 784 else (
            rng.random((rows, widths[0]), dtype=f32), None)
        perm = rng.permutation(len(X)).astype(np.int64)
        Xb = np.empty((share, widths[0]), f32)
        gather = K.load("cython" if "cython" in K.available() else backend).gather_rows

        def gather_epoch():
            for start in range(0, len(X) - share + 1, batch):
                gather(X, perm[start:start + share], Xb)

        out["gather"] = best_of(gather_epoch, max(1, repeat // 10)) / batches
    if workload.optimizer != "adam":
        out["optimizer update"] = float("nan")  # timed as Adam: not this workload's optimizer
    return {name: seconds * batches for name, seconds in out.items()}


def measured_epoch(workload, rows: int, backend: str, epochs: int) -> tuple[float, dict]:
    """Median seconds per epoch, and (Cython) seconds per epoch of each phase of the
    first thread in place (``cython._training.phase_statistics``), else an empty dict."""
    X, y = image_rows("train", "float32", rows)
    model = workload.build(backend, "float32")
    # the dense first layer, as the suite and the peers' turns time it ("auto" would read
    # MNIST through the sparse one, a different epoch from the one being explained)
    model.fit(X[:1024], y[:1024], epochs=1, batch_size=workload.batch_size, verbose=0,
              first_layer="dense")  # compile, warm up
    times = []
    phases = None
    if backend == "cython":
        from fastnn._kernels.cython import _training as phases

        phases.phase_statistics(reset=True)

    class Timer(fn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(X, y, epochs=epochs, batch_size=workload.batch_size, verbose=0, callbacks=[Timer()],
              first_layer="dense")
    in_place = {} if phases is None else {
        name: seconds / epochs for name, seconds in phases.phase_statistics().items()}
    return float(np.median(times)), in_place


def predict_parts(workload, rows: int, backend: str, threads: int, repeat: int) -> dict:
    """Seconds of one predict call: measured on the backend and on numpy, and the GEMMs
    of 1/threads of the rows in blocks of 256 rows timed alone on one thread."""
    X, _ = image_rows("test", "float32", rows)
    model = {name: workload.build(name, "float32") for name in ("numpy", backend)}
    out = {f"predict, {name}": best_of(lambda: m.predict(X), repeat) for name, m in model.items()}
    block = 256
    Ws = [layer.W for layer in model[backend].layers]
    bufs = [np.empty((block, W.shape[1]), np.float32) for W in Ws]

    def gemms():
        for start in range(0, rows // threads, block):
            A = X[start:start + block]
            for W, Z in zip(Ws, bufs):
                A = np.matmul(A, W, out=Z[:len(A)])

    with threadpool_limits(1):
        out["GEMMs of one thread's rows"] = best_of(gemms, repeat)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", nargs="?", default="mnist128",
                        choices=[name for name, w in WORKLOADS.items() if not w.regression])
    parser.add_argument("--backend", default="cython" if "cython" in K.available() else "numba")
    parser.add_argument("--threads", type=int, default=2, help="threads the epoch is split across")
    parser.add_argument("--predict", action="store_true", help="predict on the test rows instead of an epoch")
    parser.add_argument("--quick", action="store_true", help="2,048 rows, few repeats (smoke run)")
    args = parser.parse_args(argv)
    workload = WORKLOADS[args.workload]
    rows = 2048 if args.quick else TRAIN_ROWS
    repeat = 3 if args.quick else 50
    peak = peak_gflops(args.quick)
    if args.predict:
        rows = 2000 if args.quick else 10_000
        floor = dense_flops(workload.widths, rows, backward=False) / (peak * 1e9)
        print(f"predict with {'-'.join(map(str, workload.widths))}, {rows:,} rows, float32, "
              f"{args.backend}, {args.threads} threads")
        print(f"  GEMM-peak floor ({peak:.0f} GFLOP/s): {floor * 1e3:8.2f} ms")
        for name, seconds in predict_parts(workload, rows, args.backend, args.threads, repeat).items():
            print(f"  {name:<32} {seconds * 1e3:8.2f} ms")
        return
    floor = dense_flops(workload.widths, rows) / (peak * 1e9)
    found = parts(workload, rows, args.threads, args.backend, repeat)
    epoch, in_place = measured_epoch(workload, rows, args.backend, 2 if args.quick else 5)
    print(f"{workload.label}, {rows:,} rows, float32, {args.backend}, {args.threads} threads")
    print(f"  GEMM-peak floor ({peak:.0f} GFLOP/s): {floor * 1e3:8.1f} ms")
    print(f"  measured epoch (median):         {epoch * 1e3:8.1f} ms  ({epoch / floor:.2f}x the floor)")
    print("  one thread's share, each part timed alone on one thread:")
    for name, seconds in found.items():
        if seconds != seconds:  # nan: see parts()
            print(f"    {name:<28}        — (timed for Adam only; this workload uses {workload.optimizer})")
        else:
            print(f"    {name:<28} {seconds * 1e3:8.1f} ms")
    known = sum(s for s in found.values() if s == s)
    print(f"    {'sum':<28} {known * 1e3:8.1f} ms")
    print(f"    {'the rest (sync, epilogues...)':<28} {(epoch - known) * 1e3:8.1f} ms")
    if in_place:
        print("  the first thread's phases in place (mean per epoch):")
        for name, seconds in in_place.items():
            print(f"    {name:<28} {seconds * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()

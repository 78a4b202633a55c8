"""Sparse input: epoch times of the sparse first layer against the dense path,
the dense floor and scikit-learn, in one run.

    FASTNN_DATA=/path/to/data python benchmarks/sparse_input.py [--epochs 3] [--backends cython,numba,numpy]
    python benchmarks/sparse_input.py --memory     # also the 1,000,000 x 262,144 peak-memory check (minutes)

Three parts, each printed as a Markdown table:

* **MNIST sparse** -- 784-128-10 ReLU Adam, batch 128, on the MNIST training
  images (real MNIST from ``$FASTNN_DATA/mnist`` when present, else the digits
  upscaled; 81 % of MNIST's pixels are zero): the fastest epoch with ``X`` dense
  and with ``X`` as CSR, per backend, the test accuracy of each after
  ``--epochs`` epochs, and the dense floor (the epoch's FLOPs over the float32
  GEMM peak measured in the same run).
* **Sparse text** -- a bag of hashed words (``HashingVectorizer``, 2**18
  features, < 1 % density) of generated two-topic documents: fastnn's
  ``MLPClassifier`` against scikit-learn's on the same CSR matrix, seconds per
  epoch and accuracy.
* **Memory** (``--memory``) -- the peak resident memory of one epoch on a
  1,000,000 x 262,144 CSR matrix of 0.1 % density, in a fresh process.

Only ratios within one run mean anything; the machine's load is printed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fastnn

import fastnn as fn  # noqa: E402
from harness.cases import dense_flops  # noqa: E402  (benchmarks/, this script's folder, is on sys.path)


class _Timer(fn.callbacks.Callback):
    def __init__(self):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def gemm_peak(rounds=8):
    """float32 GFLOP/s of a 2048 x 2048 product, the fastest of ``rounds``."""
    A = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    C = np.empty_like(A)
    best = min(_seconds(lambda: np.matmul(A, A, out=C)) for _ in range(rounds))
    return 2 * 2048 ** 3 / best / 1e9


def _seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def mnist():
    """(X_train, y_train, X_test, y_test, source) as float32 in [0, 1]."""
    from fastnn.datasets import load_digits, load_mnist, to_float

    try:
        (X, y), (Xt, yt) = load_mnist(download=False, progress=False)
        return to_float(X), y, to_float(Xt), yt, "MNIST"
    except (FileNotFoundError, ValueError, TypeError):
        X, y = load_digits()
        X = np.repeat(np.repeat(X.reshape(-1, 8, 8), 4, axis=1), 4, axis=2).reshape(-1, 1024)[:, :784]
        return X[:1500].astype(np.float32), y[:1500], X[1500:].astype(np.float32), y[1500:], "digits, upscaled"


def mnist_rows(args, peak):
    import scipy.sparse as sp

    X, y, Xt, yt, source = mnist()
    Xs, Xts = sp.csr_matrix(X), sp.csr_matrix(Xt)
    flops = dense_flops((784, 128, 10), X.shape[0])  # the harness's count: no input gradient for layer 1
    floor = flops / (peak * 1e9)
    print(f"\n## MNIST sparse ({source}, {X.shape[0]:,} rows, density {Xs.nnz / np.prod(X.shape):.1%})\n")
    print(f"Dense floor (FLOPs / float32 GEMM peak of {peak:.0f} GFLOP/s): {floor * 1e3:.1f} ms per epoch.\n")
    print("| backend | dense X: epoch (ms) | CSR X: epoch (ms) | CSR / dense | CSR / floor | accuracy dense | accuracy CSR |")
    print("|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        cells = {}
        for kind, (train, test) in (("dense", (X, Xt)), ("csr", (Xs, Xts))):
            model = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784, kernel_initializer="he_normal"),
                                   fn.Dense(10, activation="softmax")], backend=backend, seed=0)
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(train[:512], y[:512], epochs=1, batch_size=128, verbose=0)  # compile, warm caches
            model = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784, kernel_initializer="he_normal"),
                                   fn.Dense(10, activation="softmax")], backend=backend, seed=0)
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            timer = _Timer()
            model.fit(train, y, epochs=args.epochs, batch_size=128, verbose=0, callbacks=[timer])
            cells[kind] = min(timer.seconds), model.evaluate(test, yt)["accuracy"]
        (dense, acc_d), (csr, acc_s) = cells["dense"], cells["csr"]
        print(f"| {backend} | {dense * 1e3:.0f} | {csr * 1e3:.0f} | {csr / dense:.2f} | {csr / floor:.2f} "
              f"| {acc_d:.4f} | {acc_s:.4f} |", flush=True)


def documents(n, seed=0):
    """``n`` generated documents of two topics (overlapping vocabularies) and their labels."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    y = rng.integers(0, 2, n)
    docs = []
    for label in y:
        common = rng.integers(0, 20_000, 60)
        topical = rng.integers(0, 2_000, 20) + (label * 2_000)
        docs.append(" ".join(vocab[np.r_[common, topical]]))
    return docs, y


def text_rows(args):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.neural_network import MLPClassifier as SkMLP

    warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs is the point
    docs, y = documents(args.documents)
    X = HashingVectorizer(n_features=2 ** 18, alternate_sign=False).fit_transform(docs).astype(np.float32)
    cut = int(0.8 * X.shape[0])
    print(f"\n## Sparse text ({X.shape[0]:,} documents, {X.shape[1]:,} hashed features, "
          f"density {X.nnz / np.prod(X.shape):.3%}; 64 hidden ReLU units, Adam, batch 200)\n")
    print("| estimator | seconds per epoch | test accuracy | scikit-learn / this |")
    print("|---|---|---|---|")
    params = dict(hidden_layer_sizes=(64,), max_iter=args.epochs, batch_size=200, random_state=0,
                  tol=0.0, n_iter_no_change=args.epochs + 1)
    start = time.perf_counter()
    sk = SkMLP(**params).fit(X[:cut], y[:cut])
    sk_epoch = (time.perf_counter() - start) / sk.n_iter_
    print(f"| scikit-learn MLPClassifier | {sk_epoch:.2f} | {sk.score(X[cut:], y[cut:]):.4f} | 1.00 |", flush=True)
    for backend in args.backends.split(","):
        fn.MLPClassifier(**{**params, "max_iter": 1}, backend=backend).fit(X[:400], y[:400])  # compile
        start = time.perf_counter()
        clf = fn.MLPClassifier(**params, backend=backend).fit(X[:cut], y[:cut])
        epoch = (time.perf_counter() - start) / clf.n_iter_
        print(f"| fastnn MLPClassifier ({backend}) | {epoch:.2f} | {clf.score(X[cut:], y[cut:]):.4f} "
              f"| {sk_epoch / epoch:.1f} |", flush=True)


MEMORY = """
import sys, numpy as np, scipy.sparse as sp, fastnn as fn
n, d, per_row = 1_000_000, 2 ** 18, 262  # 0.1 % of 262,144
# row i stores columns i % 1000 + 1000 j, j < 262: sorted, distinct, built without temporaries of n * d
indices = (np.arange(per_row, dtype=np.int32) * 1000)[None, :] + (np.arange(n, dtype=np.int32) % 1000)[:, None]
X = sp.csr_matrix((np.random.default_rng(0).random(n * per_row, dtype=np.float32), indices.ravel(),
                   np.arange(0, n * per_row + 1, per_row)), shape=(n, d))
del indices
y = np.random.default_rng(1).integers(0, 2, n)
model = fn.Sequential([fn.Dense(16, activation="relu", input_dim=d), fn.Dense(2, activation="softmax")],
                      backend=sys.argv[1], seed=0)
model.compile("adam", "sparse_categorical_crossentropy")
def resident(field):
    return [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(field)][0]
before = resident("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current size
    f.write("5")
model.fit(X, y, epochs=1, batch_size=1024, verbose=0)
print(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes, before, resident("VmHWM:"))
"""


def memory_rows(args):
    print("\n## Memory: one epoch on 1,000,000 x 262,144 CSR, 0.1 % density (a dense float32 copy: 1,049 GB)\n")
    print("| backend | CSR matrix (MB) | resident before fit (MB) | peak during fit (MB) | seconds |")
    print("|---|---|---|---|---|")
    for backend in args.backends.split(","):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", MEMORY, backend], capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
        size, before, peak = map(int, out.stdout.split())
        print(f"| {backend} | {size / 1e6:,.0f} | {before / 1e6:,.0f} | {peak / 1e6:,.0f} "
              f"| {time.perf_counter() - start:.0f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backends", default=",".join(fn.backends.available()))
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--memory", action="store_true", help="also the 1,000,000-row peak-memory check")
    parser.add_argument("--parts", default="mnist,text", help="which of mnist,text to run")
    args = parser.parse_args(argv)
    print(f"# Sparse input, {time.strftime('%Y-%m-%d %H:%M')} UTC; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs; fastnn backends {args.backends}")
    parts = args.parts.split(",")
    if "mnist" in parts:
        mnist_rows(args, gemm_peak())
    if "text" in parts:
        text_rows(args)
    if args.memory:
        memory_rows(args)


if __name__ == "__main__":
    main()

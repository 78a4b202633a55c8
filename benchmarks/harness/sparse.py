"""Measurements of the sparse first layer: its data and its timing, shared by
``benchmarks/sparse_input.py`` (the MNIST table, ``--crossover``, the text case and
``--memory``) and the report (``report.py --sparse``: the text case and the memory check).

The timing is the harness's own (``cases.TrainingRun``: a warm-up fit, then
one ``fit(epochs=1)`` per epoch, each epoch timed from ``on_epoch_begin`` to
``on_epoch_end``), with ``fit``'s ``first_layer`` choosing the path.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .cases import TrainingRun, Workload
from .tables import fmt_seconds, table


def mnist_images():
    """``(X_train, y_train, X_test, y_test, source)``, float32 in [0, 1]: real MNIST
    (``$FASTNN_DATA/mnist``), else the digits upscaled to 784 pixels, which are mostly
    zero as MNIST is (random pixels would not be)."""
    from fastnn.datasets import load_digits, load_mnist, to_float

    try:
        (X, y), (Xt, yt) = load_mnist(download=False, progress=False)
        return to_float(X), y, to_float(Xt), yt, "MNIST"
    except (FileNotFoundError, ValueError, TypeError):
        X, y = load_digits()
        X = np.repeat(np.repeat(X.reshape(-1, 8, 8), 4, axis=1), 4, axis=2).reshape(-1, 1024)[:, :784]
        return X[:1500].astype(np.float32), y[:1500], X[1500:].astype(np.float32), y[1500:], "digits, upscaled"


def nonzero_share(X) -> float:
    """The share of non-zero values of a dense ``X``."""
    return np.count_nonzero(X) / X.size


def thin(X, density, seed=0):
    """A copy of ``X`` with non-zero values set to zero at random, each kept with the same
    probability, so that about ``density`` of all values stay non-zero (``X`` itself, copied,
    if it is not denser than that)."""
    keep = density / nonzero_share(X)
    if keep >= 1:
        return X.copy()
    rng = np.random.default_rng(seed)
    return np.where(rng.random(X.shape, dtype=np.float32) < keep, X, 0).astype(X.dtype)


def fastest_epochs(widths, backend, X, y, epochs, first_layers=("dense", "sparse"), dtype="float32"):
    """``{first_layer: (seconds, model)}``: the fastest of ``epochs`` epochs of a ReLU network
    of ``widths`` (softmax output, Adam, batch 128) on ``(X, y)`` for each ``fit(first_layer=...)``,
    their epochs taking turns so that a busy spell of the machine slows them alike."""
    workload = Workload("sparse", tuple(widths), "relu", "adam", 128)
    runs = {first_layer: TrainingRun(workload, backend, dtype, first_layer=first_layer, data=(X, y))
            for first_layer in first_layers}
    for run in runs.values():
        run.warm_up()
    for _ in range(epochs):
        for run in runs.values():
            run()
    return {first_layer: (min(run.epoch_seconds), run.model) for first_layer, run in runs.items()}


def crossover(densities, sparse_seconds, dense_seconds):
    """``(density, intercept, slope)``: the density at which the sparse epoch reaches
    ``dense_seconds``, on the line ``intercept + slope * density`` fitted to the sparse
    epochs measured at ``densities``.  Its work grows with the stored values, so the line
    is the model; the fit is Theil-Sen's (the median of the pairwise slopes), which a few
    epochs slowed down by other processes do not move.  None if the line never reaches it."""
    from scipy.stats import theilslopes

    slope, intercept, _, _ = theilslopes(sparse_seconds, densities)
    density = (dense_seconds - intercept) / slope if slope > 0 else None
    if density is not None and density <= 0:  # slower even with no stored value at all
        density = None
    return density, intercept, slope


# ----------------------------------------------------------------- sparse text
TEXT_FEATURES = 2 ** 18


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


def text_case(backends, n_documents=10_000, epochs=3):
    """fastnn's ``MLPClassifier`` against scikit-learn's on the same hashed bag of words
    (``HashingVectorizer``, 2**18 features), 64 hidden ReLU units, Adam, batch 200, a
    fixed number of epochs: ``{"shape", "density", "epochs", "sklearn": {...}, "fastnn":
    {backend: {...}}}``, each ``{"seconds": per epoch, fit's whole time over its epochs,
    "accuracy": on the last fifth of the documents}`` (or ``{"error": text}``)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.neural_network import MLPClassifier as SkMLP

    import fastnn as fn

    docs, y = documents(n_documents)
    X = HashingVectorizer(n_features=TEXT_FEATURES, alternate_sign=False).fit_transform(docs).astype(np.float32)
    cut = int(0.8 * X.shape[0])
    params = dict(hidden_layer_sizes=(64,), max_iter=epochs, batch_size=200, random_state=0,
                  tol=0.0, n_iter_no_change=epochs + 1)

    def timed(make):
        start = time.perf_counter()
        clf = make().fit(X[:cut], y[:cut])
        return {"seconds": (time.perf_counter() - start) / clf.n_iter_, "accuracy": clf.score(X[cut:], y[cut:])}

    out = {"shape": X.shape, "density": X.nnz / np.prod(X.shape), "epochs": epochs, "fastnn": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs is the point
        out["sklearn"] = timed(lambda: SkMLP(**params))
        for backend in backends:
            try:
                fn.MLPClassifier(**{**params, "max_iter": 1}, backend=backend).fit(X[:400], y[:400])  # compile
                out["fastnn"][backend] = timed(lambda: fn.MLPClassifier(**params, backend=backend))
            except Exception as exc:  # one backend's failure is reported, not fatal
                out["fastnn"][backend] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


# ----------------------------------------------------------------- big CSR memory
MEMORY_ROWS, MEMORY_PER_ROW = 1_000_000, 262  # 262 of 262,144 features: 0.1 %

MEMORY_SCRIPT = """
import sys, numpy as np, scipy.sparse as sp, fastnn as fn
n, d, per_row = int(sys.argv[2]), 2 ** 18, int(sys.argv[3])
# row i stores columns i % 1000 + 1000 j, j < per_row: sorted, distinct, built without temporaries of n * d
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


def memory_case(backends, rows=MEMORY_ROWS, per_row=MEMORY_PER_ROW, env=None):
    """One epoch on a ``rows x 2**18`` CSR matrix of ``per_row`` values a row, in a fresh
    process per backend (Linux: it reads /proc): ``{backend: {"csr_bytes", "before",
    "peak", "seconds"}}`` (or ``{"error": text}``), resident sizes in bytes; a dense
    copy of the matrix would need ``rows * 2**18 * 4`` bytes."""
    out = {}
    root = str(Path(__file__).resolve().parents[2])  # this checkout's fastnn
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [root, environment.get("PYTHONPATH")]))
    for backend in backends:
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, backend, str(rows), str(per_row)],
                             capture_output=True, text=True, env=environment)
        if run.returncode != 0:
            out[backend] = {"error": (run.stderr.strip().splitlines() or ["exit status %d" % run.returncode])[-1]}
            continue
        size, before, peak = map(int, run.stdout.split())
        out[backend] = {"csr_bytes": size, "before": before, "peak": peak,
                        "seconds": time.perf_counter() - start}
    return out


# ------------------------------------------------------------------ the report
def render(text, memory) -> list[str]:
    """The report's sections for ``text_case`` and ``memory_case`` results (None: not run)."""
    out = []
    if text:
        n, d = text["shape"]
        sk = text["sklearn"]
        rows = [["scikit-learn `MLPClassifier`", fmt_seconds(sk["seconds"]), f"{sk['accuracy']:.4f}", "1.00×"]]
        for backend, r in text["fastnn"].items():
            name = f"fastnn `MLPClassifier` ({backend})"
            rows.append([name, "failed", "—", "—"] if "error" in r else
                        [name, fmt_seconds(r["seconds"]), f"{r['accuracy']:.4f}", f"{sk['seconds'] / r['seconds']:.1f}×"])
        out += ["## Sparse text: fastnn against scikit-learn", "",
                f"{n:,} generated two-topic documents hashed into {d:,} features (`HashingVectorizer`, density "
                f"{text['density']:.3%}), one CSR matrix for both; 64 hidden ReLU units, Adam, batch 200, "
                f"{text['epochs']} epochs (no early stop), trained on the first 80 % and scored on the rest. "
                "*per epoch* is the whole `fit` over its epochs (fastnn compiled beforehand); *speed-up* is "
                "scikit-learn's epoch over this one. Target (issue 13): ≥ 10× with the same accuracy.", ""]
        out += table(["estimator", "per epoch", "test accuracy", "speed-up"], rows)
    if memory:
        rows = []
        for backend, r in memory.items():
            rows.append([backend, "failed", "—", "—", "—"] if "error" in r else
                        [backend, f"{r['csr_bytes'] / 2 ** 20:,.0f} MiB", f"{r['before'] / 2 ** 20:,.0f} MiB",
                         f"{r['peak'] / 2 ** 20:,.0f} MiB", f"{(r['peak'] - r['before']) / 2 ** 20:,.0f} MiB"])
        dense = MEMORY_ROWS * TEXT_FEATURES * 4
        out += ["## Memory: training on a 1,000,000 × 262,144 CSR matrix", "",
                f"A fresh process per backend builds a {MEMORY_ROWS:,} × {TEXT_FEATURES:,} float32 CSR matrix "
                f"with {MEMORY_PER_ROW} values a row (0.1 %; a dense copy would take {dense / 2 ** 30:,.0f} GiB) "
                "and trains 262144-16-2 ReLU, Adam, batch 1,024 on it for one epoch. *peak* is Linux's VmHWM "
                "during `fit`, reset just before it; *added* is that peak over the resident size before `fit`: "
                "the batches are read in place, never densified.", ""]
        out += table(["backend", "CSR arrays", "resident before fit", "peak during fit", "added"], rows)
    return out


def failures(text, memory) -> list[str]:
    found = []
    for backend, r in ((text or {}).get("fastnn") or {}).items():
        if "error" in r:
            found.append(f"the sparse text case of {backend} failed: {r['error']}")
    for backend, r in (memory or {}).items():
        if "error" in r:
            found.append(f"the 1,000,000-row CSR memory check of {backend} failed: {r['error']}")
    return found

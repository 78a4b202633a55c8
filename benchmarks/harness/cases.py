"""What the benchmarks time: reference workloads, kernel cases and their data.

A ``Case`` is one thing to time on every backend: its ``setup(backend)``
builds the inputs once and returns the call to time.  ``cases(kind, quick)``
lists the cases of one kind; the pytest-benchmark tests in ``benchmarks/``
parametrize over them and over the available backends, and call
``measure``.  Each case lands in its own pytest-benchmark group (its label and
dtype), so the backends of one case sit side by side in pytest-benchmark's
tables and comparisons.

Quick mode (CI smoke runs) keeps float32 only, one shape per kernel family and
a 2,048-row slice of the training data.
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fastnn import _kernels as K
from fastnn.callbacks import Callback

QUICK_ENV = "FASTNN_BENCH_QUICK"
BACKENDS_ENV = "FASTNN_BENCH_BACKENDS"

TRAIN_ROWS, TEST_ROWS = 60_000, 10_000
QUICK_TRAIN_ROWS, QUICK_TEST_ROWS = 2_048, 2_000
REGRESSION_ROWS = 404  # the Boston housing training split (80 % of 506)

# Kinds of case, in report order, with their section titles.
KINDS = {
    "train": "Training: one epoch",
    "predict": "Inference: predict",
    "sparse": "MNIST sparse: the sparse first layer",
    "gemm": "Dense-layer GEMM products (dense_forward / dense_backward)",
    "activation": "Activation forward + backward",
    "loss": "Softmax + cross-entropy gradient (loss_output_delta)",
    "optimizer": "Optimizer update (in place)",
    "gather": "Minibatch gather (gather_rows)",
    "peak": "Machine: float32 GEMM peak",
}


def quick_from_env() -> bool:
    """Whether ``FASTNN_BENCH_QUICK`` asks for quick mode."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def backends_to_run() -> list[str]:
    """``fastnn.backends.available()`` (numpy, the baseline, first), or the subset named by
    ``FASTNN_BENCH_BACKENDS``."""
    available = sorted(K.available(), key=lambda name: name != "numpy")
    wanted = os.environ.get(BACKENDS_ENV, "").strip()
    if not wanted:
        return available
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in K.BACKEND_MODULES]
    if unknown:
        raise ValueError(f"{BACKENDS_ENV}: expected names among {list(K.BACKEND_MODULES)}, got {unknown}")
    missing = [name for name in names if name not in available]
    if missing:
        reasons = "; ".join(f"{name}: {K._failed.get(name, 'not available')}" for name in missing)
        raise ValueError(f"{BACKENDS_ENV}: backend(s) {missing} are not available here ({reasons})")
    return names


def dtypes(quick: bool) -> tuple[str, ...]:
    return ("float32",) if quick else ("float32", "float64")


def dense_flops(widths, rows: int, backward: bool = True) -> int:
    """GEMM FLOPs of ``rows`` samples through a stack of Dense layers.

    Forward: ``X W`` for every layer.  Backward (training) adds ``X^T dZ``
    for every layer and ``dZ W^T`` for every layer but the first -- the
    definition of the GEMM-peak floor.  Bias, activations and updates are
    not counted.
    """
    total = 0
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        products = 1 + (2 if i > 0 else 1) * backward
        total += products * 2 * rows * n_in * n_out
    return total


# ------------------------------------------------------------------- data
@functools.lru_cache(maxsize=1)
def _images():
    """``((X_train, y_train), (X_test, y_test))`` as uint8 images, and where they come from."""
    from fastnn import datasets

    for name, loader in (("MNIST", datasets.load_mnist), ("Fashion-MNIST", datasets.load_fashion_mnist)):
        try:
            return loader(download=False, progress=False), f"{name} (local copy)"
        except (OSError, ValueError):
            continue
    rng = np.random.default_rng(0)

    def split(n):
        return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)

    return (split(TRAIN_ROWS), split(TEST_ROWS)), "synthetic (no MNIST or Fashion-MNIST found locally)"


def image_source() -> str:
    """Which data the MNIST-shaped workloads use: MNIST, Fashion-MNIST or synthetic."""
    return _images()[1]


@functools.lru_cache(maxsize=4)
def image_rows(split: str, dtype: str, rows: int):
    """The first ``rows`` images of ``split`` as ``(X (rows, 784) in [0, 1], y (rows,) int64)``."""
    from fastnn import datasets

    (train, test), _ = _images()
    X, y = train if split == "train" else test
    return datasets.to_float(X[:rows], dtype), y[:rows].astype(np.int64)


@functools.lru_cache(maxsize=2)
def regression_rows(dtype: str):
    """``(X (404, 13), y (404, 1), source)``: Boston housing, standardized, else synthetic."""
    from fastnn import datasets

    try:
        X, y = datasets.load_boston(dtype="float64")
        source = "Boston housing (local copy), standardized"
    except (OSError, ValueError):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((506, 13))
        y = X @ rng.standard_normal((13, 1)) + 0.1 * rng.standard_normal((506, 1))
        source = "synthetic (Boston housing not found locally)"
    idx = np.random.default_rng(0).permutation(len(X))[:REGRESSION_ROWS]
    X, y = X[idx], y[idx]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (y - y.mean()) / y.std()
    return X.astype(dtype), y.astype(dtype), source


# -------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """A reference MLP training setup (issue 3's speed targets)."""

    name: str
    widths: tuple
    activation: str
    optimizer: str
    batch_size: int
    regression: bool = False

    @property
    def label(self) -> str:
        loss = ", mse" if self.regression else ""
        return f"{'-'.join(map(str, self.widths))} {self.activation}, {self.optimizer}{loss}, batch {self.batch_size}"

    def build(self, backend: str, dtype: str, seed: int = 0):
        """The compiled, built ``Sequential`` for this workload."""
        import fastnn as fn

        init = "he_normal" if self.activation == "relu" else "glorot_uniform"
        layers = [fn.Dense(n_out, activation=self.activation, kernel_initializer=init, input_dim=n_in)
                  for n_in, n_out in zip(self.widths[:-2], self.widths[1:-1])]
        layers.append(fn.Dense(self.widths[-1], activation=None if self.regression else "softmax"))
        model = fn.Sequential(layers, backend=backend, dtype=dtype, seed=seed)
        model.compile(optimizer=self.optimizer,
                      loss="mse" if self.regression else "sparse_categorical_crossentropy")
        return model


WORKLOADS = {w.name: w for w in (
    Workload("tiny", (784, 16, 16, 10), "sigmoid", "sgd", 100),
    Workload("mnist128", (784, 128, 10), "relu", "adam", 128),
    Workload("wide", (784, 512, 512, 10), "relu", "adam", 256),
    Workload("regression", (13, 128, 128, 64, 1), "relu", "rmsprop", 16, regression=True),
    Workload("small-batch", (784, 128, 10), "relu", "adam", 16),
    Workload("small-batch-32", (784, 128, 10), "relu", "adam", 32),
)}
PREDICT_WORKLOAD = "mnist128"


class _EpochTimer(Callback):
    """Appends the wall time of each epoch to ``out`` (fit's input checks excluded)."""

    def __init__(self, out: list):
        self.out = out
        self.start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.out.append(time.perf_counter() - self.start)


class TrainingRun:
    """One training epoch of a workload per call: ``model.fit(X, y, epochs=1)``.

    ``epoch_seconds`` collects each epoch's wall time from ``on_epoch_begin``
    to ``on_epoch_end``: the epoch itself, without the input validation
    ``fit`` does once per call (about 10 ms for 60,000 x 784 float32).

    ``first_layer`` is ``fit``'s: ``"dense"`` (the default) times the dense path,
    ``"sparse"`` the sparse first layer on the same dense ``X`` (converted once
    per call, before the timed epoch).  ``data=(X, y)`` replaces the workload's
    own data.

    ``reset()`` (untimed, before every round) puts back the weights and
    optimizer state of the end of ``warm_up()``, so every round does the same
    work: without it, later rounds train a model whose dead ReLU units have
    Adam slots decaying into denormals, which slows the NumPy backend down
    more every round (the compiled backends flush them to zero).
    """

    def __init__(self, workload: Workload, backend: str, dtype: str, rows: int | None = None, seed: int = 0,
                 callbacks=(), first_layer: str = "dense", data=None):
        if data is not None:
            self.X, self.y = data
        elif workload.regression:
            self.X, self.y, _ = regression_rows(dtype)
        else:
            self.X, self.y = image_rows("train", dtype, rows)
        self.model = workload.build(backend, dtype, seed)
        self.batch_size = workload.batch_size
        self.first_layer = first_layer
        self.epoch_seconds: list[float] = []
        self._callbacks = [_EpochTimer(self.epoch_seconds), *callbacks]

    def __call__(self):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch_size, verbose=0,
                       callbacks=self._callbacks, first_layer=self.first_layer)

    def warm_up(self) -> float:
        """Run a few batches twice (compiles and caches everything a step
        needs); returns the estimated seconds per full epoch."""
        n = min(len(self.X), 4 * self.batch_size)
        for _ in range(2):
            start = time.perf_counter()
            self.model.fit(self.X[:n], self.y[:n], epochs=1, batch_size=self.batch_size, verbose=0,
                           first_layer=self.first_layer)
            seconds = time.perf_counter() - start
        self.snapshot()
        return seconds * len(self.X) / n

    def snapshot(self):
        """Keep the weights and optimizer state that ``reset()`` puts back (``warm_up`` calls it)."""
        self._snapshot = ([w.copy() for w in self.model.get_weights()],
                          [s.copy() for s in self.model.optimizer.get_state()],
                          self.model.optimizer.iterations)

    def reset(self):
        """Back to the state of the last ``snapshot()``: the end of ``warm_up()``."""
        weights, slots, iterations = self._snapshot
        self.model.set_weights(weights)
        self.model.optimizer.set_state(slots, iterations)


# ------------------------------------------------------------------ cases
@dataclass(frozen=True, repr=False)
class Case:
    """One benchmark: ``setup(backend)`` returns the call to time."""

    kind: str
    id: str  # pytest id without the backend; stable between quick and full mode
    label: str  # what the report shows
    dtype: str
    setup: Callable
    flops: int | None = None
    rows: int | None = None
    quick: bool = False
    source: Callable[[], str] | None = None  # where the data comes from
    options: tuple = ()  # pytest-benchmark options for this case, as (name, value) pairs

    def __repr__(self):
        return self.id

    @property
    def group(self) -> str:
        return f"{self.kind}: {self.label} [{self.dtype}]"

    def info(self, backend: str) -> dict:
        """What the report needs, stored in pytest-benchmark's ``extra_info``."""
        info = {"kind": self.kind, "case": self.id, "label": self.label, "dtype": self.dtype,
                "backend": backend, "flops": self.flops, "rows": self.rows, "quick": self.quick}
        if self.source is not None:
            info["data"] = self.source()
        return info


def _arrays(dtype, *shapes, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(shape)).astype(dtype) for shape in shapes]


GEMM_SHAPES = [(n, 784, m) for n in (16, 128, 256) for m in (16, 128, 512)] + [(256, 512, 512)]
QUICK_GEMM_SHAPES = [(128, 784, 128)]
GEMM_PRODUCTS = {
    "fwd": ("X·W + b, relu", 1),
    "bwd-dW": ("Xᵀ·δ, Σδ (first layer)", 1),
    "bwd-dW-dX": ("Xᵀ·δ and δ·Wᵀ, Σδ", 2),
}


def _gemm_case(product, shape, dtype, quick):
    n, k, m = shape

    def setup(backend):
        kern = K.load(backend)
        X, W, b, dZ = _arrays(dtype, (n, k), (k, m), (m,), (n, m), scale=0.1)
        if product == "fwd":
            Z, A = np.empty((n, m), dtype), np.empty((n, m), dtype)
            return lambda: kern.dense_forward(X, W, b, K.RELU, 0.0, Z, A)
        dW, db = np.empty_like(W), np.empty_like(b)
        dX = np.empty_like(X) if product == "bwd-dW-dX" else None
        return lambda: kern.dense_backward(X, W, dZ, 0.0, dW, db, dX)

    what, products = GEMM_PRODUCTS[product]
    return Case("gemm", f"{product}-{n}x{k}x{m}-{dtype}", f"{what}, {n}×{k}×{m}", dtype, setup,
                flops=products * 2 * n * k * m, quick=quick)


ACTIVATIONS = {  # name: (code, alpha)
    "linear": (K.LINEAR, 0.0), "sigmoid": (K.SIGMOID, 0.0), "tanh": (K.TANH, 0.0), "relu": (K.RELU, 0.0),
    "leaky_relu": (K.LEAKY_RELU, 0.01), "elu": (K.ELU, 1.0), "softmax": (K.SOFTMAX, 0.0),
    "softplus": (K.SOFTPLUS, 0.0), "gelu": (K.GELU, 0.0), "swish": (K.SWISH, 0.0),
}
QUICK_ACTIVATIONS = ("relu", "sigmoid", "softmax")
ACTIVATION_SHAPE = (256, 512)


def _activation_case(name, dtype, quick):
    code, alpha = ACTIVATIONS[name]
    n, m = ACTIVATION_SHAPE

    def setup(backend):
        kern = K.load(backend)
        # Inner dimension 1: the GEMM inside dense_forward is an outer
        # product, so the time is the activation's (and the bias add).
        X, W, b, dA = _arrays(dtype, (n, 1), (1, m), (m,), (n, m), scale=2.0)
        Z, A, dZ = (np.empty((n, m), dtype) for _ in range(3))

        def forward_backward():
            kern.dense_forward(X, W, b, code, alpha, Z, A)
            kern.activation_backward(code, alpha, Z, A, dA, dZ)

        return forward_backward

    return Case("activation", f"{name}-{dtype}", f"{name}, {n}×{m}", dtype, setup, quick=quick)


def _loss_case(n, dtype, quick):
    classes = 10

    def setup(backend):
        kern = K.load(backend)
        (Z,) = _arrays(dtype, (n, classes), scale=3.0)
        A = np.exp(Z - Z.max(axis=1, keepdims=True))
        A /= A.sum(axis=1, keepdims=True)
        y = np.random.default_rng(1).integers(0, classes, n).astype(np.int64)
        dZ = np.empty_like(Z)
        return lambda: kern.loss_output_delta(K.SPARSE_CATEGORICAL_CROSSENTROPY, K.SOFTMAX, 0.0,
                                              Z, A, y, None, dZ)

    return Case("loss", f"softmax-ce-{n}-{dtype}", f"{n}×{classes}, sparse labels", dtype, setup, quick=quick)


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
OPTIMIZER_SIZES = {"1e4": (100, 100), "1e6": (1000, 1000)}
QUICK_OPTIMIZERS = (("sgd", "1e4"), ("adam", "1e4"), ("adam", "1e6"))


def _optimizer_case(name, size, dtype, quick):
    shape = OPTIMIZER_SIZES[size]

    def setup(backend):
        kern = K.load(backend)
        p, g = _arrays(dtype, shape, shape, scale=0.05)
        s1, s2 = np.zeros(shape, dtype), np.zeros(shape, dtype)
        lr = 1e-3
        if name == "sgd":
            return lambda: kern.sgd_update(p, g, lr, 0.0, False, None)
        if name in ("momentum", "nesterov"):
            return lambda: kern.sgd_update(p, g, lr, 0.9, name == "nesterov", s1)
        if name == "adagrad":
            s1.fill(0.1)
            return lambda: kern.adagrad_update(p, g, lr, 1e-7, s1)
        if name == "rmsprop":
            return lambda: kern.rmsprop_update(p, g, lr, 0.9, 1e-7, s1)
        return lambda: kern.adam_update(p, g, lr, 0.9, 0.999, 1e-7, 10, s1, s2)

    count = shape[0] * shape[1]
    return Case("optimizer", f"{name}-{size}-{dtype}", f"{name}, {count:,} parameters", dtype, setup,
                rows=count, quick=quick)


def _gather_case(m, dtype, quick):
    def setup(backend):
        kern = K.load(backend)
        X, _ = image_rows("train", dtype, TRAIN_ROWS)
        idx = np.random.default_rng(0).permutation(len(X))[:m].astype(np.int64)
        out = np.empty((m, X.shape[1]), dtype)
        return lambda: kern.gather_rows(X, idx, out)

    return Case("gather", f"gather-{m}-{dtype}", f"{m} of 60,000×784 rows", dtype, setup, quick=quick)


def _train_case(workload, dtype, quick):
    if workload.regression:
        rows, source = REGRESSION_ROWS, lambda: regression_rows(dtype)[2]
    else:
        rows, source = (QUICK_TRAIN_ROWS if quick else TRAIN_ROWS), image_source
    return Case("train", f"{workload.name}-{dtype}", f"{workload.name}: {workload.label}", dtype,
                lambda backend: TrainingRun(workload, backend, dtype, rows),
                flops=dense_flops(workload.widths, rows), rows=rows, quick=quick, source=source)


def _predict_case(dtype, quick):
    workload = WORKLOADS[PREDICT_WORKLOAD]
    rows = QUICK_TEST_ROWS if quick else TEST_ROWS

    def setup(backend):
        model = workload.build(backend, dtype)
        X, _ = image_rows("test", dtype, rows)
        return lambda: model.predict(X)

    return Case("predict", f"{workload.name}-{dtype}", f"{'-'.join(map(str, workload.widths))}, {rows:,} rows",
                dtype, setup, flops=dense_flops(workload.widths, rows, backward=False), rows=rows,
                quick=quick, source=image_source)


SPARSE_WORKLOAD = "mnist128"


def _sparse_case(quick):
    """The mnist128 epoch with ``fit(first_layer="sparse")``, on the rows of its dense training case."""
    workload, dtype = WORKLOADS[SPARSE_WORKLOAD], "float32"
    rows = QUICK_TRAIN_ROWS if quick else TRAIN_ROWS

    def source():
        X, _ = image_rows("train", dtype, rows)
        return f"{image_source()}, {np.count_nonzero(X) / X.size:.1%} of the values non-zero"

    return Case("sparse", f"{workload.name}-sparse-{dtype}", f"{workload.name}: {workload.label}, sparse first layer",
                dtype, lambda backend: TrainingRun(workload, backend, dtype, rows, first_layer="sparse"),
                flops=dense_flops(workload.widths, rows), rows=rows, quick=quick, source=source)


PEAK_SIZE = 2048


def peak_case(quick: bool = False) -> Case:
    """numpy float32 ``A @ B`` with 2048 x 2048 operands: the machine's GEMM throughput."""
    n = PEAK_SIZE

    def setup(backend):
        A, B = _arrays(np.float32, (n, n), (n, n))
        C = np.empty((n, n), np.float32)
        return lambda: np.matmul(A, B, out=C)

    # More rounds than pytest-benchmark's default: the fastest one is the peak.
    return Case("peak", f"sgemm-{n}", f"numpy float32 {n}×{n} · {n}×{n}", "float32", setup,
                flops=2 * n ** 3, quick=quick, options=(("min_rounds", 8 if quick else 20),))


def gemm_peak_flops(rounds: int = 8) -> float:
    """The peak case timed outside pytest-benchmark: FLOP/s of its fastest of ``rounds`` calls."""
    case = peak_case()
    call = case.setup("numpy")
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return case.flops / best


def cases(kind: str, quick: bool = False) -> list[Case]:
    """The cases of one kind (see ``KINDS``), every dtype."""
    out = []
    for dtype in dtypes(quick):
        if kind == "gemm":
            out += [_gemm_case(p, s, dtype, quick) for s in (QUICK_GEMM_SHAPES if quick else GEMM_SHAPES)
                    for p in GEMM_PRODUCTS]
        elif kind == "activation":
            out += [_activation_case(a, dtype, quick) for a in (QUICK_ACTIVATIONS if quick else ACTIVATIONS)]
        elif kind == "loss":
            out += [_loss_case(n, dtype, quick) for n in ((128,) if quick else (16, 128, 256))]
        elif kind == "optimizer":
            pairs = QUICK_OPTIMIZERS if quick else [(o, s) for o in OPTIMIZERS for s in OPTIMIZER_SIZES]
            out += [_optimizer_case(o, s, dtype, quick) for o, s in pairs]
        elif kind == "gather":
            out += [_gather_case(m, dtype, quick) for m in ((128,) if quick else (16, 128, 256))]
        elif kind == "train":
            out += [_train_case(w, dtype, quick) for w in WORKLOADS.values()]
        elif kind == "predict":
            out.append(_predict_case(dtype, quick))
        elif kind == "peak":
            return [peak_case(quick)]
        elif kind == "sparse":  # float32, as the GEMM peak its floor is measured against
            return [_sparse_case(quick)]
        else:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
    return out


# ----------------------------------------------------------------- timing
TRAIN_SECONDS = {False: 3.0, True: 0.3}  # time budget per training benchmark
TRAIN_MIN_ROUNDS = {False: 3, True: 1}


def measure(benchmark, backend: str, case: Case):
    """Time ``case`` on ``backend`` with pytest-benchmark's ``benchmark`` fixture.

    Everything is warmed up first (Numba compiles, caches fill, buffers are
    touched), so compile time never counts; it is measured separately as
    first-call latency.  Kernels use pytest-benchmark's own calibration;
    a training epoch is one round of ``benchmark.pedantic``.
    """
    target = case.setup(backend)
    benchmark.extra_info.update(case.info(backend))
    if benchmark.disabled:  # smoke run: the call runs once, untimed
        benchmark(target)
    elif isinstance(target, TrainingRun):
        per_epoch = target.warm_up()
        wanted = math.ceil(TRAIN_SECONDS[case.quick] / max(per_epoch, 1e-6))
        rounds = max(TRAIN_MIN_ROUNDS[case.quick], min(50, wanted))
        benchmark.pedantic(target, setup=target.reset, rounds=rounds, iterations=1)
        benchmark.extra_info["epoch_seconds"] = target.epoch_seconds
    else:
        target()
        benchmark(target)

"""``fit(first_layer=...)``: whether the first layer reads a dense ``X`` densely or as CSR.

The dense first layer is a matrix product (GEMM) over every value of a batch;
the sparse one (``sparse_dense_forward`` / ``sparse_dense_backward``) touches
only the stored values, but each at a fraction of the GEMM's speed, so it pays
only for mostly-zero inputs, below a density that depends on the backend and
the layer's width (MNIST's 19 % on the Cython backend with 128 units or more).
``"sparse"`` converts a dense ``X`` once to the canonical CSR
(``SparseInput.from_dense``, with the backend's ``csr_from_dense`` where it
has one); ``"auto"`` counts ``X``'s non-zeros and converts only well below the
crossover density measured for the backend and width, and for a fit long
enough to earn the conversion back.  Sparse ``X`` always trains sparse.
"""
from __future__ import annotations

import numpy as np

from . import _kernels
from ._kernels.sparse import SparseInput

CHOICES = ("auto", "dense", "sparse")

# Crossover densities: the non-zero share of X's values at which the sparse first layer's
# epoch takes as long as the dense one, by the first layer's units, per backend; for 784-32-10,
# 784-128-10 and 784-512-10 (ReLU, Adam, batch 128, MNIST thinned to each density, two
# threads), the lowest of the machines measured -- below it the sparse layer was faster on
# each.  Cython: 23.5 / 40.1 / 33.5 % on a 2-core Xeon with its AVX-512/FMA row kernels and
# the transpose per thread, 25.6 / 27.0 / 42.2 % on a 2-core EPYC with the kernels before
# those.  Numba: 12.2 / 14.6 / 10.6 % (EPYC), 12.7 / 11.8 / 8.5 % (16-core Xeon).  NumPy: 1.1 /
# 2.6 % at 128 / 512 units (EPYC; 3.3 / 4.3 % on the Xeon).  docs/performance.md, "When the
# sparse first layer pays", records the runs and the command that measures them.  Between
# the widths measured the crossover is interpolated in log2(units), beyond them held.  A
# backend missing here is never switched to sparse by "auto".
CROSSOVERS = {
    "cython": ((32, 0.235), (128, 0.270), (512, 0.335)),
    "numba": ((32, 0.122), (128, 0.118), (512, 0.085)),
    "numpy": ((128, 0.011), (512, 0.026)),
}
# "auto" takes the sparse layer only below this share of the crossover: the sparse epoch
# grows with the stored values and near a crossover saves nothing.  At 3/4 of it, the
# epochs measured took 0.6-0.8 of the dense ones.  MNIST's 19.1 % is sparse on Cython from
# 128 units (threshold 20.3 %; its sparse epoch measured 0.63 of the dense one at 128 units
# and 0.68 at 512 on the 2-core Xeon), dense at 32 (17.6 %: 0.84) and on the other backends.
BELOW_CROSSOVER = 0.75
# The NumPy backend's sparse first layer costs a fixed SciPy overhead per batch that only
# a large enough first layer earns back: with 784 x 32 weights it was slower at every
# density measured, with 784 x 128 it paid below 1.1 %.  Smaller first layers stay dense.
SPARSE_MIN_WEIGHTS = {"numpy": 784 * 128}
# The conversion of X to CSR has to be earned back: it grows with X's values, the saving with
# X's values times the first layer's units times (1 - density / crossover), the sparse
# epoch's share saved on a line through the crossover.  "auto" takes the sparse layer when
# epochs x units x that share reach these unit-epochs.  The compiled backends convert with
# their ``csr_from_dense``, 74-98 ms for MNIST's 60,000 x 784 (1.9 ns a value) on the 2-core
# Xeon, where the dense epoch of 784-128-10 costs 28 ps a value and unit: 69 unit-epochs, and
# 100 because the line is optimistic (at MNIST's density and 128 units it predicts 0.52 of
# the dense epoch saved, 0.37 was).  NumPy's blocks take 190-390 ms: 300.  Then
# partial_fit's one epoch a call, which converts X every call, stays dense unless one epoch
# earns the conversion back (MNIST-like X from about 320 units on Cython).
PAYBACK_UNIT_EPOCHS = {"cython": 100, "numba": 100}
PAYBACK_UNIT_EPOCHS_NUMPY_CONVERSION = 300


# predict: a block of a dense X's rows whose non-zero share is below BELOW_CROSSOVER times
# these reads only its non-zeros in the first layer (the backend's predict_rows gathers each
# row's non-zeros and adds their rows of W, as the sparse layer's row kernel does; no CSR is
# built).  Forward only, no conversion: the crossovers lie higher than training's.  Measured
# on 10,000 MNIST test rows thinned (or filled with 0.5) to each density, 784-units-10, two
# threads, 2-core EPYC with AVX-512, the lower of float32 and float64: float32 crossed at
# about 32 / 43 / 43 % (32 / 128 / 512 units), float64 at 18 / 33 / 44 %; at MNIST's 19.3 %
# the nonzero path took 0.58 (float32) and 0.62 (float64) of the dense one at 128 units,
# 0.46 / 0.47 at 512.  First layers narrower than the first point stay dense, as do inputs of
# fewer than PREDICT_MIN_INPUTS features (not measured).  docs/performance.md, "predict on
# mostly-zero rows".
PREDICT_CROSSOVERS = {"cython": ((32, 0.18), (128, 0.33), (512, 0.42))}
PREDICT_MIN_INPUTS = 256


def predict_sparse_below(backend: str, n_in: int, units: int) -> float:
    """The non-zero share below which ``backend``'s ``predict_rows`` reads only a block's
    non-zeros in a first layer of ``n_in`` inputs and ``units`` units (0.0: never)."""
    points = PREDICT_CROSSOVERS.get(backend)
    if not points or n_in < PREDICT_MIN_INPUTS or units < points[0][0]:
        return 0.0
    return BELOW_CROSSOVER * _interpolate(points, units)


def crossover(backend: str, units: float) -> float:
    """The crossover density of ``backend`` for a first layer ``units`` wide (0.0 for a
    backend never measured)."""
    points = CROSSOVERS.get(backend)
    if not points:
        return 0.0
    return _interpolate(points, units)


def _interpolate(points, units: float) -> float:
    """The crossover of ``points`` ((units, density), ... by units) at ``units``: linear in
    log2(units) between the points, held beyond them."""
    if not points:
        return 0.0
    if units <= points[0][0]:
        return points[0][1]
    for (u0, c0), (u1, c1) in zip(points, points[1:]):
        if units <= u1:
            t = (np.log2(units) - np.log2(u0)) / (np.log2(u1) - np.log2(u0))
            return float(c0 + t * (c1 - c0))
    return points[-1][1]


def check(first_layer, X, normalized: bool) -> None:
    """Raise ``ValueError`` (naming ``first_layer``) for a value that is not one of
    ``CHOICES`` or that cannot apply: ``"sparse"`` with a Normalization layer
    (``normalized``), ``"dense"`` with a sparse ``X`` (a ``SparseInput``)."""
    if not isinstance(first_layer, str) or first_layer not in CHOICES:
        raise ValueError(f"first_layer: expected one of {list(CHOICES)}, got {first_layer!r}")
    if first_layer == "sparse" and normalized:
        raise ValueError(
            "first_layer: 'sparse' reads only X's non-zeros, but the model's Normalization layer "
            "standardizes X, which makes it dense; use first_layer='auto' or 'dense', or scale X "
            "without centering (e.g. scikit-learn's MaxAbsScaler) and drop the Normalization layer")
    if first_layer == "dense" and isinstance(X, SparseInput):
        raise ValueError(
            "first_layer: 'dense' needs a dense X, got a scipy.sparse matrix; pass X.toarray() if "
            "it fits in memory, or first_layer='auto' to train on it as it is")


SAMPLE_VALUES = 2 ** 20  # "auto" counts the non-zeros of evenly spaced rows holding about this many values


def density(X) -> float:
    """The share of non-zero values of a dense ``X (n, n_features)``, counted on every
    k-th row (about ``SAMPLE_VALUES`` values: a few milliseconds, no copy)."""
    step = max(1, -(-X.size // SAMPLE_VALUES))
    sample = X[::step]
    return np.count_nonzero(sample) / max(sample.size, 1)


def sparse_pays(X, backend: str, weights: int, epochs: int) -> bool:
    """Whether the sparse first layer is expected to train ``epochs`` epochs faster on
    ``X`` (dense, ``(n, n_features)``) with a first layer of ``weights`` weights (inputs x
    the width of its product), the conversion of ``X`` to CSR included."""
    if weights < SPARSE_MIN_WEIGHTS.get(backend, 0) or epochs < 1:
        return False
    units = weights / max(X.shape[1], 1)
    cross = crossover(backend, units)
    if cross <= 0.0:
        return False
    rho = float(density(X))
    if rho >= BELOW_CROSSOVER * cross:
        return False
    payback = PAYBACK_UNIT_EPOCHS.get(backend, PAYBACK_UNIT_EPOCHS_NUMPY_CONVERSION)
    return bool(epochs * units * (1.0 - rho / cross) >= payback)


def apply(first_layer, X, val, backend: str, normalized: bool, weights: int, epochs: int):
    """``(X, val, used)``: the training ``X`` and validation tuple ``val`` (or None)
    as the first layer will read them, and ``used``, ``"dense"`` or ``"sparse"``.
    ``first_layer`` has passed ``check``; ``weights`` is the first layer's ``W.size``,
    ``epochs`` the number the fit will run."""
    if isinstance(X, SparseInput):
        return X, val, "sparse"
    if first_layer == "dense" or normalized \
            or (first_layer == "auto" and not sparse_pays(X, backend, weights, epochs)):
        return X, val, "dense"
    convert = getattr(_kernels.load(backend), "csr_from_dense", None)
    X = SparseInput.from_dense(X, convert)
    if val is not None and not isinstance(val[0], SparseInput):
        val = (SparseInput.from_dense(val[0], convert), *val[1:])
    return X, val, "sparse"

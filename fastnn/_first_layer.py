"""``fit(first_layer=...)``: whether the first layer reads a dense ``X`` densely or as CSR.

The dense first layer is a matrix product (GEMM) over every value of a batch;
the sparse one (``sparse_dense_forward`` / ``sparse_dense_backward``) touches
only the stored values, but each at a fraction of the GEMM's speed, so it pays
only for inputs sparser than MNIST (19 % non-zero), by a margin that depends on
the backend.  ``"sparse"`` converts
a dense ``X`` once to the canonical CSR (``SparseInput.from_dense``);
``"auto"`` counts ``X``'s non-zeros and converts only below the crossover
density measured for the backend.  Sparse ``X`` always trains sparse.
"""
from __future__ import annotations

import numpy as np

from ._kernels.sparse import SparseInput

CHOICES = ("auto", "dense", "sparse")

# Density (non-zero share of X's values) below which "auto" trains a dense X through the
# sparse first layer, per backend: the lowest crossover measured for 784-32-10, 784-128-10
# and 784-512-10 (ReLU, Adam, batch 128, MNIST thinned to each density, two threads) on two
# machines, rounded down -- cython 5.2 %, numba 8.5 % (both 784 x 512 on a 16-core Xeon),
# numpy 1.1 % (784 x 128 on a 2-core EPYC).  Where the machines disagree the lower figure
# wins: below it the sparse layer was faster on both, and near a crossover the two paths
# take about the same time.  The Cython figure predates its register-blocked sparse kernels,
# with which the 2-core EPYC's crossovers rose from 12-13 % to 26-42 %; until the Xeon is
# measured again the old, lower one stands.  (At MNIST's 19 % the sparse epoch is then
# 10-30 % shorter, which the one-time conversion of X to CSR, about one epoch's time, earns
# back only over several epochs.)  docs/performance.md, "When the sparse first layer pays",
# records the runs and the command that measures them.  A backend missing here is never
# switched to sparse by "auto".
SPARSE_BELOW_DENSITY = {"numpy": 0.01, "numba": 0.08, "cython": 0.05}
# The NumPy backend's sparse first layer costs a fixed SciPy overhead per batch that only
# a large enough first layer earns back: with 784 x 32 weights it was slower at every
# density measured, with 784 x 128 it paid below 1.1 %.  Smaller first layers stay dense.
SPARSE_MIN_WEIGHTS = {"numpy": 784 * 128}


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


def sparse_pays(X, backend: str, weights: int) -> bool:
    """Whether the sparse first layer is expected to train faster on ``X`` (dense) with a
    first layer of ``weights`` weights (inputs x the width of its product)."""
    if weights < SPARSE_MIN_WEIGHTS.get(backend, 0):
        return False
    return density(X) < SPARSE_BELOW_DENSITY.get(backend, 0.0)


def apply(first_layer, X, val, backend: str, normalized: bool, weights: int):
    """``(X, val, used)``: the training ``X`` and validation tuple ``val`` (or None)
    as the first layer will read them, and ``used``, ``"dense"`` or ``"sparse"``.
    ``first_layer`` has passed ``check``; ``weights`` is the first layer's ``W.size``."""
    if isinstance(X, SparseInput):
        return X, val, "sparse"
    if first_layer == "dense" or normalized \
            or (first_layer == "auto" and not sparse_pays(X, backend, weights)):
        return X, val, "dense"
    X = SparseInput.from_dense(X)
    if val is not None and not isinstance(val[0], SparseInput):
        val = (SparseInput.from_dense(val[0]), *val[1:])
    return X, val, "sparse"

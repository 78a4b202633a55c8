"""``fit(first_layer=...)``: whether the first layer reads a dense ``X`` densely or as CSR.

The dense first layer is a matrix product (GEMM) over every value of a batch;
the sparse one (``sparse_dense_forward`` / ``sparse_dense_backward``) touches
only the stored values, but each at a fraction of the GEMM's speed, so it pays
only for inputs sparser than MNIST (19 % non-zero), by a margin that depends on
the backend.  ``"sparse"`` converts
a dense ``X`` once to the canonical CSR (``SparseInput.from_dense``);
``"auto"`` counts ``X``'s non-zeros and converts only below the crossover
density measured for the backend, and for a fit long enough to earn the
conversion back.  Sparse ``X`` always trains sparse.
"""
from __future__ import annotations

import numpy as np

from . import _kernels
from ._kernels.sparse import SparseInput

CHOICES = ("auto", "dense", "sparse")

# Density (non-zero share of X's values) below which "auto" trains a dense X through the
# sparse first layer, per backend: the lowest crossover measured for 784-32-10, 784-128-10
# and 784-512-10 (ReLU, Adam, batch 128, MNIST thinned to each density, two threads) on two
# machines, rounded down -- numba 8.5 % (784 x 512 on a 16-core Xeon), numpy 1.1 % (784 x 128
# on a 2-core EPYC).  Where the machines disagree the lower figure wins: below it the sparse
# layer was faster on both.  Cython, with its AVX-512/FMA row kernels and the transpose per
# thread, crossed at 23.5 / 40.1 / 33.5 % on a 2-core Xeon (25.6 / 27.0 / 42.2 % on the EPYC with
# the kernels before those); its threshold is half the lowest of these, 11 %, where the sparse
# epoch took 0.42-0.61 of the dense one (at 10 %): near a crossover an epoch saves nothing, and the
# conversion to CSR still has to be earned back (PAYBACK_UNIT_EPOCHS).  docs/performance.md, "When the sparse first layer pays", records the
# runs and the command that measures them.  A backend missing here is never switched to
# sparse by "auto".
SPARSE_BELOW_DENSITY = {"numpy": 0.01, "numba": 0.08, "cython": 0.11}
# The NumPy backend's sparse first layer costs a fixed SciPy overhead per batch that only
# a large enough first layer earns back: with 784 x 32 weights it was slower at every
# density measured, with 784 x 128 it paid below 1.1 %.  Smaller first layers stay dense.
SPARSE_MIN_WEIGHTS = {"numpy": 784 * 128}
# Converting X to CSR (SparseInput.from_dense) took 150-230 ms for MNIST's 60,000 x 784 on the
# 2-core Xeon; below the thresholds the sparse first layer saved about 32 ms an epoch at 32
# units, 76 at 128 and 360 at 512: the conversion is earned back after about 200 / units
# epochs (it grows with X's values, the saving with X's values times the units).  "auto" takes
# the sparse layer only for a fit of at least that many epochs; partial_fit's one epoch a call,
# which would convert X every call, stays dense.
PAYBACK_UNIT_EPOCHS = 200


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
    if weights < SPARSE_MIN_WEIGHTS.get(backend, 0):
        return False
    units = weights / max(X.shape[1], 1)
    if epochs * units < PAYBACK_UNIT_EPOCHS:
        return False
    return density(X) < SPARSE_BELOW_DENSITY.get(backend, 0.0)


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

"""``Normalization``: standardize features with statistics learned by ``adapt``.

As Keras' layer of the same name, ``Normalization`` maps each feature ``x`` to
``(x - mean) / sqrt(variance)``, with ``mean`` and ``variance`` learned from
data by ``adapt`` (or given).  Put it first in a ``Sequential`` and the model
standardizes its inputs itself: ``fit``, ``evaluate`` and ``predict`` take raw
rows, and a saved (or ONNX-exported) model carries the statistics.
``Sequential(..., target_normalization=True)`` uses one on the targets of a
regression, so training sees standardized targets and ``predict`` answers in
the original units.

It has no trainable weights: the model applies it once to the whole input of
``fit`` (not per batch), so training runs on the compiled kernels unchanged.
"""
from __future__ import annotations

import numpy as np

from ._validation import _as_numeric_array, narrows

_EPS = np.finfo(np.float64).eps
_BLOCK_VALUES = 2 ** 16  # values standardized at a time by transform's higher-precision path


class Normalization:
    """Standardize each feature: ``(x - mean) / sqrt(variance)``.

    Parameters
    ----------
    axis : {-1, 1, None}, default -1
        ``-1`` (or ``1``): one mean and variance per feature (column);
        ``None``: one mean and variance over all values.
    mean, variance : array-like, optional
        Statistics to use instead of calling ``adapt``: a scalar, or one value
        per feature (shape ``(n_features,)``).  Give both or neither.

    Attributes
    ----------
    mean, variance : ndarray of float64 or None
        Shape ``(n_features,)`` (``()`` with ``axis=None`` or scalar
        statistics); ``None`` before ``adapt``.
    count : int
        Number of values per feature that ``adapt`` saw (NaNs excluded).

    A feature whose variance is zero, such as a constant column (``adapt``
    sets a variance within its rounding error of zero to zero), is divided by 1 instead, as scikit-learn's
    ``StandardScaler`` does, so its value on new data stays finite.
    """

    def __init__(self, axis=-1, mean=None, variance=None):
        if isinstance(axis, bool) or axis not in (-1, 1, None):
            raise ValueError(f"axis: expected -1 (one mean per feature) or None (one mean over all "
                             f"values), got {axis!r}")
        self.axis = -1 if axis == 1 else axis
        self.mean = self.variance = None
        self.count = 0
        if (mean is None) != (variance is None):
            raise ValueError("mean, variance: give both (or neither, and call adapt)")
        if mean is not None:
            self.set_statistics(mean, variance)

    @property
    def adapted(self) -> bool:
        """Whether the statistics are known (by ``adapt`` or given)."""
        return self.mean is not None

    @property
    def n_features(self):
        """Number of features the statistics are for; ``None`` if they apply to any width."""
        return None if self.mean is None or self.mean.ndim == 0 else self.mean.shape[0]

    # ---------------------------------------------------------------- adapt
    def adapt(self, data, batch_size=None) -> "Normalization":
        """Compute ``mean`` and ``variance`` from ``data`` (replacing earlier statistics).

        Parameters
        ----------
        data : array-like (n_samples, n_features) or (n_samples,), or an iterable of such batches
            A 1-D array is one feature.  An iterable (e.g. a generator) gives
            batches, each an array or a tuple whose first item is the array
            (``(X, y)`` pairs); the statistics are exact, as if computed on all
            rows at once.  NaNs are skipped (each feature counts its own
            values); infinities are an error.
        batch_size : int, optional
            Rows read at a time from an array (bounds the float64 temporary).

        Returns
        -------
        self
        """
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
        stats = _RunningMoments()
        if _is_array_like(data):
            arr = self._as_2d(data, "data")
            step = arr.shape[0] if batch_size is None else int(batch_size)
            for start in range(0, max(arr.shape[0], 1), max(step, 1)):
                stats.add(self._reduce(arr[start:start + step]), "data")
        else:
            try:
                batches = iter(data)
            except TypeError:
                raise TypeError(f"data: expected an array or an iterable of batches, got {type(data).__name__}") \
                    from None
            for i, batch in enumerate(batches):
                if isinstance(batch, tuple):
                    if not batch:
                        raise ValueError(f"data: batch {i} is an empty tuple; expected an array or (X, ...)")
                    batch = batch[0]
                stats.add(self._reduce(self._as_2d(batch, f"data (batch {i})")), f"data (batch {i})")
        count, mean, variance = stats.result()
        if count.size == 0 or not np.any(count):
            raise ValueError("data: expected at least one finite value to adapt to, got none")
        empty = np.flatnonzero(count == 0)
        if empty.size:
            raise ValueError(f"data: feature(s) {empty[:10].tolist()} hold only NaN; no mean or variance "
                             f"can be computed for them")
        # scikit-learn's test for a constant feature: a variance within its own rounding
        # error of zero is zero (so the feature is divided by 1, not by noise)
        constant = variance <= count * _EPS * variance + (count * mean * _EPS) ** 2
        self.mean, self.variance = mean, np.where(constant, 0.0, variance)
        self.count = int(count.min())
        return self

    def _as_2d(self, data, name):
        arr = _as_numeric_array(data, name)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features) or 1-D (one feature), "
                             f"got shape {arr.shape}")
        if arr.dtype.kind == "f" and np.isinf(arr).any():
            raise ValueError(f"{name}: contains {int(np.isinf(arr).sum())} infinite value(s); expected "
                             f"finite numbers (NaNs are skipped)")
        return arr

    def _reduce(self, arr):
        """(count, mean, sum of squared deviations) of a batch, per feature or over all
        values, ignoring NaNs; float64."""
        x = arr.astype(np.float64, copy=False)
        if self.axis is None:
            x = x.reshape(-1, 1)
        valid = ~np.isnan(x)
        count = valid.sum(axis=0).astype(np.float64)
        filled = np.where(valid, x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), 0.0)
        deviation = np.where(valid, x - mean, 0.0)
        m2 = np.einsum("ij,ij->j", deviation, deviation)
        if self.axis is None:
            return count.reshape(()), mean.reshape(()), m2.reshape(())
        return count, mean, m2

    # ------------------------------------------------------------ statistics
    def set_statistics(self, mean, variance) -> None:
        """Use the given ``mean`` and ``variance`` (scalars or ``(n_features,)``)."""
        stats = []
        for name, value in (("mean", mean), ("variance", variance)):
            arr = np.array(_as_numeric_array(value, name), dtype=np.float64)
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] == 0):
                raise ValueError(f"{name}: expected a scalar or a 1-D array (n_features,), got shape {arr.shape}")
            if self.axis is None and arr.ndim:
                raise ValueError(f"{name}: with axis=None expected a scalar, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: expected finite numbers, got {arr}")
            stats.append(arr)
        mean, variance = stats
        if np.any(variance < 0):
            raise ValueError(f"variance: expected values >= 0, got {variance.min()}")
        if mean.ndim and variance.ndim and mean.shape != variance.shape:
            raise ValueError(f"mean, variance: expected the same shape, got {mean.shape} and {variance.shape}")
        if mean.ndim != variance.ndim:
            mean, variance = np.broadcast_arrays(mean, variance)
            mean, variance = mean.copy(), variance.copy()
        self.mean, self.variance = mean, variance

    @property
    def scale(self):
        """``sqrt(variance)``, with 1 for features of (numerically) zero variance; float64."""
        self._require_adapted("scale")
        return np.where(self.variance == 0, 1.0, np.sqrt(self.variance))

    def _require_adapted(self, what):
        if self.mean is None:
            raise ValueError(f"{what}: the Normalization layer has no statistics yet; call adapt(X) "
                             f"on the training data first (or give mean= and variance=)")

    def _check_width(self, arr, name):
        d = self.n_features
        if d is not None and arr.shape[-1] != d:
            raise ValueError(f"{name}: the Normalization layer was adapted to {d} features, got shape {arr.shape}")

    # ------------------------------------------------------------ transform
    def transform(self, X, dtype=np.float64):
        """``(X - mean) / scale`` as a new C-contiguous array of ``dtype``, same shape as ``X``.

        ``X`` that ``dtype`` cannot hold exactly (float64 for float32) is standardized
        in float64 (or its own wider dtype) before the cast, block by block of rows, so
        a feature far from zero (timestamps, 1e6 + noise) keeps its precision."""
        self._require_adapted("transform")
        arr = _as_numeric_array(X, "X")
        self._check_width(arr, "X")
        dtype = np.dtype(dtype)
        if arr.ndim and narrows(arr.dtype, dtype):
            return self._transform_blocks(arr, dtype)
        out = np.subtract(arr, self.mean.astype(dtype), dtype=dtype)
        out /= self.scale.astype(dtype)
        return out

    def _transform_blocks(self, arr, dtype):
        """``transform`` computed in float64 (at least) and cast to ``dtype`` a block of
        rows at a time: no full-size float64 temporary."""
        work = np.result_type(arr.dtype, np.float64)
        mean, scale = self.mean.astype(work), self.scale.astype(work)
        out = np.empty(arr.shape, dtype)
        rows = max(1, _BLOCK_VALUES // max(1, arr[:1].size))
        for start in range(0, arr.shape[0], rows):
            block = np.subtract(arr[start:start + rows], mean, dtype=work)
            block /= scale
            with np.errstate(over="ignore"):  # an overflow to inf is reported by the caller's finite check
                out[start:start + rows] = block
        return out

    __call__ = transform

    def inverse_transform(self, Y, out=None):
        """``Y * scale + mean``: standardized values back in the original units;
        in place in ``out`` if given, else a new array of ``Y``'s dtype."""
        self._require_adapted("inverse_transform")
        Y = np.asarray(Y)
        self._check_width(Y, "Y")
        if out is None:
            out = np.array(Y, dtype=Y.dtype if Y.dtype.kind == "f" else np.float64)
        elif out is not Y:
            out[...] = Y
        out *= self.scale.astype(out.dtype)
        out += self.mean.astype(out.dtype)
        return out

    # ---------------------------------------------------------- persistence
    def get_config(self) -> dict:
        return {"axis": self.axis}

    @classmethod
    def from_config(cls, config: dict) -> "Normalization":
        return cls(**config)

    def __repr__(self):
        state = f"{self.n_features or 'any'} features" if self.adapted else "not adapted"
        return f"Normalization(axis={self.axis}, {state})"


def _is_array_like(data):
    return isinstance(data, (np.ndarray, list, tuple)) or hasattr(data, "__array__") \
        or hasattr(data, "__array_interface__")


class _RunningMoments:
    """Count, mean and sum of squared deviations merged batch by batch (Chan, Golub
    and LeVeque's pairwise update), per feature, in float64."""

    def __init__(self):
        self.count = self.mean = self.m2 = None

    def add(self, batch, name):
        count, mean, m2 = batch
        if self.count is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        if count.shape != self.count.shape:
            raise ValueError(f"{name}: expected {self.count.shape[0]} features like the earlier batches, "
                             f"got {count.shape[0]}")
        total = self.count + count
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, count / np.maximum(total, 1), 0.0)
        delta = mean - self.mean
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + delta * delta * self.count * share
        self.count = total

    def result(self):
        if self.count is None:
            return np.zeros(0), None, None
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = np.where(self.count > 0, self.m2 / np.maximum(self.count, 1), 0.0)
        return np.asarray(self.count), np.asarray(self.mean, np.float64), np.asarray(variance, np.float64)

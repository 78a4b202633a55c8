"""Input checks shared by ``fit``, ``evaluate`` and ``predict``.

Every check raises ``TypeError``/``ValueError`` naming the argument, what was
expected and what was received; none broadcasts silently, none ignores a
masked array's mask, and none lets a value overflow the model's dtype to inf.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._kernels.sparse import INDEX_LIMIT, SparseInput


def _as_numeric_array(value, name):
    if isinstance(value, np.ma.MaskedArray):
        n_masked = int(np.count_nonzero(np.ma.getmaskarray(value)))
        if n_masked:
            raise ValueError(f"{name}: a masked array with {n_masked} masked value(s); fill them "
                             f"(e.g. {name}.filled(0)) or drop those rows first")
        value = value.data
    if hasattr(value, "toarray") or type(value).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name}: sparse matrices are not supported; pass a dense array (e.g. {name}.toarray())")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: could not convert to an array: {exc}") from None
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected numeric data, got an array of Python objects") from None
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: expected real numbers, got complex dtype {arr.dtype}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name}: expected numeric data, got dtype {arr.dtype}")
    return arr


def check_finite(arr, name):
    """Raise ``ValueError`` (naming ``name`` and the count) if ``arr`` holds NaN or inf."""
    # A sum is finite only if every element is (NaN and inf propagate); only when
    # it is not (or overflowed) is the full elementwise scan needed.
    if arr.dtype.kind != "f":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(arr)
    if not np.isfinite(total) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN or infinite value(s); expected finite numbers")


def narrows(source, dtype) -> bool:
    """Whether casting numbers of dtype ``source`` to ``dtype`` may round them (float64
    or int32 to float32, int64 to float64): such input is standardized first."""
    return np.dtype(source).kind in "fiu" and not np.can_cast(source, dtype, "safe")


def cast(arr, dtype, name):
    """``arr`` as a C-contiguous array of ``dtype``; values too large for ``dtype``
    (1e39 for float32) raise ``ValueError`` instead of silently becoming inf."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if out is arr or arr.dtype.kind not in "fiu" or out.dtype.kind != "f" \
            or np.finfo(out.dtype).max >= _max_of(arr.dtype):
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(out)
    if np.isfinite(total):
        return out
    overflow = np.isfinite(arr) & ~np.isfinite(out)
    n = int(np.count_nonzero(overflow))
    if n:
        biggest = np.max(np.abs(arr[overflow]))  # in arr's dtype: a long double's 1e310 is not inf
        advice = "scale the data" + (" or use dtype='float64'" if out.dtype == np.float32 else "")
        raise ValueError(f"{name}: {n} value(s) overflow {out.dtype}: largest magnitude {biggest:g} exceeds "
                         f"{out.dtype}'s maximum {float(np.finfo(out.dtype).max):g}; {advice}")
    return out


def _max_of(dtype):
    return np.finfo(dtype).max if dtype.kind == "f" else np.iinfo(dtype).max


def check_X(X, n_features, dtype, name="X", finite=True, accept_sparse=False, precise=False):
    """``X`` as a C-contiguous ``(n, n_features)`` array of ``dtype`` (a copy only if needed);
    ``finite=False`` leaves the NaN/inf scan to the caller (a kernel that checks as it reads).
    With ``accept_sparse`` a scipy.sparse ``X`` becomes a ``fastnn._sparse.SparseInput``.
    With ``precise`` an ``X`` that ``dtype`` cannot hold exactly (float64 for float32) is
    returned as it is, for a Normalization layer to standardize before the cast."""
    if accept_sparse and is_sparse(X):
        return check_sparse_X(X, n_features, dtype, name)
    arr = _as_numeric_array(X, name)
    if arr.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1), a single sample with X.reshape(1, -1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least 1 sample, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name}: expected {n_features} features (columns), got shape {arr.shape}")
    if not (precise and narrows(arr.dtype, dtype)):
        arr = cast(arr, dtype, name)
    if finite:
        check_finite(arr, name)
    return arr


def check_y(y, loss, n_outputs, n_samples, dtype, name="y", precise=False):
    """Targets in the layout the loss kernels need.

    Sparse categorical: int64 labels ``(n,)`` in ``[0, n_outputs)``; every other
    loss: ``(n, n_outputs)`` of ``dtype`` (a 1-D ``y`` is accepted for one output),
    or, with ``precise``, of their own dtype where ``dtype`` cannot hold them exactly
    (as ``check_X``: for target normalization to standardize before the cast).
    """
    arr = _as_numeric_array(y, name)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array of targets, got a scalar")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name}: expected {n_samples} targets to match X, got {arr.shape[0]} (shape {arr.shape})")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
    if loss.sparse:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(
                f"{name}: {loss.name} expects integer class labels of shape (n,), got shape {arr.shape}"
                + ("; for one-hot targets use 'categorical_crossentropy'" if arr.ndim == 2 else "")
            )
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: {loss.name} expects integer class labels, got non-integer values")
        if arr.size and (arr.min() < 0 or arr.max() >= n_outputs):
            raise ValueError(
                f"{name}: labels must be integers in [0, {n_outputs}) for a {n_outputs}-unit output layer, "
                f"got values in [{arr.min()}, {arr.max()}]"
            )
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim == 1:
        if n_outputs != 1:
            extra = "; for integer labels use 'sparse_categorical_crossentropy'" if loss.probabilistic else ""
            raise ValueError(
                f"{name}: expected shape ({n_samples}, {n_outputs}) for a {n_outputs}-unit output layer, "
                f"got shape {arr.shape}{extra}"
            )
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        raise ValueError(
            f"{name}: expected shape ({n_samples}, {n_outputs}) for a {n_outputs}-unit output layer, got shape {arr.shape}"
        )
    if not (precise and narrows(arr.dtype, dtype)):
        arr = cast(arr, dtype, name)
    if loss.probabilistic and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(
            f"{name}: {loss.name} expects targets in [0, 1], got values in [{arr.min()}, {arr.max()}]"
        )
    return arr


def check_sample_weight(sample_weight, n_samples, dtype, name="sample_weight"):
    """``None``, or ``(n_samples,)`` non-negative finite weights of ``dtype``, not all zero."""
    if sample_weight is None:
        return None
    w = _as_numeric_array(sample_weight, name)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"{name}: expected shape ({n_samples},), got shape {w.shape}")
    w = cast(w, dtype, name)
    check_finite(w, name)
    if np.any(w < 0):
        raise ValueError(f"{name}: expected non-negative weights, got a negative value")
    if not np.any(w > 0):
        raise ValueError(f"{name}: expected at least one positive weight, got all zeros")
    return w


def class_weights(class_weight, y, loss, n_outputs, sample_weight, dtype):
    """Per-row weights ``class_weight[class of the row]`` (classes not in the dict weigh
    1), as Keras turns ``fit(class_weight=...)`` into sample weights: the class of a row
    is its label, the argmax of a one-hot row, or ``y > 0.5`` for one output.  ``y``
    checked by ``check_y``; ``None`` when ``class_weight`` is ``None``."""
    if class_weight is None:
        return sample_weight
    if sample_weight is not None:
        raise ValueError("class_weight: cannot be combined with sample_weight; multiply the "
                         "class weights into sample_weight instead")
    if not loss.probabilistic:
        raise ValueError(f"class_weight: needs a classification loss (binary or categorical "
                         f"cross-entropy), got {loss.name}")
    if not isinstance(class_weight, Mapping):
        raise TypeError(f"class_weight: expected a dict {{class index: weight}}, got "
                        f"{type(class_weight).__name__}")
    n_classes = 2 if n_outputs == 1 else n_outputs
    table = np.ones(n_classes, np.float64)
    for key, value in class_weight.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) \
                or not 0 <= key < n_classes:
            raise ValueError(f"class_weight: expected class indices in [0, {n_classes}) as keys, "
                             f"got {key!r}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(value) or value < 0:
            raise ValueError(f"class_weight[{key!r}]: expected a finite weight >= 0, got {value!r}")
        table[int(key)] = value
    if y.ndim == 1:
        classes = y
    elif n_outputs == 1:
        classes = (y[:, 0] > 0.5).astype(np.intp)
    else:
        classes = y.argmax(axis=1)
    weights = table[classes].astype(dtype)
    if not np.any(weights > 0):
        raise ValueError("class_weight: every training row's class has weight 0")
    return weights


def check_batch_size(batch_size, n_samples):
    """``None`` means the whole data set in one batch (full-batch gradient descent)."""
    if batch_size is None:
        return n_samples
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer or None (full batch), got {batch_size!r}")
    return int(min(batch_size, n_samples))


def check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def is_sparse(X) -> bool:
    """Whether ``X`` is a scipy.sparse matrix or array (without importing scipy)."""
    return type(X).__module__.startswith("scipy.sparse")


def check_sparse_X(X, n_features, dtype, name="X") -> SparseInput:
    """``X`` (any scipy.sparse format) as a checked ``SparseInput`` of ``dtype``."""
    import scipy.sparse as sp

    if len(X.shape) != 2:
        raise ValueError(f"{name}: expected a 2-D sparse matrix (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name}: expected at least 1 sample, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name}: expected {n_features} features (columns), got shape {X.shape}")
    if X.shape[1] > INDEX_LIMIT:
        raise ValueError(f"{name}: at most {INDEX_LIMIT} features are supported, got shape {X.shape}")
    if X.dtype == object or np.iscomplexobj(X.dtype.type(0)):
        raise TypeError(f"{name}: expected a sparse matrix of real numbers, got dtype {X.dtype}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TypeError(f"{name}: expected numeric data, got dtype {X.dtype}")
    check_sparse_indices(X, name)  # index ranges and indptr order: the compiled kernels trust them
    # a copy only if X is not CSR already (scipy builds a valid one then); the new object drops
    # values stored past indptr[-1] (scipy prunes them), the caller's keeps them
    matrix = sp.csr_matrix(X)
    data = cast(matrix.data, dtype, name)
    check_finite(data, name)
    if data is not matrix.data or not matrix.has_canonical_format:
        matrix = sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape, copy=True)
        matrix.sum_duplicates()  # also sorts the indices of each row
    return SparseInput(matrix)


def check_sparse_indices(X, name="X"):
    """``ValueError`` naming ``name`` unless the index arrays of a scipy.sparse CSR/CSC/BSR/COO
    ``X`` are integer, as long as its data, in bounds and (``indptr``) non-decreasing from 0:
    scipy's conversions to CSR trust them (a bad index crashes or drops an entry)."""
    if not is_sparse(X) or len(X.shape) != 2:  # the callers' shape checks name other shapes
        return
    try:
        _check_indices(X)
    except ValueError as exc:
        raise ValueError(f"{name}: not a valid sparse matrix ({exc})") from None


def _check_indices(X):
    fmt = getattr(X, "format", None)
    if fmt in ("csr", "csc", "bsr"):
        rows, cols = X.blocksize if fmt == "bsr" else (1, 1)
        n_major, n_minor = (X.shape[0] // rows, X.shape[1] // cols) if fmt != "csc" else X.shape[::-1]
        indptr, indices = _index_array(X.indptr, "indptr"), _index_array(X.indices, "indices")
        if indptr.shape != (n_major + 1,):
            raise ValueError(f"indptr: expected shape ({n_major + 1},), got shape {indptr.shape}")
        if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise ValueError("indptr: expected non-decreasing values from 0")
        if indptr[-1] > len(indices) or len(indices) != len(X.data):
            raise ValueError(f"indptr, indices, data: expected indptr[-1] <= len(indices) == len(data), "
                             f"got {indptr[-1]}, {len(indices)}, {len(X.data)}")
        _check_index_range(indices[:indptr[-1]], n_minor, "indices")
    elif fmt == "coo":
        row, col = _index_array(X.row, "row"), _index_array(X.col, "col")
        if not len(row) == len(col) == len(X.data):
            raise ValueError(f"row, col, data: expected equal lengths, got {len(row)}, {len(col)}, {len(X.data)}")
        _check_index_range(row, X.shape[0], "row")
        _check_index_range(col, X.shape[1], "col")


def _index_array(arr, name):
    arr = np.asarray(arr)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected a 1-D integer array, got shape {arr.shape} {arr.dtype}")
    return arr


def _check_index_range(indices, bound, name):
    if indices.size and (indices.min() < 0 or indices.max() >= bound):
        raise ValueError(f"{name}: expected values in [0, {bound}), got values in "
                         f"[{indices.min()}, {indices.max()}]")

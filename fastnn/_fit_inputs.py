"""``fit``'s arguments that are not arrays of the training data: the validation rows
(``validation_data`` or ``validation_split``) and ``verbose``."""
from __future__ import annotations

import math

import numpy as np

from . import _validation as check


def split_validation(model, X, y, w, validation_split, validation_data, n_inputs):
    """``(X, y, w, val)``: the training rows and ``val = (X_val, y_val, w_val)`` (or ``None``),
    from ``validation_data`` (checked as ``fit``'s own input, ``n_inputs`` features) or the
    last ``validation_split`` of the rows; either part may not have only zero weights.  The
    training rows are ``floor(n * (1 - validation_split))``, as in Keras."""
    dtype = np.dtype(model.dtype).type
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data: expected a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        Xv = check.check_X(validation_data[0], n_inputs, dtype, "validation_data[0]", accept_sparse=True,
                           precise=model._keeps_X)
        yv = check.check_y(validation_data[1], model.loss, model.output_dim, Xv.shape[0], dtype, "validation_data[1]",
                           precise=model._keeps_y)
        wv = validation_data[2] if len(validation_data) == 3 else None
        wv = check.check_sample_weight(wv, Xv.shape[0], dtype, "validation_data[2]")
        return X, y, w, (Xv, yv, wv)
    if isinstance(validation_split, (bool, np.bool_)) \
            or not isinstance(validation_split, (int, float, np.integer, np.floating)) \
            or not 0 <= validation_split < 1:
        raise ValueError(f"validation_split: expected a float in [0, 1), got {validation_split!r}")
    validation_split = float(validation_split)
    if validation_split == 0:
        return X, y, w, None
    n_val = X.shape[0] - int(math.floor(X.shape[0] * (1.0 - validation_split)))
    if n_val == 0 or n_val == X.shape[0]:
        raise ValueError(
            f"validation_split: {validation_split} of {X.shape[0]} samples leaves "
            f"{n_val} for validation and {X.shape[0] - n_val} for training; both need at least 1"
        )
    cut = X.shape[0] - n_val
    split_w = (None, None) if w is None else (w[:cut], w[cut:])
    for part, rows in zip(split_w, (f"the first {cut} rows (training)", f"the last {n_val} rows (validation)")):
        if part is not None and not np.any(part > 0):
            raise ValueError(f"sample_weight: {rows} that validation_split={validation_split} leaves "
                             f"have only zero weights; their weighted loss is undefined")
    return X[:cut], y[:cut], split_w[0], (X[cut:], y[cut:], split_w[1])


def check_verbose(verbose):
    """fit's ``verbose`` as 0, 1 or 2 (Keras also takes True/False and "auto", which is 1)."""
    if isinstance(verbose, str) and verbose == "auto":
        return 1
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if isinstance(verbose, (int, np.integer)) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"verbose: expected 0, 1, 2, True, False or 'auto', got {verbose!r}")


def check_shuffle(shuffle):
    """fit's ``shuffle`` as a bool: True or False (NumPy's bools, 0 and 1 too)."""
    if isinstance(shuffle, (bool, np.bool_)) or (isinstance(shuffle, (int, np.integer)) and shuffle in (0, 1)):
        return bool(shuffle)
    raise ValueError(f"shuffle: expected True or False, got {shuffle!r}")


def check_callbacks(callbacks):
    """fit's ``callbacks`` as a new list: None, one Callback, or a list or tuple of them."""
    from .callbacks import Callback

    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):  # one callback, as Keras takes it
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks: expected a list of Callback instances, got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}]: expected a Callback instance, got {type(cb).__name__}")
    return list(callbacks)

"""Dask support: the thread budget of a task in a Dask worker, and out-of-core
training over the row blocks of a Dask array (``partial_fit_blocks``)."""
from __future__ import annotations

import contextlib
import numbers
import os
import sys

import numpy as np
from sklearn.base import ClassifierMixin

__all__ = ["partial_fit_blocks"]


# ------------------------------------------------------------------- threads
def _worker_thread_budget():
    """Threads one task may use inside a Dask worker, or None outside one.

    A Dask worker runs one task per worker thread and starts its processes
    with ``OMP_NUM_THREADS`` (and the BLAS equivalents) set to 1; fastnn keeps
    to that budget (``OMP_NUM_THREADS`` if set, else 1) also where the
    variables were not set, as in workers that are threads of the client.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        distributed.get_worker()
    except ValueError:
        return None
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def _thread_budget():
    """Inside a Dask worker, limit BLAS and OpenMP threads to the task's budget."""
    budget = _worker_thread_budget()
    if budget is None:
        yield
        return
    from threadpoolctl import threadpool_info, threadpool_limits

    if all(pool["num_threads"] <= budget for pool in threadpool_info()):
        yield
        return
    with threadpool_limits(limits=budget):
        yield


# ---------------------------------------------------------- out-of-core training
def partial_fit_blocks(estimator, X, y, *, epochs=1, classes=None, sample_weight=None):
    """Train ``estimator`` by ``partial_fit`` over the row blocks of ``X`` and ``y``.

    Streams one block at a time: each block is computed (for a Dask array,
    ``X.blocks[i].compute()``), passed to ``partial_fit`` and dropped before
    the next is read, so only one block is ever in memory.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor (or any estimator with partial_fit)
    X : dask.array.Array of shape (n_samples, n_features), chunked along rows only,
        or a sequence of NumPy arrays (the blocks)
    y : dask.array.Array or sequence of arrays, with the same row blocks as ``X``
    epochs : int, default=1
        Passes over all blocks, in order.
    classes : array-like, optional
        All class labels, passed to the first ``partial_fit`` of a classifier.
    sample_weight : dask.array.Array or sequence of arrays, optional

    Returns
    -------
    estimator
    """
    X_blocks, y_blocks = _row_blocks(X, "X"), _row_blocks(y, "y")
    w_blocks = None if sample_weight is None else _row_blocks(sample_weight, "sample_weight")
    if len(X_blocks) != len(y_blocks) or (w_blocks is not None and len(w_blocks) != len(X_blocks)):
        raise ValueError(f"X, y and sample_weight must have the same number of row blocks, got "
                         f"{len(X_blocks)}, {len(y_blocks)}" + ("" if w_blocks is None else f", {len(w_blocks)}"))
    if not (isinstance(epochs, numbers.Integral) and not isinstance(epochs, (bool, np.bool_)) and epochs >= 1):
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
    is_classifier = isinstance(estimator, ClassifierMixin)
    for _ in range(epochs):
        for i in range(len(X_blocks)):
            Xb, yb = _materialize(X_blocks[i]), _materialize(y_blocks[i])
            kwargs = {}
            if w_blocks is not None:
                kwargs["sample_weight"] = _materialize(w_blocks[i])
            if is_classifier and classes is not None:
                kwargs["classes"] = classes
            estimator.partial_fit(Xb, yb, **kwargs)
            del Xb, yb, kwargs
    return estimator


def _row_blocks(a, name):
    if hasattr(a, "blocks") and hasattr(a, "numblocks"):  # a Dask array
        if len(a.numblocks) > 1 and any(n != 1 for n in a.numblocks[1:]):
            raise ValueError(f"{name}: expected chunks along rows only, got numblocks {a.numblocks} "
                             f"(rechunk with {name}.rechunk({{1: -1}}))")
        return [a.blocks[i] for i in range(a.numblocks[0])]
    return list(a)


def _materialize(block):
    return block.compute() if hasattr(block, "compute") else np.asarray(block)

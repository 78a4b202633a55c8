"""Minibatch gathering and ``train_batches`` (NumPy reference).

``train_batches`` is the reference step of ``fastnn._kernels.step`` run batch
after batch on these kernels: the same function the model's per-kernel loop
runs, so the two paths cannot drift apart.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from .. import step
from ..plan import TrainResult
from ._activations import activation_backward
from ._dense import dense_backward, dense_forward, maxout_backward, maxout_forward
from ._losses import loss_output_delta, loss_value
from ._optimizers import adagrad_update, adam_update, rmsprop_update, sgd_update
from ._sparse import sparse_dense_backward, sparse_dense_forward


def gather_rows(X, idx, out):
    np.take(X, idx, axis=0, out=out, mode="clip")  # "raise" would buffer a copy of out


# The kernels the reference step calls, as one object.
_KERNELS = SimpleNamespace(
    dense_forward=dense_forward, activation_backward=activation_backward, dense_backward=dense_backward,
    maxout_forward=maxout_forward, maxout_backward=maxout_backward, loss_value=loss_value,
    loss_output_delta=loss_output_delta, gather_rows=gather_rows, sgd_update=sgd_update,
    adagrad_update=adagrad_update, rmsprop_update=rmsprop_update, adam_update=adam_update,
    sparse_dense_forward=sparse_dense_forward, sparse_dense_backward=sparse_dense_backward,
)


def train_batches(plan, first_batch, n_batches, lrs, step0):
    loss_sum = correct = squared_error = absolute_error = 0.0
    for j in range(n_batches):
        Xb, Yb, SWb = step.gather_batch(_KERNELS, plan, first_batch + j)
        batch_loss = step.train_step(_KERNELS, plan, Xb, Yb, SWb, lrs[j], step0 + j + 1)
        if not math.isfinite(batch_loss):
            return TrainResult(j, loss_sum, correct, squared_error, absolute_error, True)
        m = Xb.shape[0]
        loss_sum += (m if SWb is None else float(SWb.sum(dtype=np.float64))) * batch_loss
        c, se, ae = step.batch_statistics(plan.workspaces[-1].A[:m], Yb)
        correct, squared_error, absolute_error = correct + c, squared_error + se, absolute_error + ae
    finite = True
    if n_batches and first_batch + n_batches == plan.n_batches:
        finite = step.ends_finite(_KERNELS, plan, Xb)
    return TrainResult(n_batches, loss_sum, correct, squared_error, absolute_error, finite)

"""The minibatch training step, written once, top to bottom, over kernel calls.

This is the readable reference every backend's ``train_batches`` must match:
the model's per-kernel training loop (``fastnn._training.KernelLoop``) and the
NumPy backend's ``train_batches`` both run these functions; the compiled
backends implement the same step in Numba and Cython and the conformance tests
hold them to it.  ``K`` is any object with the contract's kernels (a backend
module); ``plan`` is a ``TrainingPlan``.
"""
from __future__ import annotations

import math

import numpy as np

from .codes import OPT_ADAGRAD, OPT_ADAM, OPT_MOMENTUM, OPT_NESTEROV, OPT_RMSPROP, OPT_SGD
from .sparse import SparseInput


def gather_batch(K, plan, j):
    """Copy batch ``j``'s rows (``plan.perm``) into ``plan.Xb``/``Yb``/``SWb``;
    returns views of the ``m`` rows written: ``(Xb, Yb, SWb or None)``.  A sparse
    ``plan.X`` is not copied: its ``Xb`` is a ``SparseBatch`` of those rows."""
    start = j * plan.batch_size
    stop = min(start + plan.batch_size, plan.X.shape[0])
    idx = plan.perm[start:stop]
    m = stop - start
    Yb = plan.Yb[:m]
    if isinstance(plan.X, SparseInput):
        Xb = plan.X.batch(idx)
    else:
        Xb = plan.Xb[:m]
        K.gather_rows(plan.X, idx, Xb)
    K.gather_rows(plan.Y, idx, Yb)
    SWb = None
    if plan.SW is not None:
        SWb = plan.SWb[:m]
        K.gather_rows(plan.SW, idx, SWb)
    return Xb, Yb, SWb


def forward(K, layers, X, workspaces):
    """Every layer's forward pass; returns the last layer's activations."""
    A = X
    for layer, ws in zip(layers, workspaces):
        A = layer.forward(K, A, ws)
    return A


def loss_and_gradients(K, layers, loss, Xb, Yb, SWb, workspaces):
    """Forward, loss, backward: fills every layer's ``dW``/``db`` and returns
    the batch loss (gradients are left as they were if it is not finite)."""
    A = forward(K, layers, Xb, workspaces)
    batch_loss = K.loss_value(loss, A, Yb, SWb)
    if not math.isfinite(batch_loss):
        return batch_loss
    out_act = layers[-1].output_activation()
    Z, A_out, dZ_out = layers[-1].loss_buffers(workspaces[-1])
    K.loss_output_delta(loss, out_act.code, out_act.alpha, Z, A_out, Yb, SWb, dZ_out)
    last = len(layers) - 1
    for i in range(last, -1, -1):
        X_in = Xb if i == 0 else workspaces[i - 1].A
        dX = None if i == 0 else layers[i - 1].grad_input_buffer(workspaces[i - 1])
        layers[i].backward(K, X_in, workspaces[i], dX, i == last)
    return batch_loss


def update_parameter(K, rule, hyper, param, grad, lr, step, slot1, slot2):
    """One optimizer update of ``param`` in place; ``step`` is the 1-based update count."""
    if rule == OPT_SGD:
        K.sgd_update(param, grad, lr, 0.0, False, None)
    elif rule == OPT_MOMENTUM or rule == OPT_NESTEROV:
        K.sgd_update(param, grad, lr, hyper.momentum, rule == OPT_NESTEROV, slot1,
                     bool(hyper.classic_momentum))
    elif rule == OPT_ADAGRAD:
        K.adagrad_update(param, grad, lr, hyper.epsilon, slot1, bool(hyper.epsilon_inside_sqrt))
    elif rule == OPT_RMSPROP:
        K.rmsprop_update(param, grad, lr, hyper.rho, hyper.epsilon, slot1, bool(hyper.epsilon_inside_sqrt))
    elif rule == OPT_ADAM:
        K.adam_update(param, grad, lr, hyper.beta_1, hyper.beta_2, hyper.epsilon, step, slot1, slot2,
                      bool(hyper.epsilon_inside_sqrt))
    else:
        raise ValueError(f"unknown optimizer code {rule}")


def apply_updates(K, plan, lr, step):
    """Update every parameter of ``plan`` from its gradient."""
    for l in range(len(plan.Ws)):
        update_parameter(K, plan.optimizer, plan.hyper, plan.Ws[l], plan.dWs[l], lr, step,
                         plan.S1W[l], plan.S2W[l])
        if plan.bs[l].size:
            update_parameter(K, plan.optimizer, plan.hyper, plan.bs[l], plan.dbs[l], lr, step,
                             plan.S1b[l], plan.S2b[l])


def train_step(K, plan, Xb, Yb, SWb, lr, step):
    """One minibatch step on ``Xb (m, n_0)``: forward, loss, backward, update.

    Returns the batch loss before the update; when it is not finite nothing
    is updated.
    """
    m = Xb.shape[0]
    workspaces = plan.workspaces if m == plan.batch_size else [ws.rows(m) for ws in plan.workspaces]
    batch_loss = loss_and_gradients(K, plan.layers, plan.loss, Xb, Yb, SWb, workspaces)
    if math.isfinite(batch_loss):
        apply_updates(K, plan, lr, step)
    return batch_loss


def all_finite(arrays) -> bool:
    """Is every element of every array finite?  (min/max propagate NaN and show
    infinities; nothing is allocated.)"""
    for a in arrays:
        if a.size and not (math.isfinite(a.min()) and math.isfinite(a.max())):
            return False
    return True


def ends_finite(K, plan, Xb) -> bool:
    """After an epoch's last update: are the parameters, the optimizer slots and the
    outputs of its last batch ``Xb`` under the updated weights all finite?  (Each
    batch's loss is checked before its update, which cannot see what the last
    update did.)  The outputs go to the workspaces, as in a training step."""
    state = (plan.Ws, plan.bs, plan.S1W, plan.S1b, plan.S2W, plan.S2b)
    if not all(all_finite(arrays) for arrays in state):
        return False
    m = Xb.shape[0]
    workspaces = plan.workspaces if m == plan.batch_size else [ws.rows(m) for ws in plan.workspaces]
    with np.errstate(all="ignore"):
        return all_finite([forward(K, plan.layers, Xb, workspaces)])


def batch_statistics(A, Y):
    """``(correct, squared_error, absolute_error)`` of one batch's outputs ``A (m, k)``
    (see ``TrainResult``)."""
    m, k = A.shape
    if Y.ndim == 1:  # class labels
        return float(np.count_nonzero(A.argmax(axis=1) == Y)), 0.0, 0.0
    if k == 1:
        correct = np.count_nonzero((A[:, 0] > 0.5) == (Y[:, 0] > 0.5))
    else:
        correct = np.count_nonzero(A.argmax(axis=1) == Y.argmax(axis=1))
    diff = A - Y
    return (float(correct), float(np.square(diff).mean(axis=1).sum(dtype=np.float64)),
            float(np.abs(diff).mean(axis=1).sum(dtype=np.float64)))

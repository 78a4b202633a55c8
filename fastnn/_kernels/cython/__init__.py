"""The Cython backend: fastnn's compiled kernels (see ``fastnn._kernels`` for the contract).

The kernels are the compiled functions themselves, re-exported without a
Python wrapper so a call into a tiny layer costs only argument checking.
They live in ``_dense`` (dense layers, activations, maxout),
``_losses`` (loss values and output deltas) and ``_optimizers`` (optimizer
updates, minibatch gathers); ``_training`` holds the compiled training path
``train_batches`` (whole minibatch steps without the GIL, built on the same kernels; it splits each batch across
OpenMP threads that call BLAS on one thread, and limits every BLAS to one
thread while it runs); ``_predict`` holds ``predict_rows``, the forward
pass over every row in one call, threaded the same way.
Importing this module raises ImportError when the extensions are not built.

Beyond the contract: ``dense_forward(..., n_threads=k)`` splits the batch
rows over ``k`` OpenMP threads, but only while ``blas_single_threaded()``
(every BLAS limited to one thread, e.g. ``threadpool_limits(1,
user_api="blas")``); and
``openmp_enabled()`` says whether this build has OpenMP.
"""
import numpy as np

from ._blas import openmp_enabled
from ._dense import (
    activation_backward,
    blas_single_threaded,
    dense_backward,
    dense_forward,
    maxout_backward,
    maxout_forward,
)
from ._losses import loss_output_delta, loss_value
from ._optimizers import (
    adagrad_update,
    adam_update,
    gather_rows,
    rmsprop_update,
    sgd_update,
)
from ._predict import predict_rows
from ._training import train_batches as _train_batches
from ..codes import OPT_ADAM
from ..plan import TrainResult

NAME = "cython"


def train_batches(plan, first_batch, n_batches, lrs, step0):
    h = plan.hyper
    hyper = np.array([h.momentum, h.beta_1 if plan.optimizer == OPT_ADAM else h.rho, h.beta_2, h.epsilon])
    out = np.zeros(4, np.float64)
    done = _train_batches(
        plan.X, plan.Y, plan.SW, plan.perm, plan.batch_size, first_batch, n_batches,
        plan.Ws, plan.bs, plan.dWs, plan.dbs, plan.acts, plan.alphas, plan.l2s,
        plan.Zs, plan.As, plan.dZs, plan.Xb, plan.Yb, plan.SWb,
        plan.loss, plan.optimizer, hyper, lrs, step0, plan.S1W, plan.S1b, plan.S2W, plan.S2b, out)
    return TrainResult(int(done), *map(float, out))

__all__ = [
    "NAME",
    "activation_backward",
    "adagrad_update",
    "adam_update",
    "blas_single_threaded",
    "dense_backward",
    "dense_forward",
    "gather_rows",
    "loss_output_delta",
    "loss_value",
    "maxout_backward",
    "maxout_forward",
    "openmp_enabled",
    "predict_rows",
    "rmsprop_update",
    "sgd_update",
    "train_batches",
]

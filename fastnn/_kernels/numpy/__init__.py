"""The NumPy backend: the readable reference every other backend must match.

Plain vectorized NumPy with ``out=`` everywhere, so the training loop's steady
state allocates nothing but NumPy's own small reductions (temporaries come from
per-thread reusable buffers, ``_scratch``).  One private module per concern:
``_activations``, ``_dense`` (dense and maxout layers), ``_losses``,
``_optimizers``, ``_training`` (gather, ``train_batches``), ``_predict`` and
``_sparse`` (the first layer on CSR input).
See ``fastnn._kernels`` for the contract.
"""
from ._activations import activation_backward
from ._dense import dense_backward, dense_forward, maxout_backward, maxout_forward
from ._losses import loss_output_delta, loss_value
from ._optimizers import adagrad_update, adam_update, rmsprop_update, sgd_update
from ._predict import predict_rows
from ._sparse import sparse_dense_backward, sparse_dense_forward
from ._training import gather_rows, train_batches

NAME = "numpy"

__all__ = [
    "NAME",
    "activation_backward",
    "adagrad_update",
    "adam_update",
    "dense_backward",
    "dense_forward",
    "gather_rows",
    "loss_output_delta",
    "loss_value",
    "maxout_backward",
    "maxout_forward",
    "predict_rows",
    "rmsprop_update",
    "sgd_update",
    "sparse_dense_backward",
    "sparse_dense_forward",
    "train_batches",
]

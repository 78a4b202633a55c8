"""The Cython backend: fastnn's compiled kernels (see ``fastnn._kernels`` for the contract).

The kernels are the compiled functions themselves, re-exported without a
Python wrapper, so a call into a tiny layer costs only argument checking.
One private extension module per concern:

``_activations.pxd``
    the activations and their derivatives, ``cdef inline`` so the other
    modules fuse them into their own loops;
``_dense``
    dense layers and maxout (GEMMs through ``_blas``, SciPy's BLAS);
``_losses``
    loss values and output deltas;
``_optimizers``
    optimizer updates (C loops in ``_simd_loops.h``) and the row gather;
``_training``
    ``train_batches``: whole minibatch steps over a ``TrainingPlan`` without
    the GIL, built on the same kernels, each batch split across OpenMP
    threads that call BLAS on one thread;
``_predict``
    ``predict_rows``, the forward pass over every row in one call, threaded
    the same way;
``_sparse``
    ``sparse_dense_forward`` and ``sparse_dense_backward``: a first Dense
    layer that reads the batch's rows of a SciPy CSR matrix (its ``indptr``,
    ``indices`` and ``data``) without densifying them; ``csr_from_dense``,
    a dense ``X``'s CSR in two passes without the GIL;
``_codes.pxd``
    the contract's codes as C enums (the values of ``fastnn._kernels.codes``).

Importing this package raises ImportError when the extensions are not built
(setup.py goes on without them where there is no C compiler).  Beyond the
contract, in the private modules: ``_dense.dense_forward_threads`` (the
batch rows split across OpenMP threads while BLAS runs on one thread),
``_dense.blas_single_threaded()``, ``_dense.hold_blas_single()`` and
``release_blas_single()`` (the process's one counted hold of BLAS at one
thread, which ``blas_threads.one_thread`` takes), ``_blas.openmp_enabled()`` (whether this
build has OpenMP) and ``_training``'s ``thread_statistics()`` and
``phase_statistics()``.
"""
from ._dense import (
    activation_backward,
    dense_backward,
    dense_forward,
    maxout_backward,
    maxout_forward,
)
from ._losses import loss_output_delta, loss_value
from ._optimizers import adagrad_update, adam_update, gather_rows, rmsprop_update, sgd_update
from ._predict import predict_rows
from ._sparse import csr_from_dense, sparse_dense_backward, sparse_dense_forward
from ._training import train_batches

NAME = "cython"

__all__ = [
    "NAME",
    "activation_backward",
    "adagrad_update",
    "adam_update",
    "csr_from_dense",
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

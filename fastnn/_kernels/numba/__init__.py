"""The Numba backend: every kernel of ``fastnn._kernels`` as one compiled pass.

The public kernels are the ``@njit`` dispatchers themselves: no Python layer in
between, so a call on a tiny layer costs about half a microsecond of dispatch.
``None`` arguments (no bias, no input gradient, no sample weights, no
velocity) are typed as ``none`` and their branches are pruned at compile time;
so are branches on ``ndim`` (sparse vs one-hot targets, 1-D vs 2-D
``gather_rows``).  Activation and loss codes are ordinary integer arguments;
the branch on them is taken once, outside the loops.  ``train_batches`` and
``predict_rows`` compile their loop once per model, with its optimizer and
activation codes as compile-time constants, so that a model compiles only its
own activations' and rule's loops (``_jit.SPECIALIZE``; the public kernels,
called with run-time codes, compile a branch per code).  float32 stays float32:
hyperparameters are cast to the array dtype on entry and constants are typed.
Kernels release the GIL.  Compilation is lazy (first call) and cached on disk;
``_warmup.warmup(dtype)`` compiles the usual specializations ahead of time.

Private modules, each importing only from those above it:

``_jit``          compile options, bit casts and ``_select``
``_math``         vectorizable float32-accurate ``_exp``, ``_tanh``, ... and reductions
``_activations``  activations and their derivatives
``_dense``        dense layers (BLAS GEMM, fused epilogue) and maxout
``_sparse``       a first dense layer on CSR input, never densified; a dense X to CSR
``_losses``       ``loss_value`` and ``loss_output_delta``
``_optimizers``   the four update rules
``_blas``         GEMM on blocks of arrays (a weight gradient's rows, read in place)
``_sync``         the barrier of the training loop's threads (atomics)
``_pool``         the Python threads that run the loops side by side
``_loop_steps``   the training loop's steps that compile by type: ``gather_rows``,
                  the first layer's input, each layer's forward and backward
                  steps, the first layer split by input features
``_training``     denormal flushing and ``train_batches`` (a batch split across
                  threads, as in the Cython loop)
``_predict``      ``predict_rows``
``_warmup``       ahead-of-time compilation
``_notice``       says once, on stderr, when the kernels compile (a cold cache)
``_compile_ahead`` a second process compiling the training loop's back half
                  (``_back_half``) while a cold first fit compiles the loop

Numba's disk cache checks only each function's own source file; fastnn's kernels
are cached under one stamp of all the backend's sources instead, in a folder per
stamp (``__pycache__/fastnn-<stamp>/`` or under ``NUMBA_CACHE_DIR``), so an edit
of any of them recompiles them all (``_jit._cache_locators``).
"""
from . import _notice  # noqa: F401  (registers the compile notice)
from ._activations import activation_backward
from ._dense import dense_backward, dense_forward, maxout_backward, maxout_forward
from ._losses import loss_output_delta, loss_value
from ._optimizers import adagrad_update, adam_update, rmsprop_update, sgd_update
from ._predict import predict_rows
from ._sparse import csr_from_dense, sparse_dense_backward, sparse_dense_forward
from ._training import gather_rows, train_batches

NAME = "numba"

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

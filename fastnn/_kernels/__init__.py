"""The kernel contract: the only math the model code calls.

Every backend (``numpy`` -- the readable reference --, ``numba`` and
``cython``) defines the functions below with these names, argument orders,
shapes and dtypes.  The model owns memory:
arguments named ``*_out`` are written (never read), ``*_inout`` are updated in
place, everything else is read only.  No kernel allocates arrays that outlive
the call, and none returns an array.

Conventions
-----------
* Floating arrays are C-contiguous and share one dtype, float32 or float64
  (the model's ``dtype``); kernels never upcast the arrays they write.
* ``n`` is the number of rows in the (mini)batch, ``n_in``/``n_out`` the
  layer widths.  ``W`` is ``(n_in, n_out)`` and ``b`` is ``(n_out,)``.
* Activations and losses are passed as the small integer codes of ``codes``,
  resolved once at ``compile()``; ``alpha`` is the activation's parameter
  (Leaky ReLU slope, ELU alpha; ignored by the others).
* Hyperparameters (learning rate, betas, ...) are Python floats; compiled
  backends cast them to the array dtype before use.
* ``sample_weight`` is ``None`` or a ``(n,)`` array of the floating dtype;
  the batch loss is then ``sum(w_i * l_i) / sum(w_i)`` instead of the mean.

Kernels
-------
dense_forward(X, W, b, act, alpha, Z_out, A_out)
    ``Z_out (n, n_out) = X (n, n_in) @ W + b`` (``b`` may be ``None``: no
    bias) and ``A_out (n, n_out) = act(Z_out)``.  ``Z_out`` is kept for the
    backward pass.  For ``LINEAR`` the two may be the same array.  Softmax is row-wise and numerically stable.
activation_backward(act, alpha, Z, A, dA, dZ_out)
    ``dZ_out = dA * act'(Z)`` elementwise (for softmax, the row-wise
    Jacobian product ``A * (dA - sum(dA * A, axis=1))``).  ``dZ_out`` may be
    the same array as ``dA``.
dense_backward(X, W, dZ, l2, dW_out, db_out, dX_out)
    ``dW_out = X.T @ dZ + l2 * W``; ``db_out = dZ.sum(axis=0)`` unless
    ``db_out`` is ``None``; ``dX_out (n, n_in) = dZ @ W.T`` unless ``dX_out``
    is ``None`` (the first layer needs no input gradient).
maxout_forward(Z, pieces, A_out, argmax_out)
    ``Z (n, units * pieces)`` holds ``pieces`` consecutive values per unit;
    ``A_out (n, units)`` is their maximum and ``argmax_out (n, units)``
    (int64) the index of the winning piece (first on ties).
maxout_backward(dA, argmax, pieces, dZ_out)
    Routes ``dA (n, units)`` to the winning piece of ``dZ_out (n, units *
    pieces)``; the other pieces get zero.
loss_value(loss, A, Y, sample_weight) -> float
    Mean (or weighted mean) over the batch of the per-sample loss of the
    output activations ``A (n, k)`` against targets ``Y``: ``(n, k)`` floats,
    or ``(n,)`` int64 class labels for ``SPARSE_CATEGORICAL_CROSSENTROPY``.
    Logs are clipped to ``[EPS, 1 - EPS]`` of the dtype so the value is
    finite.
loss_output_delta(loss, act, alpha, Z, A, Y, sample_weight, dZ_out)
    Gradient of ``loss_value`` with respect to the output layer's
    pre-activation ``Z``.  For the matched pairs softmax + (sparse)
    categorical cross-entropy and sigmoid + binary cross-entropy this is the
    fused, stable ``(A - Y) / n`` (per-element mean for binary
    cross-entropy); otherwise ``loss'(A, Y)`` pushed through
    ``activation_backward``.
gather_rows(X, idx, out)
    ``out[i] = X[idx[i]]`` for ``idx (m,)`` int64; ``X`` is 1-D or 2-D of any
    dtype, ``out`` has ``m`` rows.
sgd_update(param_inout, grad, lr, momentum, nesterov, velocity_inout, classic=False)
    Plain: ``p -= lr * g``.  With ``momentum > 0``: ``v = momentum * v - lr *
    g``; ``p += v``, or with ``nesterov`` ``p += momentum * v - lr * g``.
    ``velocity_inout`` is ``None`` when ``momentum == 0``.  With ``classic``
    (and ``momentum > 0``) the velocity holds ``h``, not scaled by the rate:
    ``h = momentum * h + g``; ``p -= lr * h``, or with ``nesterov`` (PyTorch's
    form) ``p -= lr * (g + momentum * h)``.  Both forms agree while ``lr`` is
    constant; they differ once it follows a schedule.
adagrad_update(param_inout, grad, lr, epsilon, accum_inout, epsilon_inside_sqrt=False)
    ``acc += g**2``; ``p -= lr * g / (sqrt(acc) + epsilon)``, or with
    ``epsilon_inside_sqrt`` ``p -= lr * g / sqrt(acc + epsilon)``.
rmsprop_update(param_inout, grad, lr, rho, epsilon, ms_inout, epsilon_inside_sqrt=False)
    ``ms = rho * ms + (1 - rho) * g**2``; ``p -= lr * g / (sqrt(ms) + epsilon)``,
    or with ``epsilon_inside_sqrt`` ``p -= lr * g / sqrt(ms + epsilon)``.
adam_update(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout, epsilon_inside_sqrt=False)
    ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g**2``;
    ``p -= lr * sqrt(1 - b2**step) / (1 - b1**step) * m / (sqrt(v) + epsilon)``
    with ``step >= 1`` the 1-based update count.  With ``epsilon_inside_sqrt``
    the bias-corrected moments are formed literally: ``m_hat = m / (1 -
    b1**step)``, ``v_hat = v / (1 - b2**step)`` (the divisors computed in
    float64, then cast), ``p -= lr * m_hat / sqrt(v_hat + epsilon)``.

The last argument of the four ``*_update`` kernels is optional (a bool,
default ``False``: the Keras forms) and arrives from ``OptimizerHyper``'s
``classic_momentum`` and ``epsilon_inside_sqrt``.

Sparse input to the first layer
-------------------------------
A scipy.sparse ``X`` reaches the kernels as the arrays of a canonical CSR
matrix ``(N, n_in)``: ``indptr (N + 1,)`` int64, ``indices (nnz,)`` int32
(sorted in each row, in ``[0, n_in)``), ``data (nnz,)`` of the model's dtype,
checked once by ``fit``/``predict`` (see ``sparse.SparseInput``); a batch is
``rows (m,)`` int64, row numbers of that matrix (any order, repeats allowed),
read in place: no dense copy of the input is ever made.

sparse_dense_forward(indptr, indices, data, rows, W, b, act, alpha, Z_out, A_out)
    ``Z_out (m, n_out) = X[rows] @ W + b`` (``b`` may be ``None``) and
    ``A_out = act(Z_out)``, as ``dense_forward``.
sparse_dense_backward(indptr, indices, data, rows, dZ, l2, W, dW_out, db_out)
    ``dW_out (n_in, n_out) = X[rows].T @ dZ + l2 * W`` (every row written:
    features absent from the batch get ``l2 * W``) and ``db_out =
    dZ.sum(axis=0)`` unless ``db_out`` is ``None``.  No input gradient: only
    the first layer reads sparse input.

Whole-epoch kernels (optional)
------------------------------
A backend may also define these two; ``Sequential`` uses them when every
layer is ``Dense`` (and, for ``train_batches``, no callback needs per-batch
control), and must get the same results as the per-kernel path within the
conformance tolerances.

train_batches(plan, first_batch, n_batches, lrs, step0) -> TrainResult
    Runs batches ``first_batch .. first_batch + n_batches - 1`` of
    ``plan`` (a ``plan.TrainingPlan``, built once per ``fit``: data, layers,
    workspaces, loss, optimizer rule, hyper-parameters and state), each one
    the reference step of ``step.train_step``: gather the batch's rows,
    forward, loss, backward, update.  ``lrs`` float64 ``(n_batches,)`` is the
    learning rate of each batch; ``step0`` the optimizer's update count before
    the first one (Adam's bias correction uses ``step0 + j + 1`` for the j-th
    batch of the call).  Returns a ``plan.TrainResult``: the number of
    batches completed -- fewer than ``n_batches`` if a batch loss was not
    finite, that batch's update then not applied -- and the loss and metric
    totals of those batches.  A call that runs the epoch's last batch then
    checks what its update left (``TrainResult.ends_finite``: parameters,
    optimizer slots and that batch's outputs finite, as ``step.ends_finite``),
    on the threads it already holds.  ``plan.X`` may be a ``SparseInput``; the first
    layer then reads its rows in place (``plan.Xb`` has no rows and is not
    used), as ``sparse_dense_forward``/``sparse_dense_backward`` do.
predict_rows(X, Ws, bs, acts, alphas, Zs, As, out, sparse_below=0.0) -> bool
    The forward pass of a stack of ``Dense`` layers over every row of ``X (n,
    n_0)`` in one call: ``out (n, n_L)`` receives the last layer's
    activations, as ``dense_forward`` layer after layer would give them.
    A backend may read only the non-zero values of a block of rows whose
    share of non-zeros is below ``sparse_below`` (the same sums, rounded as
    the sparse first layer rounds them; 0.0: every value is read).
    ``Ws``, ``bs``, ``acts``, ``alphas`` as in ``TrainingPlan``; ``Zs[l]``,
    ``As[l]`` ``(R, n_{l+1})`` are workspaces of any ``R >= 1`` rows (the same
    in every layer), which the backend may use in blocks.  Returns ``False``
    when ``X`` holds a NaN or an infinity (``out`` is then unspecified), so
    the caller need not scan ``X`` beforehand.

Conversion (optional)
---------------------
csr_from_dense(X) -> (indptr, indices, data)
    The canonical CSR arrays of a dense ``X (n, d)``, C-contiguous float32 or
    float64: ``indptr`` int64 ``(n + 1,)``, ``indices`` int32 and ``data``
    (``X``'s dtype) holding every value that is not zero (NaN included, -0.0
    not), row after row in ascending columns.  ``SparseInput.from_dense``
    uses it when the model's backend has it (``fit(first_layer=...)`` converts
    a dense ``X`` once per call), else its NumPy blocks.

Each backend is a package (``numpy/``, ``numba/``, ``cython/``) whose public
names are exactly ``NAME`` (its name), the kernels of ``KERNELS`` and those of
``OPTIONAL_KERNELS`` it implements; its helpers live in private modules.
"""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from .codes import *  # noqa: F401,F403 - the codes are part of the contract

KERNELS = (
    "dense_forward",
    "activation_backward",
    "dense_backward",
    "maxout_forward",
    "maxout_backward",
    "loss_value",
    "loss_output_delta",
    "gather_rows",
    "sgd_update",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
    "sparse_dense_forward",
    "sparse_dense_backward",
)
OPTIONAL_KERNELS = ("train_batches", "predict_rows", "csr_from_dense")

# Public backend name -> module implementing the contract, in order of preference
# for backend="auto" (fastest first).
BACKEND_MODULES = {
    "cython": "fastnn._kernels.cython",
    "numba": "fastnn._kernels.numba",
    "numpy": "fastnn._kernels.numpy",
}

_loaded: dict[str, ModuleType] = {}
_failed: dict[str, str] = {}
_auto_fallback_warned = False


def load(name: str) -> ModuleType:
    """Import backend ``name`` and check it implements every kernel.

    Raises ImportError (with the reason) if the backend cannot be used here.
    """
    if name in _loaded:
        return _loaded[name]
    if name not in BACKEND_MODULES:
        raise ValueError(
            f"backend: expected one of {sorted(BACKEND_MODULES) + ['auto']}, got {name!r}"
        )
    if name in _failed:
        raise ImportError(f"fastnn backend {name!r} is not available: {_failed[name]}")
    try:
        module = importlib.import_module(BACKEND_MODULES[name])
        missing = [k for k in KERNELS if not callable(getattr(module, k, None))]
        if missing:
            raise ImportError(f"it does not implement {missing}")
    except ImportError as exc:
        _failed[name] = str(exc)
        raise ImportError(f"fastnn backend {name!r} is not available: {exc}") from exc
    _loaded[name] = module
    from .._threads import reapply_limits

    reapply_limits()  # a backend may bring its own thread pool (OpenMP, Numba)
    return module


def available() -> list[str]:
    """Names of the backends that import and implement the contract here."""
    names = []
    for name in BACKEND_MODULES:
        try:
            load(name)
        except ImportError:
            continue
        names.append(name)
    return names


def resolve(name: str) -> ModuleType:
    """Backend module for ``name``; ``"auto"`` picks the fastest available.

    When ``"auto"`` cannot have the fastest (``cython``: the extensions were
    not built, e.g. no C compiler at install time) it warns, once per process,
    which backend it picked and why.
    """
    global _auto_fallback_warned
    if name == "auto":
        unavailable = []
        for candidate in BACKEND_MODULES:
            try:
                module = load(candidate)
            except ImportError:
                unavailable.append(candidate)
                continue
            if unavailable and not _auto_fallback_warned:
                _auto_fallback_warned = True
                why = "; ".join(f"{n}: {_failed.get(n, 'not available')}" for n in unavailable)
                warnings.warn(
                    f"fastnn: backend='auto' uses the {candidate} backend, because "
                    + " and ".join(f"the {n} backend" for n in unavailable)
                    + f" cannot be used here ({why}). Reinstall fastnn with a C compiler "
                    "to build the Cython kernels.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return module
        raise ImportError("no fastnn backend is available")  # numpy always is
    return load(name)

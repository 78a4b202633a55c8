"""The kernel contract: the only math the model code calls.

Every backend (``numpy_backend`` -- the readable reference --, ``numba_backend``
and the Cython backend) is a module that defines exactly the functions below
with these names, argument orders, shapes and dtypes.  The model owns memory:
arguments named ``*_out`` are written (never read), ``*_inout`` are updated in
place, everything else is read only.  No kernel allocates arrays that outlive
the call, and none returns an array.

Conventions
-----------
* Floating arrays are C-contiguous and share one dtype, float32 or float64
  (the model's ``dtype``); kernels never upcast the arrays they write.
* ``n`` is the number of rows in the (mini)batch, ``n_in``/``n_out`` the
  layer widths.  ``W`` is ``(n_in, n_out)`` and ``b`` is ``(n_out,)``.
* Activations and losses are passed as the small integer codes below,
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
    backward pass.  Softmax is row-wise and numerically stable.
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
sgd_update(param_inout, grad, lr, momentum, nesterov, velocity_inout)
    Plain: ``p -= lr * g``.  With ``momentum > 0``: ``v = momentum * v - lr *
    g``; ``p += v``, or with ``nesterov`` ``p += momentum * v - lr * g``.
    ``velocity_inout`` is ``None`` when ``momentum == 0``.
adagrad_update(param_inout, grad, lr, epsilon, accum_inout)
    ``acc += g**2``; ``p -= lr * g / (sqrt(acc) + epsilon)``.
rmsprop_update(param_inout, grad, lr, rho, epsilon, ms_inout)
    ``ms = rho * ms + (1 - rho) * g**2``; ``p -= lr * g / (sqrt(ms) + epsilon)``.
adam_update(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout)
    ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g**2``;
    ``p -= lr * sqrt(1 - b2**step) / (1 - b1**step) * m / (sqrt(v) + epsilon)``
    with ``step >= 1`` the 1-based update count.

Each backend module also defines ``NAME`` (its public name).

Compiled training (optional)
----------------------------
A backend may also define ``train_batches``: whole minibatch steps (gather,
forward, loss, backward, optimizer update) for a stack of ``Dense`` layers in
one call, so no Python runs between steps.  ``Sequential.fit`` uses it when
every layer is ``Dense`` and no callback needs per-batch control, and must
get the same results as the per-kernel path (within the conformance
tolerances).  ``L`` is the number of layers, layer ``l`` maps ``n_l`` to
``n_{l+1}`` columns; ``B`` is the batch size.

train_batches(X, Y, SW, perm, batch_size, first_batch, n_batches,
              Ws, bs, dWs, dbs, acts, alphas, l2s,
              Zs, As, dZs, Xb, Yb, SWb,
              loss, opt, hyper, lrs, step0, S1W, S1b, S2W, S2b, out) -> int
    Data: ``X (n, n_0)``; ``Y`` int64 ``(n,)`` labels (sparse categorical
    cross-entropy) or ``(n, k)`` floats; ``SW`` ``(n,)`` sample weights or
    ``None``; ``perm (n,)`` int64 row order of this epoch.  Batch ``j`` holds
    rows ``perm[j*B : min((j+1)*B, n)]`` (the last may be short); the call
    runs batches ``first_batch .. first_batch + n_batches - 1``.
    Layers (tuples of length ``L``): ``Ws[l] (n_l, n_{l+1})``; ``bs[l]``
    ``(n_{l+1},)`` or a zero-length array for a layer without bias;
    ``dWs``/``dbs`` the gradients (same shapes); ``acts`` int64 ``(L,)``
    activation codes; ``alphas``, ``l2s`` float64 ``(L,)``.
    Workspaces (written): ``Zs[l]``, ``As[l]``, ``dZs[l]`` ``(B, n_{l+1})``;
    ``Xb (B, n_0)``, ``Yb`` (``B`` rows like ``Y``), ``SWb (B,)`` or ``None``.
    Optimizer: ``opt`` one of ``OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV,
    OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM``; ``hyper`` float64 ``(4,)`` =
    ``[momentum, rho or beta_1, beta_2, epsilon]`` (unused entries 0);
    ``lrs`` float64 ``(n_batches,)`` learning rate of each batch; ``step0``
    the optimizer's update count before the first batch (Adam's bias
    correction uses ``step0 + j + 1`` for the j-th batch of the call).
    Slots, tuples like ``Ws``/``bs``: ``S1W``/``S1b`` velocity (momentum,
    Nesterov), accumulator (Adagrad), mean square (RMSprop) or ``m`` (Adam);
    ``S2W``/``S2b`` Adam's ``v``; zero-length arrays where unused.  Each
    update is exactly the per-parameter kernel above (``*_update``).
    ``out`` float64 ``(4,)`` is *accumulated* (``+=``) per batch of ``m`` rows:
    ``out[0] += m * batch_loss`` (the loss before the update, as
    ``loss_value``), ``out[1] +=`` correct predictions (one output: ``a > 0.5``
    equals ``y > 0.5``; several: argmax of the output equals the label, or the
    argmax of a one-hot ``Y``), ``out[2] +=`` per-row mean squared error summed
    over rows, ``out[3] +=`` per-row mean absolute error summed over rows.
    Returns the number of batches completed: fewer than ``n_batches`` if a
    batch loss was not finite (that batch's update is then not applied).

Compiled inference (optional)
-----------------------------
predict_rows(X, Ws, bs, acts, alphas, Zs, As, out) -> bool
    The forward pass of a stack of ``Dense`` layers over every row of ``X (n,
    n_0)`` in one call: ``out (n, n_L)`` receives the last layer's
    activations, as ``dense_forward`` layer after layer would give them.
    ``Ws``, ``bs``, ``acts``, ``alphas`` as in ``train_batches``; ``Zs[l]``,
    ``As[l]`` ``(R, n_{l+1})`` are workspaces of any ``R >= 1`` rows (the same
    in every layer), which the backend may use in blocks.  Returns ``False``
    when ``X`` holds a NaN or an infinity (``out`` is then unspecified), so
    the caller need not scan ``X`` beforehand.  ``Sequential.predict`` uses it
    when every layer is ``Dense``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

# Activation codes.
LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTMAX, SOFTPLUS, GELU, SWISH = range(10)
N_ACTIVATIONS = 10
# Loss codes.
(
    BINARY_CROSSENTROPY,
    CATEGORICAL_CROSSENTROPY,
    SPARSE_CATEGORICAL_CROSSENTROPY,
    MSE,
    HALF_SQUARED_ERROR,
    MAE,
) = range(6)

# Optimizer codes of train_batches.
OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM = range(6)

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
)

# Public backend name -> module implementing the contract, in order of preference
# for backend="auto" (fastest first).
BACKEND_MODULES = {
    "cython": "fastnn._kernels.cython_backend",
    "numba": "fastnn._kernels.numba_backend",
    "numpy": "fastnn._kernels.numpy_backend",
}

_loaded: dict[str, ModuleType] = {}
_failed: dict[str, str] = {}


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
    """Backend module for ``name``; ``"auto"`` picks the fastest available."""
    if name == "auto":
        for candidate in BACKEND_MODULES:
            try:
                return load(candidate)
            except ImportError:
                continue
        raise ImportError("no fastnn backend is available")  # numpy always is
    return load(name)

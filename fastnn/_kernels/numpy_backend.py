"""The NumPy backend: the readable reference every other backend must match.

Plain vectorized NumPy with ``out=`` everywhere, so the training loop's steady
state allocates nothing but NumPy's own small reductions.  Elementwise kernels
that need a temporary take it from ``_scratch``, a per-(shape, dtype) buffer
reused across calls.  See ``fastnn._kernels`` for the contract.
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

from . import (
    BINARY_CROSSENTROPY,
    CATEGORICAL_CROSSENTROPY,
    ELU,
    GELU,
    HALF_SQUARED_ERROR,
    LEAKY_RELU,
    LINEAR,
    MAE,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX,
    SOFTPLUS,
    SPARSE_CATEGORICAL_CROSSENTROPY,
    SWISH,
    TANH,
)

NAME = "numpy"

_SQRT_HALF = np.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

_scratch_buffers: dict[tuple, np.ndarray] = {}


def _scratch(like: np.ndarray, slot: int = 0) -> np.ndarray:
    """A reusable buffer with the shape and dtype of ``like`` (contents undefined)."""
    key = (like.shape, like.dtype.str, slot)
    buf = _scratch_buffers.get(key)
    if buf is None:
        buf = _scratch_buffers[key] = np.empty_like(like)
    return buf


def _positive_mask(Z):
    """``Z > 0`` into a reusable boolean buffer."""
    mask = _scratch_buffers.get((Z.shape, "mask"))
    if mask is None:
        mask = _scratch_buffers[(Z.shape, "mask")] = np.empty(Z.shape, np.bool_)
    return np.greater(Z, 0, out=mask)


def _sigmoid(Z, out):
    with np.errstate(over="ignore"):
        np.negative(Z, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    return out


# ---------------------------------------------------------------- activations
def _activation_forward(act, alpha, Z, A):
    if act == LINEAR:
        np.copyto(A, Z)
    elif act == SIGMOID:
        _sigmoid(Z, A)
    elif act == TANH:
        np.tanh(Z, out=A)
    elif act == RELU:
        np.maximum(Z, 0, out=A)
    elif act == LEAKY_RELU:
        np.multiply(Z, alpha, out=A)
        (np.maximum if alpha <= 1 else np.minimum)(Z, A, out=A)
    elif act == ELU:
        np.minimum(Z, 0, out=A)
        np.expm1(A, out=A)
        A *= alpha
        np.copyto(A, Z, where=_positive_mask(Z))
    elif act == SOFTMAX:
        np.subtract(Z, Z.max(axis=1, keepdims=True), out=A)
        np.exp(A, out=A)
        A /= A.sum(axis=1, keepdims=True)
    elif act == SOFTPLUS:  # log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
        np.abs(Z, out=A)
        np.negative(A, out=A)
        np.exp(A, out=A)
        np.log1p(A, out=A)
        A += np.maximum(Z, 0, out=_scratch(Z))
    elif act == GELU:  # z * Phi(z), exact (erf) form
        np.multiply(Z, _SQRT_HALF, out=A)
        erf(A, out=A)
        A += 1
        A *= Z
        A *= 0.5
    elif act == SWISH:
        _sigmoid(Z, A)
        A *= Z
    else:
        raise ValueError(f"unknown activation code {act}")


def dense_forward(X, W, b, act, alpha, Z_out, A_out):
    np.matmul(X, W, out=Z_out)
    if b is not None:
        Z_out += b
    _activation_forward(act, alpha, Z_out, A_out)


def activation_backward(act, alpha, Z, A, dA, dZ_out):
    if act == LINEAR:
        if dZ_out is not dA:
            np.copyto(dZ_out, dA)
    elif act == SIGMOID:  # a (1 - a)
        t = _scratch(A)
        np.subtract(1, A, out=t)
        t *= A
        np.multiply(dA, t, out=dZ_out)
    elif act == TANH:  # 1 - a^2
        t = _scratch(A)
        np.square(A, out=t)
        np.subtract(1, t, out=t)
        np.multiply(dA, t, out=dZ_out)
    elif act == RELU:
        np.multiply(dA, _positive_mask(Z), out=dZ_out)
    elif act == LEAKY_RELU:
        t = _scratch(Z)
        t.fill(alpha)
        np.copyto(t, 1, where=_positive_mask(Z))
        np.multiply(dA, t, out=dZ_out)
    elif act == ELU:  # 1 for z > 0, else a + alpha
        t = _scratch(A)
        np.add(A, alpha, out=t)
        np.copyto(t, 1, where=_positive_mask(Z))
        np.multiply(dA, t, out=dZ_out)
    elif act == SOFTMAX:  # a * (dA - <dA, a>) row-wise
        dot = np.einsum("ij,ij->i", dA, A)[:, None]
        np.subtract(dA, dot, out=dZ_out)
        dZ_out *= A
    elif act == SOFTPLUS:  # sigmoid(z)
        t = _sigmoid(Z, _scratch(Z))
        np.multiply(dA, t, out=dZ_out)
    elif act == GELU:  # Phi(z) + z * phi(z)
        t = _scratch(Z, 0)
        u = _scratch(Z, 1)
        np.square(Z, out=u)
        u *= -0.5
        np.exp(u, out=u)
        u *= _INV_SQRT_2PI
        u *= Z
        np.multiply(Z, _SQRT_HALF, out=t)
        erf(t, out=t)
        t += 1
        t *= 0.5
        t += u
        np.multiply(dA, t, out=dZ_out)
    elif act == SWISH:  # s + z s (1 - s) = s (1 + z (1 - s))
        s = _sigmoid(Z, _scratch(Z, 0))
        t = _scratch(Z, 1)
        np.subtract(1, s, out=t)
        t *= Z
        t += 1
        t *= s
        np.multiply(dA, t, out=dZ_out)
    else:
        raise ValueError(f"unknown activation code {act}")


def dense_backward(X, W, dZ, l2, dW_out, db_out, dX_out):
    np.matmul(X.T, dZ, out=dW_out)
    if l2:
        dW_out += l2 * W
    if db_out is not None:
        np.sum(dZ, axis=0, out=db_out)
    if dX_out is not None:
        np.matmul(dZ, W.T, out=dX_out)


# ---------------------------------------------------------------------- maxout
def maxout_forward(Z, pieces, A_out, argmax_out):
    n, units = A_out.shape
    Z3 = Z.reshape(n, units, pieces)
    np.argmax(Z3, axis=2, out=argmax_out)
    A_out[...] = np.take_along_axis(Z3, argmax_out[:, :, None], axis=2)[:, :, 0]


def maxout_backward(dA, argmax, pieces, dZ_out):
    n, units = dA.shape
    dZ3 = dZ_out.reshape(n, units, pieces)
    dZ3.fill(0)
    np.put_along_axis(dZ3, argmax[:, :, None], dA[:, :, None], axis=2)


# ----------------------------------------------------------------------- losses
def _eps(dtype):
    return np.finfo(dtype).eps


def _row_weights(n, sample_weight, dtype):
    """Per-row factor ``w_i / sum(w)`` (``1 / n`` without weights), shape (n, 1) or scalar."""
    if sample_weight is None:
        return dtype.type(1.0 / n)
    return (sample_weight / sample_weight.sum())[:, None]


def _per_sample_loss(loss, A, Y):
    eps = _eps(A.dtype)
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        p = A[np.arange(A.shape[0]), Y]
        return -np.log(np.clip(p, eps, 1 - eps))
    if loss == CATEGORICAL_CROSSENTROPY:
        return -(Y * np.log(np.clip(A, eps, 1 - eps))).sum(axis=1)
    if loss == BINARY_CROSSENTROPY:
        Ac = np.clip(A, eps, 1 - eps)
        return -(Y * np.log(Ac) + (1 - Y) * np.log1p(-Ac)).mean(axis=1)
    if loss == MSE:
        return np.square(A - Y).mean(axis=1)
    if loss == HALF_SQUARED_ERROR:
        return 0.5 * np.square(A - Y).mean(axis=1)
    if loss == MAE:
        return np.abs(A - Y).mean(axis=1)
    raise ValueError(f"unknown loss code {loss}")


def loss_value(loss, A, Y, sample_weight):
    per_sample = _per_sample_loss(loss, A, Y)
    if sample_weight is None:
        return float(per_sample.mean(dtype=np.float64))
    return float(np.dot(per_sample, sample_weight) / sample_weight.sum(dtype=np.float64))


def _fused(loss, act):
    return (act == SOFTMAX and loss in (CATEGORICAL_CROSSENTROPY, SPARSE_CATEGORICAL_CROSSENTROPY)) or (
        act == SIGMOID and loss == BINARY_CROSSENTROPY
    )


def loss_output_delta(loss, act, alpha, Z, A, Y, sample_weight, dZ_out):
    n, k = A.shape
    scale = _row_weights(n, sample_weight, A.dtype)
    if loss in (BINARY_CROSSENTROPY, MSE, HALF_SQUARED_ERROR, MAE):
        scale = scale / k  # these average over the outputs too
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        rows = np.arange(n)
        if _fused(loss, act):
            np.copyto(dZ_out, A)
            dZ_out[rows, Y] -= 1
            dZ_out *= scale
            return
        eps = _eps(A.dtype)
        dZ_out.fill(0)
        dZ_out[rows, Y] = -1 / np.clip(A[rows, Y], eps, 1 - eps)
        dZ_out *= scale
    elif _fused(loss, act):
        np.subtract(A, Y, out=dZ_out)
        dZ_out *= scale
        return
    elif loss == CATEGORICAL_CROSSENTROPY:
        eps = _eps(A.dtype)
        np.divide(Y, np.clip(A, eps, 1 - eps), out=dZ_out)
        dZ_out *= -scale
    elif loss == BINARY_CROSSENTROPY:
        eps = _eps(A.dtype)
        Ac = np.clip(A, eps, 1 - eps)
        np.divide(Ac - Y, Ac * (1 - Ac), out=dZ_out)
        dZ_out *= scale
    elif loss == MSE:
        np.subtract(A, Y, out=dZ_out)
        dZ_out *= 2 * scale
    elif loss == HALF_SQUARED_ERROR:
        np.subtract(A, Y, out=dZ_out)
        dZ_out *= scale
    elif loss == MAE:
        np.subtract(A, Y, out=dZ_out)
        np.sign(dZ_out, out=dZ_out)
        dZ_out *= scale
    else:
        raise ValueError(f"unknown loss code {loss}")
    activation_backward(act, alpha, Z, A, dZ_out, dZ_out)


# ------------------------------------------------------------------ minibatches
def gather_rows(X, idx, out):
    np.take(X, idx, axis=0, out=out, mode="clip")  # "raise" would buffer a copy of out


# ------------------------------------------------------------------- optimizers
def sgd_update(param_inout, grad, lr, momentum, nesterov, velocity_inout):
    dtype = param_inout.dtype.type
    if momentum == 0:
        t = _scratch(grad)
        np.multiply(grad, dtype(lr), out=t)
        param_inout -= t
        return
    t = _scratch(grad)
    np.multiply(grad, dtype(lr), out=t)  # t = lr * g
    velocity_inout *= dtype(momentum)
    velocity_inout -= t  # v = momentum * v - lr * g
    if nesterov:
        param_inout -= t
        np.multiply(velocity_inout, dtype(momentum), out=t)
        param_inout += t
    else:
        param_inout += velocity_inout


def adagrad_update(param_inout, grad, lr, epsilon, accum_inout):
    dtype = param_inout.dtype.type
    t = _scratch(grad)
    np.square(grad, out=t)
    accum_inout += t
    np.sqrt(accum_inout, out=t)
    t += dtype(epsilon)
    np.divide(grad, t, out=t)
    t *= dtype(lr)
    param_inout -= t


def rmsprop_update(param_inout, grad, lr, rho, epsilon, ms_inout):
    dtype = param_inout.dtype.type
    t = _scratch(grad)
    np.square(grad, out=t)
    ms_inout -= t
    ms_inout *= dtype(rho)
    ms_inout += t  # ms = rho * ms + (1 - rho) * g^2
    np.sqrt(ms_inout, out=t)
    t += dtype(epsilon)
    np.divide(grad, t, out=t)
    t *= dtype(lr)
    param_inout -= t


def adam_update(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout):
    dtype = param_inout.dtype.type
    lr_t = lr * np.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    m_inout -= grad
    m_inout *= dtype(beta_1)
    m_inout += grad  # m = b1 * m + (1 - b1) * g
    t = _scratch(grad)
    np.square(grad, out=t)
    v_inout -= t
    v_inout *= dtype(beta_2)
    v_inout += t  # v = b2 * v + (1 - b2) * g^2
    np.sqrt(v_inout, out=t)
    t += dtype(epsilon)
    np.divide(m_inout, t, out=t)
    t *= dtype(lr_t)
    param_inout -= t


# ------------------------------------------------------- compiled-style training
def _update(opt, p, g, lr, hyper, step, s1, s2):
    from . import OPT_ADAGRAD, OPT_ADAM, OPT_MOMENTUM, OPT_NESTEROV, OPT_RMSPROP, OPT_SGD

    momentum, rho_or_beta1, beta_2, epsilon = hyper
    if opt == OPT_SGD:
        sgd_update(p, g, lr, 0.0, False, None)
    elif opt in (OPT_MOMENTUM, OPT_NESTEROV):
        sgd_update(p, g, lr, momentum, opt == OPT_NESTEROV, s1)
    elif opt == OPT_ADAGRAD:
        adagrad_update(p, g, lr, epsilon, s1)
    elif opt == OPT_RMSPROP:
        rmsprop_update(p, g, lr, rho_or_beta1, epsilon, s1)
    elif opt == OPT_ADAM:
        adam_update(p, g, lr, rho_or_beta1, beta_2, epsilon, step, s1, s2)
    else:
        raise ValueError(f"unknown optimizer code {opt}")


def batch_statistics(A, Y, out):
    """Accumulate correct predictions and per-row mean squared/absolute errors
    of one batch into ``out[1:4]`` (see ``train_batches``)."""
    m, k = A.shape
    if Y.ndim == 1:  # class labels
        out[1] += np.count_nonzero(A.argmax(axis=1) == Y)
        return
    if k == 1:
        out[1] += np.count_nonzero((A[:, 0] > 0.5) == (Y[:, 0] > 0.5))
    else:
        out[1] += np.count_nonzero(A.argmax(axis=1) == Y.argmax(axis=1))
    diff = A - Y
    out[2] += float(np.square(diff).mean(axis=1).sum(dtype=np.float64))
    out[3] += float(np.abs(diff).mean(axis=1).sum(dtype=np.float64))


def train_batches(X, Y, SW, perm, batch_size, first_batch, n_batches,
                  Ws, bs, dWs, dbs, acts, alphas, l2s,
                  Zs, As, dZs, Xb, Yb, SWb,
                  loss, opt, hyper, lrs, step0, S1W, S1b, S2W, S2b, out):
    n, L = X.shape[0], len(Ws)
    for j in range(n_batches):
        start = (first_batch + j) * batch_size
        stop = min(start + batch_size, n)
        m = stop - start
        idx = perm[start:stop]
        xb, yb = Xb[:m], Yb[:m]
        gather_rows(X, idx, xb)
        gather_rows(Y, idx, yb)
        wb = None
        if SW is not None:
            wb = SWb[:m]
            gather_rows(SW, idx, wb)
        inp = xb
        for l in range(L):
            dense_forward(inp, Ws[l], bs[l] if bs[l].size else None, acts[l], alphas[l], Zs[l][:m], As[l][:m])
            inp = As[l][:m]
        A = As[L - 1][:m]
        batch_loss = loss_value(loss, A, yb, wb)
        if not np.isfinite(batch_loss):
            return j
        out[0] += m * batch_loss
        batch_statistics(A, yb, out)
        loss_output_delta(loss, acts[L - 1], alphas[L - 1], Zs[L - 1][:m], A, yb, wb, dZs[L - 1][:m])
        for l in range(L - 1, -1, -1):
            dZ = dZs[l][:m]
            if l < L - 1:
                activation_backward(acts[l], alphas[l], Zs[l][:m], As[l][:m], dZ, dZ)
            dense_backward(xb if l == 0 else As[l - 1][:m], Ws[l], dZ, l2s[l], dWs[l],
                           dbs[l] if dbs[l].size else None, None if l == 0 else dZs[l - 1][:m])
        lr, step = lrs[j], step0 + j + 1
        for l in range(L):
            _update(opt, Ws[l], dWs[l], lr, hyper, step, S1W[l], S2W[l])
            if bs[l].size:
                _update(opt, bs[l], dbs[l], lr, hyper, step, S1b[l], S2b[l])
    return n_batches

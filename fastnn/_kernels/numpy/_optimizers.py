"""Optimizer updates, one pass over each parameter, in place (NumPy reference)."""
from __future__ import annotations

import numpy as np

from ._scratch import scratch as _scratch


def sgd_update(param_inout, grad, lr, momentum, nesterov, velocity_inout, classic=False):
    dtype = param_inout.dtype.type
    if momentum == 0:
        t = _scratch(grad)
        np.multiply(grad, dtype(lr), out=t)
        param_inout -= t
        return
    if classic:
        t = _scratch(grad)
        velocity_inout *= dtype(momentum)
        velocity_inout += grad  # h = momentum * h + g
        if nesterov:
            np.multiply(velocity_inout, dtype(momentum), out=t)
            t += grad  # g + momentum * h
            t *= dtype(lr)
        else:
            np.multiply(velocity_inout, dtype(lr), out=t)
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


def _root(s, eps, inside, out):
    """``out = sqrt(s + eps)`` if ``inside`` else ``sqrt(s) + eps``."""
    if inside:
        np.add(s, eps, out=out)
        np.sqrt(out, out=out)
    else:
        np.sqrt(s, out=out)
        out += eps


def adagrad_update(param_inout, grad, lr, epsilon, accum_inout, epsilon_inside_sqrt=False):
    dtype = param_inout.dtype.type
    t = _scratch(grad)
    np.square(grad, out=t)
    accum_inout += t
    _root(accum_inout, dtype(epsilon), epsilon_inside_sqrt, t)
    np.divide(grad, t, out=t)
    t *= dtype(lr)
    param_inout -= t


def rmsprop_update(param_inout, grad, lr, rho, epsilon, ms_inout, epsilon_inside_sqrt=False):
    dtype = param_inout.dtype.type
    t = _scratch(grad)
    np.square(grad, out=t)
    ms_inout -= t
    ms_inout *= dtype(rho)
    ms_inout += t  # ms = rho * ms + (1 - rho) * g^2
    _root(ms_inout, dtype(epsilon), epsilon_inside_sqrt, t)
    np.divide(grad, t, out=t)
    t *= dtype(lr)
    param_inout -= t


def adam_update(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout,
                epsilon_inside_sqrt=False):
    dtype = param_inout.dtype.type
    if epsilon_inside_sqrt:
        _adam_inside(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout)
        return
    lr_t = lr * np.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    t = _adam_moments(grad, beta_1, beta_2, m_inout, v_inout)
    np.sqrt(v_inout, out=t)
    t += dtype(epsilon)
    np.divide(m_inout, t, out=t)
    t *= dtype(lr_t)
    param_inout -= t


def _adam_moments(grad, beta_1, beta_2, m_inout, v_inout):
    """Adam's moment updates in place; returns a scratch buffer shaped like ``grad``."""
    dtype = grad.dtype.type
    m_inout -= grad
    m_inout *= dtype(beta_1)
    m_inout += grad  # m = b1 * m + (1 - b1) * g
    t = _scratch(grad)
    np.square(grad, out=t)
    v_inout -= t
    v_inout *= dtype(beta_2)
    v_inout += t  # v = b2 * v + (1 - b2) * g^2
    return t


def _adam_inside(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout):
    """``p -= lr * m_hat / sqrt(v_hat + eps)`` with the bias-corrected moments
    ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``."""
    dtype = param_inout.dtype.type
    c1 = dtype(1.0 - beta_1**step)  # bias-correction divisors, computed in float64
    c2 = dtype(1.0 - beta_2**step)
    t = _adam_moments(grad, beta_1, beta_2, m_inout, v_inout)
    np.divide(v_inout, c2, out=t)  # v_hat
    t += dtype(epsilon)
    np.sqrt(t, out=t)
    u = _scratch(grad, 1)
    np.divide(m_inout, c1, out=u)  # m_hat
    np.divide(u, t, out=t)
    t *= dtype(lr)
    param_inout -= t

"""Optimizer updates, in place on flat views of the parameter (Numba).

Hyper-parameters arrive as Python floats and are cast to the parameter's
dtype first, so float32 updates stay float32.
"""
import math

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from ..codes import OPT_ADAGRAD, OPT_ADAM, OPT_MOMENTUM, OPT_NESTEROV, OPT_RMSPROP, OPT_SGD
from ._jit import INTERNAL, jit, jit_inline


@jit_inline
def _flat_views(param, grad):
    if grad.size != param.size:
        raise ValueError("optimizer update: param and grad must have one shape")
    return param.reshape(param.size), grad.reshape(grad.size)


@jit_inline
def _flat_slot(slot, size):
    if slot.size != size:
        raise ValueError("optimizer update: state arrays must have the shape of param")
    return slot.reshape(size)


@jit
def sgd_update(param_inout, grad, lr, momentum, nesterov, velocity_inout, classic=False):
    """p -= lr g; with momentum: v := mu v - lr g, p += v (Nesterov: p += mu v - lr g);
    classic: h := mu h + g, p -= lr h (Nesterov: p -= lr (g + mu h)).

    # IN: grad  INOUT: param_inout, velocity_inout (None without momentum)
    """
    p, g = _flat_views(param_inout, grad)
    dt = param_inout.dtype.type
    lr_ = dt(lr)
    if velocity_inout is None or momentum == 0:
        if momentum != 0:
            raise ValueError("sgd_update: momentum > 0 needs velocity_inout")
        for i in range(p.size):
            p[i] -= lr_ * g[i]
        return
    v = _flat_slot(velocity_inout, p.size)
    mu = dt(momentum)
    if classic:
        if nesterov:
            for i in range(p.size):
                gi = g[i]
                hi = mu * v[i] + gi
                v[i] = hi
                p[i] -= (mu * hi + gi) * lr_
        else:
            for i in range(p.size):
                hi = mu * v[i] + g[i]
                v[i] = hi
                p[i] -= hi * lr_
    elif nesterov:
        for i in range(p.size):
            t = lr_ * g[i]
            vi = mu * v[i] - t
            v[i] = vi
            p[i] += mu * vi - t
    else:
        for i in range(p.size):
            vi = mu * v[i] - lr_ * g[i]
            v[i] = vi
            p[i] += vi


@jit
def adagrad_update(param_inout, grad, lr, epsilon, accum_inout, epsilon_inside_sqrt=False):
    """acc += g^2; p -= lr g / (sqrt(acc) + eps) (inside: g / sqrt(acc + eps)).

    # IN: grad  INOUT: param_inout, accum_inout
    """
    p, g = _flat_views(param_inout, grad)
    acc = _flat_slot(accum_inout, p.size)
    dt = param_inout.dtype.type
    lr_ = dt(lr)
    eps = dt(epsilon)
    if epsilon_inside_sqrt:
        for i in range(p.size):
            gi = g[i]
            a = acc[i] + gi * gi
            acc[i] = a
            p[i] -= lr_ * (gi / np.sqrt(a + eps))
    else:
        for i in range(p.size):
            gi = g[i]
            a = acc[i] + gi * gi
            acc[i] = a
            p[i] -= lr_ * (gi / (np.sqrt(a) + eps))


@jit
def rmsprop_update(param_inout, grad, lr, rho, epsilon, ms_inout, epsilon_inside_sqrt=False):
    """ms := rho ms + (1 - rho) g^2; p -= lr g / (sqrt(ms) + eps) (inside: g / sqrt(ms + eps)).

    # IN: grad  INOUT: param_inout, ms_inout
    """
    p, g = _flat_views(param_inout, grad)
    ms = _flat_slot(ms_inout, p.size)
    dt = param_inout.dtype.type
    lr_ = dt(lr)
    eps = dt(epsilon)
    r = dt(rho)
    if epsilon_inside_sqrt:
        for i in range(p.size):
            gi = g[i]
            g2 = gi * gi
            s = r * (ms[i] - g2) + g2
            ms[i] = s
            p[i] -= lr_ * (gi / np.sqrt(s + eps))
    else:
        for i in range(p.size):
            gi = g[i]
            g2 = gi * gi
            s = r * (ms[i] - g2) + g2  # = rho ms + (1 - rho) g^2, the reference's rounding
            ms[i] = s
            p[i] -= lr_ * (gi / (np.sqrt(s) + eps))


@jit
def adam_update(param_inout, grad, lr, beta_1, beta_2, epsilon, step, m_inout, v_inout,
                epsilon_inside_sqrt=False):
    """m := b1 m + (1 - b1) g; v := b2 v + (1 - b2) g^2; p -= lr_t m / (sqrt(v) + eps).

    ``lr_t = lr sqrt(1 - b2^step) / (1 - b1^step)``.  Inside: p -= lr m_hat /
    sqrt(v_hat + eps), m_hat = m / (1 - b1^step), v_hat = v / (1 - b2^step).
    # IN: grad  INOUT: param_inout, m_inout, v_inout
    """
    p, g = _flat_views(param_inout, grad)
    m = _flat_slot(m_inout, p.size)
    v = _flat_slot(v_inout, p.size)
    if step < 1:
        raise ValueError("adam_update: step is the 1-based update count")
    dt = param_inout.dtype.type
    b1 = dt(beta_1)
    b2 = dt(beta_2)
    eps = dt(epsilon)
    if epsilon_inside_sqrt:
        lr_ = dt(lr)
        c1 = dt(1.0 - beta_1 ** step)
        c2 = dt(1.0 - beta_2 ** step)
        for i in range(p.size):
            gi = g[i]
            mi = b1 * (m[i] - gi) + gi
            vi = b2 * (v[i] - gi * gi) + gi * gi
            m[i] = mi
            v[i] = vi
            p[i] -= lr_ * ((mi / c1) / np.sqrt(vi / c2 + eps))
        return
    lr_t = dt(lr * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step))
    for i in range(p.size):
        gi = g[i]
        mi = b1 * (m[i] - gi) + gi
        vi = b2 * (v[i] - gi * gi) + gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr_t * (mi / (np.sqrt(vi) + eps))


# ------------------------------------------------ one rule by its code (the training loop)
def apply_rule(opt, p, g, lr, hyper, step, s1, s2):
    """One optimizer step on ``p`` by the rule ``opt`` (see ``_ol_apply_rule``)."""
    raise NotImplementedError("compiled only")


@overload(apply_rule, prefer_literal=True, jit_options={"error_model": "numpy", **INTERNAL})
def _ol_apply_rule(opt, p, g, lr, hyper, step, s1, s2):
    """A constant ``opt`` (the loop compiled for one model) compiles its rule alone;
    a run-time one, a branch per rule."""
    if not isinstance(opt, types.IntegerLiteral):
        def impl(opt, p, g, lr, hyper, step, s1, s2):
            if opt == OPT_SGD:
                apply_rule(OPT_SGD, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_MOMENTUM:
                apply_rule(OPT_MOMENTUM, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_NESTEROV:
                apply_rule(OPT_NESTEROV, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_ADAGRAD:
                apply_rule(OPT_ADAGRAD, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_RMSPROP:
                apply_rule(OPT_RMSPROP, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_ADAM:
                apply_rule(OPT_ADAM, p, g, lr, hyper, step, s1, s2)
            else:
                raise ValueError("train_batches: unknown optimizer code")
        return impl
    code = opt.literal_value
    if code == OPT_SGD:
        def impl(opt, p, g, lr, hyper, step, s1, s2):
            sgd_update(p, g, lr, 0.0, False, None)
    elif code in (OPT_MOMENTUM, OPT_NESTEROV):
        nesterov = code == OPT_NESTEROV

        def impl(opt, p, g, lr, hyper, step, s1, s2):
            sgd_update(p, g, lr, hyper.momentum, nesterov, s1, hyper.classic_momentum != 0.0)
    elif code == OPT_ADAGRAD:
        def impl(opt, p, g, lr, hyper, step, s1, s2):
            adagrad_update(p, g, lr, hyper.epsilon, s1, hyper.epsilon_inside_sqrt != 0.0)
    elif code == OPT_RMSPROP:
        def impl(opt, p, g, lr, hyper, step, s1, s2):
            rmsprop_update(p, g, lr, hyper.rho, hyper.epsilon, s1, hyper.epsilon_inside_sqrt != 0.0)
    elif code == OPT_ADAM:
        def impl(opt, p, g, lr, hyper, step, s1, s2):
            adam_update(p, g, lr, hyper.beta_1, hyper.beta_2, hyper.epsilon, step, s1, s2,
                        hyper.epsilon_inside_sqrt != 0.0)
    else:
        raise TypingError(f"train_batches: unknown optimizer code {code}")
    return impl

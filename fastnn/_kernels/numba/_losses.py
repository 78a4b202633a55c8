"""Losses: the batch loss and the output layer's gradient (Numba)."""
import numpy as np

from ..codes import (
    BINARY_CROSSENTROPY,
    CATEGORICAL_CROSSENTROPY,
    HALF_SQUARED_ERROR,
    MAE,
    MSE,
    SIGMOID,
    SOFTMAX,
    SPARSE_CATEGORICAL_CROSSENTROPY,
)
from ._activations import _dact_flat, _softmax_backward_rows
from ._jit import jit, jit_internal


@jit_internal
def _row_scale(c, sample_weight, i):
    """Row i's share of the batch loss: ``c * w_i``, or ``c``."""
    if sample_weight is None:
        return c
    return sample_weight[i] * c


@jit_internal
def _accumulate(total, wsum, v, sample_weight, i):
    """``(total, wsum)`` with row i's loss ``v`` added (times ``w_i`` if weighted), in float64."""
    if sample_weight is None:
        return total + np.float64(v), wsum
    w = sample_weight[i]
    return total + np.float64(v) * w, wsum + w


@jit
def loss_value(loss, A, Y, sample_weight):
    """Mean (or sample-weighted mean) over rows of the per-sample loss, as a float.     # IN: all"""
    total, wsum = loss_sums(loss, A, Y, sample_weight)
    if sample_weight is None:
        return total / A.shape[0]
    return total / wsum if wsum != 0 else 0.0  # no weight, no loss (nor gradient)


@jit_internal
def loss_sums(loss, A, Y, sample_weight):
    """``(sum of the rows' losses, sum of their weights)`` in float64, the rows
    added in order (weighted when ``sample_weight`` is given; the weight sum is
    then 0.0 without): ``loss_value`` of these rows is their quotient, or the sum
    over the rows without weights.  Several threads' shares of one batch add up."""
    n, k = A.shape
    dt = A.dtype.type
    eps = np.finfo(A.dtype).eps
    lo = dt(eps)
    hi = dt(1.0) - dt(eps)
    one = dt(1.0)
    if sample_weight is not None and sample_weight.shape[0] != n:
        raise ValueError("loss_value: sample_weight must have shape (n,)")
    total = 0.0  # sum of the rows' losses (weighted), added in row order
    wsum = 0.0
    if Y.ndim == 1:
        if loss != SPARSE_CATEGORICAL_CROSSENTROPY:
            raise ValueError("loss_value: 1-D integer targets need sparse categorical cross-entropy")
        if Y.shape[0] != n:
            raise ValueError("loss_value: Y must have shape (n,)")
        for i in range(n):
            y = Y[i]
            if y < 0 or y >= k:
                raise IndexError("loss_value: class label out of range")
            p = A[i, y]
            p = lo if p < lo else p  # NaN stays NaN, as with np.clip
            p = hi if p > hi else p
            total, wsum = _accumulate(total, wsum, -np.log(p), sample_weight, i)
    else:
        if Y.shape[0] != n or Y.shape[1] != k:
            raise ValueError("loss_value: Y must have the shape of A")
        if loss == CATEGORICAL_CROSSENTROPY:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    p = A[i, j]
                    p = lo if p < lo else p  # NaN stays NaN, as with np.clip
                    p = hi if p > hi else p
                    s += Y[i, j] * np.log(p)
                total, wsum = _accumulate(total, wsum, -s, sample_weight, i)
        elif loss == BINARY_CROSSENTROPY:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    p = A[i, j]
                    p = lo if p < lo else p  # NaN stays NaN, as with np.clip
                    p = hi if p > hi else p
                    y = Y[i, j]
                    s += y * np.log(p) + (one - y) * np.log1p(-p)
                total, wsum = _accumulate(total, wsum, -s / k, sample_weight, i)
        elif loss == MSE or loss == HALF_SQUARED_ERROR:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    e = A[i, j] - Y[i, j]
                    s += e * e
                total, wsum = _accumulate(total, wsum, s / k if loss == MSE else 0.5 * s / k, sample_weight, i)
        elif loss == MAE:
            for i in range(n):
                s = 0.0
                for j in range(k):
                    s += abs(A[i, j] - Y[i, j])
                total, wsum = _accumulate(total, wsum, s / k, sample_weight, i)
        else:
            raise ValueError("loss_value: unknown loss code (or 2-D targets for sparse cross-entropy)")
    return total, wsum


@jit
def loss_output_delta(loss, act, alpha, Z, A, Y, sample_weight, dZ_out):
    """dZ_out := d loss_value / dZ for the output layer.     # IN: Z, A, Y, sample_weight  OUT: dZ_out

    Matched pairs (softmax + (sparse) categorical cross-entropy, sigmoid +
    binary cross-entropy) take the fused, stable ``(A - Y) * scale``.
    """
    n = A.shape[0]
    if sample_weight is None:
        output_delta(loss, act, alpha, Z, A, Y, None, n, 0.0, dZ_out)
        return
    if sample_weight.shape[0] != n:
        raise ValueError("sample_weight must have shape (n,)")
    s = 0.0
    for i in range(n):
        s += sample_weight[i]
    output_delta(loss, act, alpha, Z, A, Y, sample_weight, n, s, dZ_out)


@jit_internal
def output_delta(loss, act, alpha, Z, A, Y, sample_weight, rows, weight_sum, dZ_out):
    """``loss_output_delta`` of some rows of a batch of ``rows`` rows whose sample
    weights (if given) add up to ``weight_sum``: each row scaled as in the whole
    batch, so that threads' shares of a batch give its gradient.     # OUT: dZ_out"""
    n, k = A.shape
    if dZ_out.shape[0] != n or dZ_out.shape[1] != k or Z.shape[0] != n or Z.shape[1] != k:
        raise ValueError("loss_output_delta: Z, A and dZ_out must have one shape")
    if sample_weight is not None and sample_weight.shape[0] != n:
        raise ValueError("sample_weight must have shape (n,)")
    dt = A.dtype.type
    eps = np.finfo(A.dtype).eps
    lo = dt(eps)
    hi = dt(1.0) - dt(eps)
    one = dt(1.0)
    per_element = (loss == BINARY_CROSSENTROPY or loss == MSE or loss == HALF_SQUARED_ERROR
                   or loss == MAE)
    # row i's scale is c_w * w_i (c_w alone without weights), as float64; weights that
    # add up to zero give the batch no gradient
    if sample_weight is None:
        c_w = 1.0 / rows / (k if per_element else 1)
    else:
        c_w = 1.0 / weight_sum / (k if per_element else 1) if weight_sum != 0 else 0.0
    if Y.ndim == 1:
        if loss != SPARSE_CATEGORICAL_CROSSENTROPY:
            raise ValueError("loss_output_delta: 1-D integer targets need sparse categorical cross-entropy")
        if Y.shape[0] != n:
            raise ValueError("loss_output_delta: Y must have shape (n,)")
        for i in range(n):
            if Y[i] < 0 or Y[i] >= k:
                raise IndexError("loss_output_delta: class label out of range")
        if act == SOFTMAX:  # fused: (A - onehot(Y)) * scale
            for i in range(n):
                c = dt(_row_scale(c_w, sample_weight, i))
                for j in range(k):
                    dZ_out[i, j] = A[i, j] * c
                dZ_out[i, Y[i]] = (A[i, Y[i]] - one) * c
            return
        for i in range(n):
            for j in range(k):
                dZ_out[i, j] = 0
            p = A[i, Y[i]]
            p = lo if p < lo else p  # NaN stays NaN, as with np.clip
            p = hi if p > hi else p
            dZ_out[i, Y[i]] = -(one / p) * dt(_row_scale(c_w, sample_weight, i))
    else:
        if Y.shape[0] != n or Y.shape[1] != k:
            raise ValueError("loss_output_delta: Y must have the shape of A")
        if act == SOFTMAX and loss == CATEGORICAL_CROSSENTROPY:
            # fused: d/dz of -sum_j y_j log softmax_j(z) is a * sum_j y_j - y (a - y for
            # rows that sum to 1)
            for i in range(n):
                c = dt(_row_scale(c_w, sample_weight, i))
                t = dt(0.0)
                for j in range(k):
                    t += Y[i, j]
                for j in range(k):
                    dZ_out[i, j] = (A[i, j] * t - Y[i, j]) * c
            return
        fused = act == SIGMOID and loss == BINARY_CROSSENTROPY
        if fused or loss == HALF_SQUARED_ERROR or loss == MSE:
            two = dt(2.0) if loss == MSE else one
            for i in range(n):
                c = dt(_row_scale(c_w, sample_weight, i)) * two
                for j in range(k):
                    dZ_out[i, j] = (A[i, j] - Y[i, j]) * c
            if fused:
                return
        elif loss == CATEGORICAL_CROSSENTROPY:
            for i in range(n):
                c = dt(_row_scale(c_w, sample_weight, i))
                for j in range(k):
                    p = A[i, j]
                    p = lo if p < lo else p  # NaN stays NaN, as with np.clip
                    p = hi if p > hi else p
                    dZ_out[i, j] = -(Y[i, j] / p) * c
        elif loss == BINARY_CROSSENTROPY:
            for i in range(n):
                c = dt(_row_scale(c_w, sample_weight, i))
                for j in range(k):
                    p = A[i, j]
                    p = lo if p < lo else p  # NaN stays NaN, as with np.clip
                    p = hi if p > hi else p
                    dZ_out[i, j] = ((p - Y[i, j]) / (p * (one - p))) * c
        elif loss == MAE:
            zero = dt(0.0)
            for i in range(n):
                c = dt(_row_scale(c_w, sample_weight, i))
                for j in range(k):
                    e = A[i, j] - Y[i, j]
                    s = one if e > zero else (-one if e < zero else e)  # np.sign, NaN stays NaN
                    dZ_out[i, j] = s * c
        else:
            raise ValueError("loss_output_delta: unknown loss code (or 2-D targets for sparse cross-entropy)")
    # General path: loss'(A) pushed through the activation, in place.
    if act == SOFTMAX:
        _softmax_backward_rows(A, dZ_out, dZ_out)
    else:
        _dact_flat(act, dt(alpha), Z.reshape(n * k), A.reshape(n * k), dZ_out.reshape(n * k))

# cython: language_level=3, cdivision=True
# distutils: extra_compile_args = -fno-math-errno -fno-trapping-math
"""Losses and the output layer's gradient for the Cython backend.

Design notes
------------
* One pass per output row: the loss gradient with respect to ``A`` is
  written into ``dZ_out`` and pushed through the activation's derivative
  while the row is in cache.  The matched pairs softmax + (sparse)
  categorical cross-entropy and sigmoid + binary cross-entropy skip that
  and write the fused, stable ``(A - Y) * scale``.
* ``scale`` is the row's share of the batch mean: ``1 / n``, or
  ``w_i / sum(w)`` with sample weights, divided by ``k`` for the losses that
  also average over outputs.  It is rounded in the array dtype the way the
  NumPy reference rounds it.
* Batch sums of the loss value are accumulated in double.
* Class labels are bounds-checked (negative labels count from the end, as in
  NumPy indexing); a bad label raises ``IndexError``, never reads past ``A``.
"""
from cython cimport floating
from libc.float cimport DBL_EPSILON, FLT_EPSILON
from libc.math cimport NAN
from libc.stdint cimport int64_t

from ._activations cimport act_backward_row, f_abs, f_log, f_log1p
from ._codes cimport (
    BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY, HALF_SQUARED_ERROR, MAE, MSE,
    N_ACTIVATIONS, N_LOSSES, SIGMOID, SOFTMAX, SPARSE_CATEGORICAL_CROSSENTROPY,
)

cdef inline floating _eps(floating x) noexcept nogil:
    if floating is float:
        return <float> FLT_EPSILON
    else:
        return DBL_EPSILON


cdef inline floating _clip(floating p, floating lo, floating hi) noexcept nogil:
    # NaN passes through, as with np.clip.
    return lo if p < lo else (hi if p > hi else p)


cdef inline Py_ssize_t _label(int64_t y, Py_ssize_t k) noexcept nogil:
    """Column of label y, or -1 if it is out of range."""
    if y < 0:
        y += k
    return y if 0 <= y < k else -1


cdef int _check_common(str kernel, int loss, Py_ssize_t n, Py_ssize_t k, object Y,
                       object sample_weight) except -1:
    if loss < 0 or loss >= N_LOSSES:
        raise ValueError(f"unknown loss code {loss}")
    if k == 0:
        raise ValueError(f"{kernel}: A has no columns")
    y_shape = _shape(kernel, "Y", Y)
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        if y_shape != (n,):
            raise ValueError(f"{kernel}: sparse labels Y must have shape ({n},), got {y_shape}")
    elif y_shape != (n, k):
        raise ValueError(f"{kernel}: Y must have shape ({n}, {k}), got {y_shape}")
    if sample_weight is not None and _shape(kernel, "sample_weight", sample_weight) != (n,):
        raise ValueError(
            f"{kernel}: sample_weight must have shape ({n},), got {sample_weight.shape}"
        )
    return 0


cdef tuple _shape(str kernel, str name, object arr):
    shape = getattr(arr, "shape", None)
    if type(shape) is not tuple:
        raise TypeError(f"{kernel}: {name} must be a numpy array, got {type(arr).__name__}")
    return shape


cdef double loss_value_ptr(int loss, Py_ssize_t n, Py_ssize_t k, const floating *A,
                           const int64_t *labels, const floating *Y, const floating *w,
                           Py_ssize_t *bad_row) noexcept nogil:
    """Mean (or weighted mean) per-sample loss; NaN for no rows, 0 for rows whose
    weights add up to zero (no weight, no loss; their gradient is zero too).

    A label outside ``[-k, k)`` stops the loop and sets ``bad_row`` to its row
    (otherwise ``bad_row`` is set to -1).
    """
    cdef double total, wsum
    loss_sums_ptr(loss, n, k, A, labels, Y, w, &total, &wsum, bad_row)
    if bad_row[0] >= 0:
        return NAN
    if wsum != 0:
        return total / wsum
    return 0.0 if w != NULL and n > 0 else NAN


cdef void loss_sums_ptr(int loss, Py_ssize_t n, Py_ssize_t k, const floating *A,
                        const int64_t *labels, const floating *Y, const floating *w,
                        double *total_out, double *wsum_out, Py_ssize_t *bad_row) noexcept nogil:
    """The sums behind ``loss_value_ptr``: ``total_out`` := sum of (weighted) per-sample
    losses and ``wsum_out`` := sum of weights (``n`` without weights), in double, so
    that row blocks can be combined.  A bad label sets ``bad_row`` as there."""
    cdef Py_ssize_t i, j, col
    cdef floating eps = _eps(<floating> 0)
    cdef floating hi = 1 - eps
    cdef floating one = 1
    cdef floating y, d, ac
    cdef double row, total = 0.0, wsum = 0.0
    cdef const floating *ai
    cdef const floating *yi
    bad_row[0] = -1
    for i in range(n):
        ai = A + i * k
        row = 0.0
        if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
            col = _label(labels[i], k)
            if col < 0:
                bad_row[0] = i
                total_out[0] = NAN
                wsum_out[0] = 0.0
                return
            row = -f_log(_clip(ai[col], eps, hi))
        else:
            yi = Y + i * k
            if loss == CATEGORICAL_CROSSENTROPY:
                for j in range(k):
                    row -= yi[j] * f_log(_clip(ai[j], eps, hi))
            elif loss == BINARY_CROSSENTROPY:
                for j in range(k):
                    ac = _clip(ai[j], eps, hi)
                    y = yi[j]
                    row -= y * f_log(ac) + (one - y) * f_log1p(-ac)
                row /= k
            elif loss == MSE or loss == HALF_SQUARED_ERROR:
                for j in range(k):
                    d = ai[j] - yi[j]
                    row += d * d
                row /= k
                if loss == HALF_SQUARED_ERROR:
                    row *= 0.5
            else:  # MAE
                for j in range(k):
                    row += f_abs(ai[j] - yi[j])
                row /= k
        if w != NULL:
            total += w[i] * row
            wsum += w[i]
        else:
            total += row
    if w == NULL:
        wsum = n
    total_out[0] = total
    wsum_out[0] = wsum


def loss_value(int loss, const floating[:, ::1] A, object Y, object sample_weight):
    """Mean (or sample-weighted mean) over rows of the per-sample loss -> float.

    A (n, k) IN; Y (n, k) of A's dtype IN, or (n,) int64 labels for sparse
    categorical cross-entropy; sample_weight (n,) or None IN.
    """
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1], bad = -1
    _check_common("loss_value", loss, n, k, Y, sample_weight)
    cdef const int64_t[::1] labels
    cdef const floating[:, ::1] Yv
    cdef const floating[::1] w
    cdef const int64_t *lp = NULL
    cdef const floating *yp = NULL
    cdef const floating *wp = NULL
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        labels = Y
    else:
        Yv = Y
    if sample_weight is not None:
        w = sample_weight
    if n == 0:
        return float("nan")
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        lp = &labels[0]
    else:
        yp = &Yv[0, 0]
    if sample_weight is not None:
        wp = &w[0]
    cdef double value
    with nogil:
        value = loss_value_ptr(loss, n, k, &A[0, 0], lp, yp, wp, &bad)
    if bad >= 0:
        raise IndexError(f"loss_value: a label is outside [0, {k})")
    return value


cdef double weight_sum(const floating *w, Py_ssize_t n) noexcept nogil:
    """Sum of the n sample weights in row order, in double (0 for w NULL)."""
    cdef Py_ssize_t i
    cdef double total = 0.0
    if w != NULL:
        for i in range(n):
            total += w[i]
    return total


cdef Py_ssize_t loss_output_delta_ptr(int loss, int act, floating alpha, Py_ssize_t n,
                                      Py_ssize_t lo, Py_ssize_t hi_row, Py_ssize_t k,
                                      const floating *Z, const floating *A,
                                      const int64_t *labels, const floating *Y,
                                      const floating *w, double wsum_d,
                                      floating *dz) noexcept nogil:
    """dz := d loss_value / dZ of the output layer (fused for matched pairs), for rows
    ``lo .. hi_row - 1`` of a batch of ``n`` rows (the pointers address row 0; the
    scale is the whole batch's, so row blocks can be done by different threads).
    With sample weights, ``wsum_d`` is their sum over the batch (``weight_sum``).

    Returns -1, or the row of a label outside ``[-k, k)`` (the loop stops there).
    dz may be A (the fused sparse case reads the label's entry first).
    """
    cdef Py_ssize_t i, j, col
    cdef bint fused = (
        (act == SOFTMAX and (loss == CATEGORICAL_CROSSENTROPY
                             or loss == SPARSE_CATEGORICAL_CROSSENTROPY))
        or (act == SIGMOID and loss == BINARY_CROSSENTROPY)
    )
    cdef bint per_output = (loss == BINARY_CROSSENTROPY or loss == MSE
                            or loss == HALF_SQUARED_ERROR or loss == MAE)
    cdef floating eps = _eps(<floating> 0)
    cdef floating hi = 1 - eps
    cdef floating one = 1
    cdef floating zero = 0
    cdef floating wsum = <floating> wsum_d
    cdef floating s, d, ac
    cdef floating s_mean = <floating> (1.0 / n)
    if per_output:
        s_mean = s_mean / k
    cdef const floating *ai
    cdef const floating *yi
    cdef floating *di
    for i in range(lo, hi_row):
        ai = A + i * k
        di = dz + i * k
        if w != NULL:
            s = w[i] / wsum if wsum != 0 else zero  # weights adding up to 0: no gradient
            if per_output:
                s = s / k
        else:
            s = s_mean
        if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
            col = _label(labels[i], k)
            if col < 0:
                return i
            # The label's entry is computed before the row is written, so
            # dz may be the same array as A.
            if fused:
                d = (ai[col] - one) * s
                for j in range(k):
                    di[j] = ai[j] * s
                di[col] = d
                continue
            d = (-one / _clip(ai[col], eps, hi)) * s
            for j in range(k):
                di[j] = zero
            di[col] = d
        else:
            yi = Y + i * k
            if fused and loss == CATEGORICAL_CROSSENTROPY:
                # d/dz of -sum_j y_j log softmax_j(z) is a * sum_j y_j - y (a - y for rows
                # that sum to 1)
                d = zero
                for j in range(k):
                    d = d + yi[j]
                for j in range(k):
                    di[j] = (ai[j] * d - yi[j]) * s
                continue
            if fused:
                for j in range(k):
                    di[j] = (ai[j] - yi[j]) * s
                continue
            if loss == CATEGORICAL_CROSSENTROPY:
                for j in range(k):
                    di[j] = (yi[j] / _clip(ai[j], eps, hi)) * -s
            elif loss == BINARY_CROSSENTROPY:
                for j in range(k):
                    ac = _clip(ai[j], eps, hi)
                    di[j] = ((ac - yi[j]) / (ac * (one - ac))) * s
            elif loss == MSE:
                for j in range(k):
                    di[j] = (ai[j] - yi[j]) * (2 * s)
            elif loss == HALF_SQUARED_ERROR:
                for j in range(k):
                    di[j] = (ai[j] - yi[j]) * s
            else:  # MAE: sign(A - Y), 0 at a tie
                for j in range(k):
                    d = ai[j] - yi[j]
                    if d > zero:
                        di[j] = s
                    elif d < zero:
                        di[j] = -s
                    else:
                        di[j] = d * s  # 0, or NaN stays NaN
        act_backward_row(act, alpha, Z + i * k, ai, di, di, k)
    return -1


def loss_output_delta(int loss, int act, double alpha, const floating[:, ::1] Z,
                      const floating[:, ::1] A, object Y, object sample_weight,
                      floating[:, ::1] dZ_out):
    """dZ_out := d loss_value / dZ for the output layer (fused for matched pairs).

    Z, A (n, k) IN; Y, sample_weight as in ``loss_value`` IN; dZ_out (n, k) OUT.
    """
    cdef Py_ssize_t n = A.shape[0], k = A.shape[1], bad
    _check_common("loss_output_delta", loss, n, k, Y, sample_weight)
    if act < 0 or act >= N_ACTIVATIONS:
        raise ValueError(f"unknown activation code {act}")
    if Z.shape[0] != n or Z.shape[1] != k or dZ_out.shape[0] != n or dZ_out.shape[1] != k:
        raise ValueError(
            f"loss_output_delta: Z ({Z.shape[0]}, {Z.shape[1]}), A ({n}, {k}) and "
            f"dZ_out ({dZ_out.shape[0]}, {dZ_out.shape[1]}) must have one shape"
        )
    if n == 0:
        return
    cdef const int64_t[::1] labels
    cdef const floating[:, ::1] Yv
    cdef const floating[::1] w
    cdef const int64_t *lp = NULL
    cdef const floating *yp = NULL
    cdef const floating *wp = NULL
    if loss == SPARSE_CATEGORICAL_CROSSENTROPY:
        labels = Y
        lp = &labels[0]
    else:
        Yv = Y
        yp = &Yv[0, 0]
    if sample_weight is not None:
        w = sample_weight
        wp = &w[0]
    with nogil:
        bad = loss_output_delta_ptr(loss, act, <floating> alpha, n, 0, n, k, &Z[0, 0], &A[0, 0],
                                    lp, yp, wp, weight_sum(wp, n), &dZ_out[0, 0])
    if bad >= 0:
        raise IndexError(f"loss_output_delta: a label is outside [0, {k})")

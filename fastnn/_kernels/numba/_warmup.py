"""Ahead-of-time compilation of the Numba kernels (fills the disk cache)."""
import numpy as np

from ..codes import CATEGORICAL_CROSSENTROPY, RELU, SOFTMAX, SPARSE_CATEGORICAL_CROSSENTROPY
from ._activations import activation_backward
from ._dense import dense_backward, dense_forward, maxout_backward, maxout_forward
from ._losses import loss_output_delta, loss_value
from ._optimizers import adagrad_update, adam_update, rmsprop_update, sgd_update
from ._loop_steps import gather_rows


def warmup(dtype=np.float32):
    """Compile (or load from the disk cache) every kernel for ``dtype``.

    Calls each kernel once on tiny arrays, with the argument patterns the
    model uses (with and without bias, input gradient, sample weights and
    momentum; 1-D and 2-D parameters; sparse and one-hot targets).  Returns
    the number of kernel calls made.  The sparse-input kernels
    (``sparse_dense_forward``/``backward``) are left to their first use: most
    models never see sparse input, and they compile in a few seconds.
    """
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"warmup: dtype must be float32 or float64, got {dt}")
    n, n_in, n_out = 3, 4, 2
    X = np.ones((n, n_in), dt)
    W = np.full((n_in, n_out), 0.1, dt)
    b = np.zeros(n_out, dt)
    Z = np.empty((n, n_out), dt)
    A = np.empty((n, n_out), dt)
    dZ = np.empty((n, n_out), dt)
    dW = np.empty_like(W)
    db = np.empty_like(b)
    dX = np.empty_like(X)
    calls = 0
    for bias in (b, None):
        dense_forward(X, W, bias, RELU, 0.0, Z, A)
        calls += 1
    activation_backward(RELU, 0.0, Z, A, A, dZ)
    calls += 1
    for db_out in (db, None):
        for dX_out in (dX, None):
            dense_backward(X, W, dZ, 0.0, dW, db_out, dX_out)
            calls += 1
    pieces = 2
    argmax = np.empty((n, n_out // pieces), np.int64)
    Am = np.empty((n, n_out // pieces), dt)
    maxout_forward(Z, pieces, Am, argmax)
    maxout_backward(Am, argmax, pieces, dZ)
    calls += 2
    dense_forward(X, W, b, SOFTMAX, 0.0, Z, A)
    labels = np.zeros(n, np.int64)
    onehot = np.zeros((n, n_out), dt)
    onehot[:, 0] = 1
    weights = np.ones(n, dt)
    for Y, loss in ((labels, SPARSE_CATEGORICAL_CROSSENTROPY), (onehot, CATEGORICAL_CROSSENTROPY)):
        for w in (None, weights):
            loss_value(loss, A, Y, w)
            loss_output_delta(loss, SOFTMAX, 0.0, Z, A, Y, w, dZ)
            calls += 2
    gather_rows(X, labels, np.empty_like(X))
    gather_rows(labels, labels, np.empty_like(labels))
    gather_rows(weights, labels, np.empty_like(weights))
    calls += 3
    for p in (W.copy(), b.copy()):  # 2-D kernels and 1-D biases
        g = np.zeros_like(p)
        s1, s2 = np.zeros_like(p), np.zeros_like(p)
        sgd_update(p, g, 0.1, 0.0, False, None)
        # The form flag is passed as step.update_parameter passes it (a bool), so
        # these specializations serve both forms.
        sgd_update(p, g, 0.1, 0.9, True, s1, False)
        adagrad_update(p, g, 0.1, 1e-7, s1, False)
        rmsprop_update(p, g, 0.1, 0.9, 1e-7, s1, False)
        adam_update(p, g, 0.1, 0.9, 0.999, 1e-7, 1, s1, s2, False)
        calls += 5
    return calls

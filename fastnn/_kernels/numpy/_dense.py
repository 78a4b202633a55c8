"""Dense layers (GEMM with fused bias + activation) and maxout (NumPy reference)."""
from __future__ import annotations

import numpy as np

from ._activations import activation_forward


def dense_forward(X, W, b, act, alpha, Z_out, A_out):
    np.matmul(X, W, out=Z_out)
    if b is not None:
        Z_out += b
    activation_forward(act, alpha, Z_out, A_out)



def dense_backward(X, W, dZ, l2, dW_out, db_out, dX_out):
    np.matmul(X.T, dZ, out=dW_out)
    if l2:
        dW_out += l2 * W
    if db_out is not None:
        np.sum(dZ, axis=0, out=db_out)
    if dX_out is not None:
        np.matmul(dZ, W.T, out=dX_out)



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


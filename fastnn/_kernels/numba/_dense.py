"""Dense layers (BLAS GEMM with a fused epilogue) and maxout (Numba).

Products go through ``_blas.matmul``/``matmul_tn``: BLAS (SciPy's OpenBLAS,
multi-threaded) read in place, or, for a short side of at most 32 rows, the
small kernel of ``_small_gemm`` that skips BLAS's copy of ``W``.  Everything
around them is one serial pass over the output: bias add and
activation a block of rows at a time (the block stays in L1 between the two),
the l2 term and the bias gradient in one sweep.  No kernel here uses
``prange``: on two cores a parallel epilogue next to BLAS's spinning threads
measured many times slower than the serial one, and the elementwise work is
memory-bound (see "BLAS and OpenMP thread pools" in ``docs/performance.md``).
"""
import numpy as np

from ..codes import SOFTMAX
from ._activations import _act_flat, _softmax_rows
from ._blas import matmul, matmul_tn
from ._jit import jit, jit_inline, jit_internal

# Bytes of output per epilogue block: still in L1 when the activation reads it.
_CHUNK_BYTES = 16384


@jit
def dense_forward(X, W, b, act, alpha, Z_out, A_out):
    """Z_out := X @ W + b; A_out := act(Z_out).     # IN: X, W, b (or None)  OUT: Z_out, A_out"""
    held = Z_out.shape[0] < 0  # False, as a run-time value (as the loops pass it)
    if b is None:
        _dense_forward(X, W, np.empty(0, Z_out.dtype), act, alpha, Z_out, A_out, held)
    else:
        if b.shape[0] != Z_out.shape[1]:
            raise ValueError("dense_forward: b must have shape (n_out,)")
        _dense_forward(X, W, b, act, alpha, Z_out, A_out, held)


@jit_inline
def _dense_forward(X, W, b, act, alpha, Z_out, A_out, held):
    """``dense_forward`` with ``b`` always an array: zero-length for a layer without
    bias (a model's layers with and without bias share one compiled function).
    ``held``: the caller holds BLAS at one thread (``matmul``).  Inlined where it is
    called, so that the product compiles once (``matmul``) and the epilogue once per
    activation (``bias_act``), not the two together per activation."""
    matmul(X, W, Z_out, held)  # checks the shapes of X, W and Z_out
    bias_act(b, act, alpha, Z_out, A_out)


@jit_internal
def bias_act(b, act, alpha, Z_out, A_out):
    """Z_out += b; A_out := act(Z_out): a dense layer's epilogue.  ``b`` zero-length:
    no bias.  Apart from the product, so that the training and predict loops, which
    call ``matmul`` and this for each layer, compile the product once for all of a
    model's activations.     # IN: b  IN/OUT: Z_out  OUT: A_out"""
    n, m = Z_out.shape
    if A_out.shape[0] != n or A_out.shape[1] != m:
        raise ValueError("dense_forward: A_out must have the shape of Z_out")
    has_bias = b.shape[0] > 0
    if has_bias and b.shape[0] != m:
        raise ValueError("dense_forward: b must have shape (n_out,)")
    alpha_ = Z_out.dtype.type(alpha)  # a new name: one type per variable
    if act == SOFTMAX:
        if has_bias:
            for i in range(n):
                for j in range(m):
                    Z_out[i, j] += b[j]
        _softmax_rows(Z_out, A_out)
        return
    z = Z_out.reshape(n * m)
    a = A_out.reshape(n * m)
    if not has_bias:
        _act_flat(act, alpha_, z, a)
        return
    # Bias then activation, a chunk of rows at a time while it is in L1.
    rows = max(1, _CHUNK_BYTES // max(m * Z_out.itemsize, 1))
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        for i in range(i0, i1):
            for j in range(m):
                Z_out[i, j] += b[j]
        _act_flat(act, alpha_, z[i0 * m:i1 * m], a[i0 * m:i1 * m])


@jit_inline
def bias_grad(dZ, db_out):
    """db_out (n_out,) := dZ.sum(axis=0), row by row: the same summation order as NumPy's."""
    n, m = dZ.shape
    if db_out.shape[0] != m:
        raise ValueError("db_out must have shape (n_out,), the columns of dZ")
    for j in range(m):
        db_out[j] = 0
    for i in range(n):
        for j in range(m):
            db_out[j] += dZ[i, j]


@jit
def dense_backward(X, W, dZ, l2, dW_out, db_out, dX_out):
    """dW_out := X.T @ dZ + l2 W; db_out := sum(dZ, 0); dX_out := dZ @ W.T.

    # IN: X, W, dZ  OUT: dW_out, db_out (or None), dX_out (or None)
    """
    if db_out is None:
        db = np.empty(0, dW_out.dtype)
    else:
        if db_out.shape[0] != dZ.shape[1]:
            raise ValueError("db_out must have shape (n_out,), the columns of dZ")
        db = db_out
    if dX_out is None:
        _dense_backward(X, W, dZ, l2, dW_out, db, np.empty((0, W.shape[0]), dZ.dtype))
    else:
        if dX_out.shape[0] == 0 and dZ.shape[0] > 0:
            raise ValueError("dense_backward: dX_out must have the rows of dZ")
        _dense_backward(X, W, dZ, l2, dW_out, db, dX_out)


@jit
def _dense_backward(X, W, dZ, l2, dW_out, db_out, dX_out):
    """``dense_backward`` with ``db_out`` and ``dX_out`` always arrays: a zero-length
    ``db_out`` is a layer without bias, a zero-row ``dX_out`` no input gradient
    (see ``_dense_forward``)."""
    matmul_tn(X, dZ, dW_out)
    if l2 != 0:
        if W.shape[0] != dW_out.shape[0] or W.shape[1] != dW_out.shape[1]:
            raise ValueError("dense_backward: W and dW_out must have one shape")
        c = dW_out.dtype.type(l2)
        w = W.reshape(W.size)
        g = dW_out.reshape(dW_out.size)
        for i in range(g.size):
            g[i] += c * w[i]
    if db_out.shape[0] > 0:
        bias_grad(dZ, db_out)
    if dX_out.shape[0] > 0:
        np.dot(dZ, W.T, dX_out)


# ------------------------------------------------------------------------ maxout
@jit
def maxout_forward(Z, pieces, A_out, argmax_out):
    """A_out[i, u] := max_p Z[i, u * pieces + p]; argmax_out := winning p (first on ties).

    # IN: Z  OUT: A_out, argmax_out
    """
    n, units = A_out.shape
    if (Z.shape[0] != n or Z.shape[1] != units * pieces or argmax_out.shape[0] != n
            or argmax_out.shape[1] != units or pieces < 1):
        raise ValueError("maxout_forward: expected Z (n, units * pieces), A_out and argmax_out (n, units)")
    for i in range(n):
        for u in range(units):
            base = u * pieces
            best = Z[i, base]
            k = 0
            for p in range(1, pieces):
                v = Z[i, base + p]
                # Strictly greater keeps the first of ties; the first NaN wins (np.argmax).
                if v > best or (v != v and best == best):
                    best = v
                    k = p
            A_out[i, u] = best
            argmax_out[i, u] = k


@jit
def maxout_backward(dA, argmax, pieces, dZ_out):
    """dZ_out[i, u * pieces + argmax[i, u]] := dA[i, u], zero elsewhere.     # OUT: dZ_out"""
    n, units = dA.shape
    if (dZ_out.shape[0] != n or dZ_out.shape[1] != units * pieces or argmax.shape[0] != n
            or argmax.shape[1] != units):
        raise ValueError("maxout_backward: expected dA, argmax (n, units) and dZ_out (n, units * pieces)")
    for i in range(n):
        for j in range(units * pieces):
            dZ_out[i, j] = 0
        for u in range(units):
            k = argmax[i, u]
            if k < 0 or k >= pieces:
                raise IndexError("maxout_backward: argmax out of range")
            dZ_out[i, u * pieces + k] = dA[i, u]

"""Matrix products for the Numba kernels: BLAS GEMM read in place, or the small
kernel without BLAS (``_small_gemm``) for a product with a short side.

``matmul`` (``X @ W``) and ``matmul_tn`` (``X.T @ dZ``, a weight gradient) pick
one by shape (``use_small_gemm``).

``np.dot`` in Numba takes whole contiguous arrays and copies any other (an
allocation per call); splitting a weight gradient by rows of ``dW`` needs
``X[:, lo:hi].T @ dZ``, a block of columns of ``X``.  ``gemm`` passes
pointers and leading dimensions to the GEMM that ``np.dot`` itself calls
(Numba's ``numba_xxgemm`` helper, which forwards to SciPy's BLAS), so a block
is read in place.  Arrays are row-major; offsets and leading dimensions count
elements.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

from ._jit import jit, jit_inline, jit_internal
from ._small_gemm import pointer, small_gemm, use_small_gemm

ensure_blas()  # SciPy's BLAS, which numba_xxgemm looks up on its first call

_I8 = ir.IntType(8)
_VOIDP = ir.IntType(8).as_pointer()


def _is_float_array(a):
    return isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)


@intrinsic
def _xgemm(typingctx, trans_a, trans_b, m, n, k, alpha, A, a_off, lda, B, b_off, ldb, beta, C, c_off, ldc):
    """C[c_off:] (m x n, row-major, ldc) := alpha op(A) @ op(B) + beta C, with
    op(A) m x k from A[a_off:] (A^T if trans_a; lda), op(B) k x n likewise."""
    if not (_is_float_array(A) and A.dtype == B.dtype == C.dtype and _is_float_array(B) and _is_float_array(C)):
        return None
    dtype = C.dtype
    sig = types.void(trans_a, trans_b, m, n, k, alpha, A, a_off, lda, B, b_off, ldb, beta, C, c_off, ldc)

    def codegen(context, builder, signature, args):
        (ta, tb, m_, n_, k_, alpha_, a, a_off_, lda_, b, b_off_, ldb_, beta_, c, c_off_, ldc_) = args
        intp = context.get_value_type(types.intp)
        tys = signature.args

        def ptr(aryty, ary, off, offty):
            data = context.make_array(aryty)(context, builder, ary).data
            return builder.bitcast(builder.gep(data, [context.cast(builder, off, offty, types.intp)]), _VOIDP)

        def slot(value, valty):
            s = cgutils.alloca_once(builder, context.get_value_type(dtype))
            builder.store(context.cast(builder, value, valty, dtype), s)
            return builder.bitcast(s, _VOIDP)

        def flag(value, valty):
            t = context.cast(builder, value, valty, types.boolean)
            return builder.select(t, ir.Constant(_I8, ord("t")), ir.Constant(_I8, ord("n")))

        def size(value, valty):
            return context.cast(builder, value, valty, types.intp)

        fnty = ir.FunctionType(ir.IntType(32), [_I8, _I8, _I8, intp, intp, intp, _VOIDP, _VOIDP, intp,
                                                _VOIDP, intp, _VOIDP, _VOIDP, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        kind = ir.Constant(_I8, ord("s" if dtype == types.float32 else "d"))
        # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B first.
        builder.call(fn, (kind, flag(tb, tys[1]), flag(ta, tys[0]),
                          size(n_, tys[3]), size(m_, tys[2]), size(k_, tys[4]),
                          slot(alpha_, tys[5]), ptr(tys[9], b, b_off_, tys[10]), size(ldb_, tys[11]),
                          ptr(tys[6], a, a_off_, tys[7]), size(lda_, tys[8]), slot(beta_, tys[12]),
                          ptr(tys[13], c, c_off_, tys[14]), size(ldc_, tys[15])))
        return context.get_dummy_value()

    return sig, codegen


@jit
def weight_grad_rows(X, dZ, l2, W, dW_out, lo, hi, held):
    """Rows lo .. hi - 1 of ``dW_out := X.T @ dZ + l2 W``: ``X (m, n_in)``, ``dZ (m, n_out)``,
    all of the batch's m rows, the other rows of ``dW_out`` untouched; ``held``: the
    caller holds BLAS at one thread (``use_small_gemm``).     # OUT: dW_out"""
    m, n_in = X.shape
    n_out = dZ.shape[1]
    if (dZ.shape[0] != m or dW_out.shape[0] != n_in or dW_out.shape[1] != n_out or W.shape[0] != n_in
            or W.shape[1] != n_out or lo < 0 or hi > n_in):
        raise ValueError("weight_grad_rows: expected X (m, n_in), dZ (m, n_out), W and dW_out (n_in, n_out)")
    if hi <= lo:
        return
    if m == 0:
        for i in range(lo * n_out, hi * n_out):
            dW_out.reshape(dW_out.size)[i] = 0
    elif use_small_gemm(m, n_out, dW_out.itemsize, held):  # a short batch: no copy of dZ into BLAS's blocks
        small_gemm(hi - lo, n_out, m, pointer(X, lo), X.strides[1] // X.itemsize, n_in, pointer(dZ, 0), n_out,
                   pointer(dW_out, lo * n_out), n_out)
    else:
        _xgemm(True, False, hi - lo, n_out, m, 1.0, X, lo, n_in, dZ, 0, n_out, 0.0, dW_out, lo * n_out, n_out)
    if l2 != 0:
        c = dW_out.dtype.type(l2)
        w = W.reshape(W.size)
        g = dW_out.reshape(dW_out.size)
        for i in range(lo * n_out, hi * n_out):
            g[i] += c * w[i]


@jit_internal
def _leading(a):
    """``a``'s leading dimension in elements if BLAS can read it in place (each row
    contiguous, rows apart by at least a row), else 0."""
    rows, cols = a.shape
    size = a.itemsize
    if rows == 0 or cols == 0:  # nothing is read: any strides
        return max(cols, 1)
    if cols > 1 and a.strides[1] != size:
        return 0
    if rows > 1 and (a.strides[0] % size != 0 or a.strides[0] < max(cols, 1) * size):
        return 0
    return max(a.strides[0] // size, cols, 1)


@jit_inline
def _product(trans, A, a_off, B, b_off, C, m, n, k, short, held):
    """C (m, n) := op(A) (m, k) @ B (k, n), op(A) = A.T if ``trans``, views read in place
    from element ``a_off`` of A and ``b_off`` of B; ``short``: the side that decides for
    the small kernel (``use_small_gemm``, with ``held``)."""
    if m == 0 or n == 0:
        return
    lda, ldb, ldc = _leading(A), _leading(B), _leading(C)
    if lda == 0 or ldb == 0 or ldc == 0:
        raise ValueError("matmul: the arrays must have contiguous rows (C order)")
    if use_small_gemm(short, n, C.itemsize, held):
        unit = A.strides[1] // A.itemsize  # 1, as a run-time value: one compiled small_gemm
        if trans:
            small_gemm(m, n, k, pointer(A, a_off), unit, lda, pointer(B, b_off), ldb, pointer(C, 0), ldc)
        else:
            small_gemm(m, n, k, pointer(A, a_off), lda, unit, pointer(B, b_off), ldb, pointer(C, 0), ldc)
    else:
        _xgemm(trans, False, m, n, k, 1.0, A, a_off, lda, B, b_off, ldb, 0.0, C, 0, ldc)


@jit_inline
def matmul(X, W, Z_out, held=False):
    """Z_out (m, n) := X (m, k) @ W (k, n), one float dtype, views read and written in
    place (each row contiguous, as the contract's C order): ``small_gemm`` for a
    short ``m`` (``use_small_gemm``; ``held``: the caller holds BLAS at one thread),
    else BLAS.  ``matmul_columns`` over all of X's columns, inlined: the product
    compiles once for both.     # OUT: Z_out"""
    k = X.shape[1]
    matmul_columns(X, k - k, k, W, Z_out, held)  # a run-time 0: one compiled matmul_columns


@jit_internal
def matmul_columns(X, lo, hi, W, Z_out, held):
    """Z_out (m, n) := X[:, lo:hi] @ W[lo:hi] for X (m, k), W (k, n): with lo, hi = 0, k
    the whole product; else one thread's part of a product split by input features
    (zeros for hi <= lo).  Views read in place, ``held`` as ``matmul``.     # OUT: Z_out"""
    m, k = X.shape
    n = W.shape[1]
    if W.shape[0] != k or Z_out.shape[0] != m or Z_out.shape[1] != n or lo < 0 or hi > k:
        raise ValueError("matmul: expected X (m, k), W (k, n), Z_out (m, n) and 0 <= lo, hi <= k")
    if m == 0 or n == 0:
        return
    if hi <= lo:
        for i in range(m):
            for j in range(n):
                Z_out[i, j] = 0
        return
    _product(False, X, lo, W, lo * _leading(W), Z_out, m, n, hi - lo, m, held)


@jit
def matmul_tn(X, dZ, dW_out):
    """dW_out (k, n) := X.T @ dZ for X (m, k), dZ (m, n): a weight gradient over m
    batch rows, X's transpose read in place; ``small_gemm`` for a short ``m``, else
    BLAS (as ``matmul``).     # OUT: dW_out"""
    m, k = X.shape
    n = dZ.shape[1]
    if dZ.shape[0] != m or dW_out.shape[0] != k or dW_out.shape[1] != n:
        raise ValueError("matmul_tn: expected X (m, k), dZ (m, n) and dW_out (k, n)")
    _product(True, X, 0, dZ, 0, dW_out, k, n, m, m, False)


@jit
def matmul_nt(dZ, W, dX_out):
    """dX_out (m, k) := dZ (m, n) @ W.T for W (k, n): a layer's input gradient, W's
    transpose read in place by BLAS (``np.dot`` with ``out`` would do the same, but
    returns ``out``, which needs Numba's reference counting).     # OUT: dX_out"""
    m, n = dZ.shape
    k = W.shape[0]
    if W.shape[1] != n or dX_out.shape[0] != m or dX_out.shape[1] != k:
        raise ValueError("matmul_nt: expected dZ (m, n), W (k, n) and dX_out (m, k)")
    if m == 0 or k == 0:
        return
    ldz, ldw, ldx = _leading(dZ), _leading(W), _leading(dX_out)
    if ldz == 0 or ldw == 0 or ldx == 0:
        raise ValueError("matmul_nt: the arrays must have contiguous rows (C order)")
    if n == 0:
        for i in range(m):
            for j in range(k):
                dX_out[i, j] = 0
        return
    _xgemm(False, True, m, k, n, 1.0, dZ, 0, ldz, W, 0, ldw, 0.0, dX_out, 0, ldx)

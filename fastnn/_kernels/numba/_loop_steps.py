"""The steps of the Numba training loop (``_training._train_batches``) that compile
by argument type: the first layer's input (dense rows gathered, or a CSR batch read
in place), each layer's forward pass, activation derivative and weight gradient,
and the first layer split across the threads by its input features.

Each step is a Python stand-in (never called) plus a Numba ``@overload`` that picks
the implementation when the loop compiles -- by the type of ``X`` (a 2-D array or
the CSR arrays of a ``SparseInput``), by whether an activation code or the feature
split is a compile-time constant -- so that a loop compiled for one model holds
only that model's code, with no branch at run time.
"""
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..codes import SOFTMAX
from ._activations import _derivative_in_place, derivative_elementwise
from ._blas import weight_grad_rows
from ._dense import _dense_forward, bias_act, bias_grad
from ._jit import INTERNAL, NO_CFUNC, jit, jit_inline, jit_internal
from ._small_gemm import pointer
from ._sparse import sparse_dense_forward, sparse_weight_grad_rows

# The training loop and its helpers: no fastmath, so their float64 statistics
# add up in order; the kernels they call keep their own options.
_LOOP_OPTIONS = {"error_model": "numpy", **NO_CFUNC}
_OVERLOAD_LOOP = {"error_model": "numpy", **INTERNAL}  # the loop's @overload implementations
_jit_loop = njit(cache=True, nogil=True, **_LOOP_OPTIONS)
# Glue inlined into its caller at Numba's IR level: no function of its own to
# compile (valid only for code with no branch that Numba prunes by argument type).
_jit_loop_inline = njit(cache=True, nogil=True, inline="always", **_LOOP_OPTIONS)


@jit_inline
def _flat(a):
    """A C-contiguous array as a 1-D view."""
    return a.reshape(a.size)

@jit
def gather_rows(X, idx, out):
    """out[i] := X[idx[i]] (negative indices count from the end).     # IN: X, idx  OUT: out"""
    m = idx.shape[0]
    n = X.shape[0]
    if out.shape[0] != m:
        raise ValueError("gather_rows: out must have len(idx) rows")
    if X.ndim == 1:
        for i in range(m):
            r = idx[i]
            if r < 0:
                r += n
            if r < 0 or r >= n:
                raise IndexError("gather_rows: index out of range")
            out[i] = X[r]
    else:
        d = X.shape[1]
        if out.shape[1] != d:
            raise ValueError("gather_rows: out must have the row length of X")
        for i in range(m):
            r = idx[i]
            if r < 0:
                r += n
            if r < 0 or r >= n:
                raise IndexError("gather_rows: index out of range")
            for j in range(d):
                out[i, j] = X[r, j]


@intrinsic
def _copy_values(typingctx, dst, src, count):
    """dst[0 .. count - 1] := src[0 .. count - 1] (pointers of one dtype): LLVM's memcpy,
    where a loop of array items would check each index for a negative value."""
    if not (isinstance(dst, types.CPointer) and dst == src and isinstance(count, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        itemsize = context.get_abi_sizeof(context.get_value_type(signature.args[0].dtype))
        count = context.cast(builder, args[2], signature.args[2], types.intp)
        cgutils.raw_memcpy(builder, args[0], args[1], count, itemsize)
        return context.get_dummy_value()

    return types.void(dst, src, count), codegen


@jit_internal
def gather_columns(X, idx, lo, hi, out):
    """out[i, lo:hi] := X[idx[i], lo:hi] for every i (negative indices count from the
    end): one thread's features of every row of a batch.     # IN: X, idx  OUT: out"""
    m = idx.shape[0]
    n = X.shape[0]
    if out.shape[0] < m or out.shape[1] != X.shape[1] or lo < 0 or hi > X.shape[1]:
        raise ValueError("gather_columns: out must have len(idx) rows of X's length")
    for i in range(m):
        r = idx[i]
        if r < 0:
            r += n
        if r < 0 or r >= n:
            raise IndexError("gather_columns: index out of range")
        _copy_values(pointer(out, i * out.shape[1] + lo), pointer(X, r * X.shape[1] + lo), hi - lo)


# The first layer's input, dense or sparse.  Each is a Python stand-in (never
# called) plus a Numba overload that picks the implementation by the type of X:
# a 2-D array, or the CSR arrays (indptr, indices, data) of a SparseInput.
def _batch_input(X, rows, Xb):
    """The first layer's input for the batch ``rows`` of ``X``: a dense ``X``'s rows
    gathered into ``Xb``, or a CSR ``X`` as ``(indptr, indices, data, rows)``, read in place."""
    raise NotImplementedError("compiled only")


@overload(_batch_input, jit_options=_OVERLOAD_LOOP)
def _ol_batch_input(X, rows, Xb):
    if isinstance(X, types.Array):
        def impl(X, rows, Xb):
            gather_rows(X, rows, Xb)
            return Xb
    else:
        def impl(X, rows, Xb):
            return X[0], X[1], X[2], rows
    return impl


def _batch_input_view(X, rows, Xb):
    """The first layer's input for all of the batch ``rows`` once every thread has
    gathered its part: ``Xb`` itself for a dense ``X``, the CSR batch for a CSR one."""
    raise NotImplementedError("compiled only")


@overload(_batch_input_view, jit_options=_OVERLOAD_LOOP)
def _ol_batch_input_view(X, rows, Xb):
    if isinstance(X, types.Array):
        def impl(X, rows, Xb):
            return Xb
    else:
        def impl(X, rows, Xb):
            return X[0], X[1], X[2], rows
    return impl


@_jit_loop
def _sparse_forward(xb, W, b, act, alpha, Z_out, A_out, held):
    """``sparse_dense_forward`` on a CSR batch ``xb`` from ``_batch_input`` (``held`` as
    ``_dense_forward``'s, not needed here)."""
    if b.shape[0] > 0:
        sparse_dense_forward(xb[0], xb[1], xb[2], xb[3], W, b, act, alpha, Z_out, A_out)
    else:
        sparse_dense_forward(xb[0], xb[1], xb[2], xb[3], W, None, act, alpha, Z_out, A_out)


# The layers' kernels, chosen when the loop compiles.  Each is a stand-in (never
# called) plus an overload: the input is a 2-D array (any layer) or a CSR batch
# (the first layer, see _batch_input); the activation ``code`` is a compile-time
# constant when the model's hidden layers share it (or for the output layer),
# else the layer's ``acts[l]``, so that only the model's own activations compile.
# A zero-length ``b``/``db_out`` is a layer without bias and a zero-row ``dX_out``
# no input gradient: one compiled kernel serves every layer of a model.
def _layer_forward(inp, W, b, code, act, alpha, Z_out, A_out, held):
    """``dense_forward`` of a layer on ``inp``: activation ``code`` if it is a
    compile-time constant, else ``act`` (the layer's code, a run-time integer)."""
    raise NotImplementedError("compiled only")


def _hidden_backward(code, act, alpha, Z, A, dZ):
    """dZ *= act'(Z) of a hidden layer, in place (``code``/``act`` as in ``_layer_forward``)."""
    raise NotImplementedError("compiled only")


@overload(_layer_forward, prefer_literal=True, jit_options=_OVERLOAD_LOOP)
def _ol_layer_forward(inp, W, b, code, act, alpha, Z_out, A_out, held):
    forward = _dense_forward if isinstance(inp, types.Array) else _sparse_forward
    if isinstance(code, types.IntegerLiteral):
        def impl(inp, W, b, code, act, alpha, Z_out, A_out, held):
            forward(inp, W, b, code, alpha, Z_out, A_out, held)
    else:
        def impl(inp, W, b, code, act, alpha, Z_out, A_out, held):
            forward(inp, W, b, act, alpha, Z_out, A_out, held)
    return impl


@overload(_hidden_backward, prefer_literal=True, jit_options=_OVERLOAD_LOOP)
def _ol_hidden_backward(code, act, alpha, Z, A, dZ):
    if isinstance(code, types.IntegerLiteral) and code.literal_value != SOFTMAX:  # its loop alone
        def impl(code, act, alpha, Z, A, dZ):
            derivative_elementwise(code, alpha, Z, A, dZ)
    elif isinstance(code, types.IntegerLiteral):
        def impl(code, act, alpha, Z, A, dZ):
            _derivative_in_place(code, alpha, Z, A, dZ)
    else:
        def impl(code, act, alpha, Z, A, dZ):
            _derivative_in_place(act, alpha, Z, A, dZ)
    return impl


@_jit_loop_inline
def _forward(xb, Ws, bs, acts, alphas, Zs, As, lo, hi, hidden, out, held, features):
    """Rows lo .. hi - 1 of the batch through every layer (``xb``: those rows' input),
    the first one's left out where ``features`` (``_train_batches`` made its rows).
    ``hidden`` is the output layer's code in a one-layer model (see _loop_for), so the
    first layer needs no branch of its own for that case; ``held``: BLAS is held at
    one thread (a batch split across threads)."""
    L = len(Ws)
    _first_forward(features, xb, Ws[0], bs[0], hidden, acts[0], alphas[0], Zs[0][lo:hi], As[0][lo:hi], held)
    for l in range(1, L - 1):
        _layer_forward(As[l - 1][lo:hi], Ws[l], bs[l], hidden, acts[l], alphas[l], Zs[l][lo:hi], As[l][lo:hi],
                       held)
    if L > 1:
        _layer_forward(As[L - 2][lo:hi], Ws[L - 1], bs[L - 1], out, acts[L - 1], alphas[L - 1],
                       Zs[L - 1][lo:hi], As[L - 1][lo:hi], held)


def _weight_grad(l, xb, xc, kept, As, m, W, dZ, l2, dW_out, db_out, lo, hi, c0, c1, nt):
    """Rows lo .. hi - 1 of layer ``l``'s weight gradient and columns c0 .. c1 - 1 of its
    bias gradient, from all of the batch's m rows (the layer's input: ``xb`` for the
    first layer, or where ``kept`` >= 0 its packed columns, the first ``kept`` of ``xc``
    (``_pack_first``); ``As[l - 1]`` for the others)."""
    raise NotImplementedError("compiled only")


@overload(_weight_grad, jit_options=_OVERLOAD_LOOP)
def _ol_weight_grad(l, xb, xc, kept, As, m, W, dZ, l2, dW_out, db_out, lo, hi, c0, c1, nt):
    if isinstance(xb, types.Array):  # one call for every layer: the kernel's code once in the loop
        def impl(l, xb, xc, kept, As, m, W, dZ, l2, dW_out, db_out, lo, hi, c0, c1, nt):
            inp = xb if l == 0 else As[l - 1][:m]
            if l == 0 and kept >= 0:  # its columns 0 .. kept - 1 (lo, hi = 0, kept)
                inp = xc[:m]
            weight_grad_rows(inp, dZ, l2, W, dW_out, lo, hi, nt > 1)  # split: BLAS held
            if db_out.shape[0] > 0:
                bias_grad(dZ[:, c0:c1], db_out[c0:c1])
    else:  # a CSR batch: the first layer's gradient at the stored values of rows lo .. hi - 1 of dW
        def impl(l, xb, xc, kept, As, m, W, dZ, l2, dW_out, db_out, lo, hi, c0, c1, nt):
            if l == 0:
                sparse_weight_grad_rows(xb[0], xb[1], xb[2], xb[3], dZ, l2, W, dW_out, lo, hi)
            else:
                weight_grad_rows(As[l - 1][:m], dZ, l2, W, dW_out, lo, hi, nt > 1)
            if db_out.shape[0] > 0:
                bias_grad(dZ[:, c0:c1], db_out[c0:c1])
    return impl


# The first layer split by input features (``_training.FEATURE_SPLIT``): each thread
# gathers its features f0 .. f1 - 1 of every batch row, multiplies them by its rows of
# W into its partial product of the whole batch (``partials[tid]``), and after a
# barrier adds the threads' partial products for its own rows, with bias and
# activation.  ``features`` is a compile-time constant in a loop compiled per model.
def _gather_input(features, X, idx, own, Xb, xrows, f0, f1):
    """The first layer's input for the batch rows ``own`` (``xrows``: their rows of
    ``Xb``), as ``_batch_input``; split by features, this thread's features f0 .. f1 - 1
    of every row of the batch ``idx`` are gathered into ``Xb`` instead."""
    raise NotImplementedError("compiled only")


@overload(_gather_input, prefer_literal=True, jit_options=_OVERLOAD_LOOP)
def _ol_gather_input(features, X, idx, own, Xb, xrows, f0, f1):
    # (an array returned must be an argument: the loop runs without reference counting)
    if not isinstance(X, types.Array):  # a CSR X: never split by features
        def impl(features, X, idx, own, Xb, xrows, f0, f1):
            return _batch_input(X, own, xrows)
    elif isinstance(features, types.BooleanLiteral) and not features.literal_value:
        def impl(features, X, idx, own, Xb, xrows, f0, f1):
            gather_rows(X, own, xrows)
            return xrows
    elif isinstance(features, types.BooleanLiteral):
        def impl(features, X, idx, own, Xb, xrows, f0, f1):
            gather_columns(X, idx, f0, f1, Xb)
            return xrows
    else:  # a run-time flag (a loop compiled for every model)
        def impl(features, X, idx, own, Xb, xrows, f0, f1):
            if features:
                gather_columns(X, idx, f0, f1, Xb)
            else:
                gather_rows(X, own, xrows)
            return xrows
    return impl


def _first_forward(features, inp, W, b, code, act, alpha, Z_out, A_out, held):
    """``_layer_forward`` of the first layer, unless it is split by ``features``."""
    raise NotImplementedError("compiled only")


@overload(_first_forward, prefer_literal=True, jit_options=_OVERLOAD_LOOP)
def _ol_first_forward(features, inp, W, b, code, act, alpha, Z_out, A_out, held):
    if isinstance(features, types.BooleanLiteral) and features.literal_value:
        def impl(features, inp, W, b, code, act, alpha, Z_out, A_out, held):
            pass
    elif isinstance(features, types.BooleanLiteral):
        def impl(features, inp, W, b, code, act, alpha, Z_out, A_out, held):
            _layer_forward(inp, W, b, code, act, alpha, Z_out, A_out, held)
    else:
        def impl(features, inp, W, b, code, act, alpha, Z_out, A_out, held):
            if not features:
                _layer_forward(inp, W, b, code, act, alpha, Z_out, A_out, held)
    return impl


# A batch's columns that are zero in every row (``_training.COLUMN_SKIP``): split by
# features, a thread lists the columns of its features f0 .. f1 - 1 that are not zero in
# every row of the batch, and when at least 1 / COLUMN_SKIP_SHARE of them are, packs those
# columns into the first r columns of xc (batch_size, span) and their rows of W into the
# first r rows of wc (span, n_out), which the products read as columns / rows 0 .. r - 1
# (the types of the arrays they read unpacked: nothing compiles twice), for the
# forward product and the weight gradient (``_pack_first``, ``_weight_grad``), whose
# packed rows (dwc) ``_unpack_first`` writes back into rows f0 .. f1 - 1 of dW, the
# left-out rows as l2 W.  ``cols`` (unsigned, at least f1 - f0 entries) lists the kept columns.
# Each is one overload with its loops inside (every compiled function adds to a first
# fit), compiled to nothing where ``features`` is a constant False.  Indices are unsigned
# and rows sliced from 0: an index Numba cannot prove non-negative is checked for
# wrap-around at every access, which kept these loops scalar (5x slower).
COLUMN_SKIP_SHARE = 8


def _pack_first(features, pack, Xb, f0, f1, W, cols, xc, wc):
    """With ``pack``, the columns of this thread's features f0 .. f1 - 1 that are not zero
    in every row of the batch Xb, and their rows of W, packed (see above) where enough
    columns are zero: how many it kept, else -1 (every column read in place)."""
    raise NotImplementedError("compiled only")


@overload(_pack_first, prefer_literal=True, jit_options=_OVERLOAD_LOOP)
def _ol_pack_first(features, pack, Xb, f0, f1, W, cols, xc, wc):
    if isinstance(features, types.BooleanLiteral) and not features.literal_value:
        def impl(features, pack, Xb, f0, f1, W, cols, xc, wc):
            return f0 - f0 - 1
        return impl

    def impl(features, pack, Xb, f0, f1, W, cols, xc, wc):
        m = Xb.shape[0]
        span = f1 - f0
        if not (features and pack and cols.shape[0] >= span and span > 0):
            return f0 - f0 - 1
        for c in range(span):
            cols[c] = 0
        for i in range(m):
            row = Xb[i, f0:f1]
            for c in range(span):
                cols[c] |= row[c] != 0
        r = f0 - f0
        for c in range(span):  # in place: r <= c
            keep = cols[c]
            cols[r] = f0 + c
            r += keep
        if (span - r) * COLUMN_SKIP_SHARE < span:
            return f0 - f0 - 1
        n_out = W.shape[1]
        for i in range(m):
            row = Xb[i]
            out = xc[i]
            for p in range(r):
                out[p] = row[cols[p]]
        for p in range(r):
            _copy_values(pointer(wc, p * n_out), pointer(W, cols[p] * n_out), n_out)
        return r
    return impl


def _unpack_first(features, kept, dwc, cols, W, l2, lo, hi, dW):
    """Rows lo .. hi - 1 of dW from the gradient of the ``kept`` packed columns (dwc): row
    cols[p] := dwc[p], every other row l2 W (its column of the batch was zero)."""
    raise NotImplementedError("compiled only")


@overload(_unpack_first, prefer_literal=True, jit_options=_OVERLOAD_LOOP)
def _ol_unpack_first(features, kept, dwc, cols, W, l2, lo, hi, dW):
    if isinstance(features, types.BooleanLiteral) and not features.literal_value:
        def impl(features, kept, dwc, cols, W, l2, lo, hi, dW):
            pass
        return impl

    def impl(features, kept, dwc, cols, W, l2, lo, hi, dW):
        n_out = W.shape[1]
        l2_ = dW.dtype.type(l2)
        p = kept - kept
        for c in range(lo, hi):
            if p < kept and cols[p] == c:
                _copy_values(pointer(dW, c * n_out), pointer(dwc, p * n_out), n_out)
                p += 1
            else:
                dr = dW[c]
                wr = W[c]
                for j in range(n_out):
                    dr[j] = l2_ * wr[j]
    return impl


def _layer_epilogue(b, code, act, alpha, Z_out, A_out):
    """Z_out += b; A_out := act(Z_out): ``_layer_forward`` after its product (``code`` if
    it is a compile-time constant, else ``act``), for a first layer split by features."""
    raise NotImplementedError("compiled only")


@overload(_layer_epilogue, prefer_literal=True, jit_options=_OVERLOAD_LOOP)
def _ol_layer_epilogue(b, code, act, alpha, Z_out, A_out):
    if isinstance(code, types.IntegerLiteral):
        def impl(b, code, act, alpha, Z_out, A_out):
            bias_act(b, code, alpha, Z_out, A_out)
    else:
        def impl(b, code, act, alpha, Z_out, A_out):
            bias_act(b, act, alpha, Z_out, A_out)
    return impl


@_jit_loop_inline
def _add_parts(partials, parts, lo, hi, Z):
    """Rows lo .. hi - 1 of Z := partials[0] + ... + partials[parts - 1], added in that order."""
    n_out = Z.shape[1]
    for i in range(lo, hi):
        for j in range(n_out):
            s = partials[0, i, j]
            for t in range(1, parts):
                s += partials[t, i, j]
            Z[i, j] = s

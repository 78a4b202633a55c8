"""Minibatch gathering and ``train_batches`` for the Numba backend: whole
minibatch steps in one compiled call (see the contract in ``fastnn._kernels``).

``_train_batches`` strings the kernels together -- no Python runs between
steps.  Layer tuples (``Ws``, ``Zs``, ...) are homogeneous, so Numba types them
as ``UniTuple`` and indexes them with the loop variable.  A layer without bias
has a zero-length ``b``, which the loop's kernels (``_dense_forward``,
``_dense_backward``) take as "no bias", so every layer of a model calls one
compiled kernel: each function Numba compiles adds 0.1-1 s to a first fit (see
"Numba: compiling once per model" in ``docs/performance.md``).
``train_batches`` is the Python wrapper that unpacks the ``TrainingPlan`` (a
dataclass, which ``@njit`` cannot take) into arguments; a sparse ``X``
(``SparseInput``) arrives as its CSR arrays ``(indptr, indices, data)``, whose
batch rows the first layer reads in place through
``sparse_dense_forward``/``backward`` -- the layer helpers are overloaded on
the input's type, so dense and sparse input are two specializations of one
loop, with no branch at run time.
"""
import platform

import numpy as np
from llvmlite import ir
from numba import njit, typeof, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from ..codes import OPT_ADAGRAD, OPT_ADAM, OPT_MOMENTUM, OPT_NESTEROV, OPT_RMSPROP, OPT_SGD
from ..plan import OptimizerHyper, TrainResult
from ..sparse import SparseInput
from . import _jit
from ._activations import _derivative_in_place
from ._dense import _dense_backward, _dense_forward
from ._jit import jit, jit_inline
from ._math import _all_finite
from ._losses import loss_output_delta, loss_value
from ._optimizers import adagrad_update, adam_update, rmsprop_update, sgd_update
from ._sparse import sparse_dense_backward, sparse_dense_forward

# The training loop and its helpers: no fastmath, so their float64 statistics
# add up in order; the kernels they call keep their own options.
_LOOP_OPTIONS = {"error_model": "numpy"}
_jit_loop = njit(cache=True, nogil=True, **_LOOP_OPTIONS)
# Glue inlined into its caller at Numba's IR level: no function of its own to
# compile (valid only for code with no branch that Numba prunes by argument type).
_jit_loop_inline = njit(cache=True, nogil=True, inline="always", **_LOOP_OPTIONS)

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


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
def _flush_denormals(typingctx):
    """Set the x86 MXCSR flush-to-zero and denormals-are-zero bits of the calling
    thread; return the previous MXCSR (uint32) for ``_restore_fp``.  Optimizer slots
    of weights whose gradient stays zero (dead ReLU units) decay into the denormal
    range, where every operation costs some hundred cycles (see "Denormals" in
    ``docs/performance.md``).  Elsewhere: a no-op."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p])
        stmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
        ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
        builder.call(stmxcsr, [builder.bitcast(slot, i8p)])
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, 0x8040)), slot)
        builder.call(ldmxcsr, [builder.bitcast(slot, i8p)])
        return old
    return types.uint32(), codegen


@intrinsic
def _restore_fp(typingctx, old):
    """Put back the MXCSR that ``_flush_denormals`` returned."""
    def codegen(context, builder, signature, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            i8p = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i8p])
            ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
            builder.call(ldmxcsr, [builder.bitcast(slot, i8p)])
        return context.get_dummy_value()
    return types.void(types.uint32), codegen


@_jit_loop
def flush_denormals():
    """Flush denormals to zero on this thread until ``restore_fp``; returns the old state."""
    return _flush_denormals()


@_jit_loop
def restore_fp(old):
    _restore_fp(old)


def _update(opt, p, g, lr, hyper, step, s1, s2):
    """One optimizer step on ``p`` by the rule ``opt`` (see ``_ol_update``)."""
    raise NotImplementedError("compiled only")


@overload(_update, prefer_literal=True, jit_options=_LOOP_OPTIONS)
def _ol_update(opt, p, g, lr, hyper, step, s1, s2):
    """A constant ``opt`` (the loop compiled for one model) compiles its rule alone;
    a run-time one, a branch per rule."""
    if not isinstance(opt, types.IntegerLiteral):
        def impl(opt, p, g, lr, hyper, step, s1, s2):
            if opt == OPT_SGD:
                _update(OPT_SGD, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_MOMENTUM:
                _update(OPT_MOMENTUM, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_NESTEROV:
                _update(OPT_NESTEROV, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_ADAGRAD:
                _update(OPT_ADAGRAD, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_RMSPROP:
                _update(OPT_RMSPROP, p, g, lr, hyper, step, s1, s2)
            elif opt == OPT_ADAM:
                _update(OPT_ADAM, p, g, lr, hyper, step, s1, s2)
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


@jit_inline
def _flat(a):
    """A C-contiguous array as a 1-D view."""
    return a.reshape(a.size)


@jit_inline
def _argmax_row(row):
    best = 0
    for j in range(1, row.shape[0]):
        if row[j] > row[best]:
            best = j
    return best


@_jit_loop
def _batch_statistics(A, Y):
    """Correct predictions and the sums of per-row mean squared / absolute error
    of one batch (both 0 for integer labels)."""
    m, k = A.shape
    correct = 0
    if Y.ndim == 1:
        for i in range(m):
            if _argmax_row(A[i]) == Y[i]:
                correct += 1
        return correct, 0.0, 0.0
    sq = 0.0
    ab = 0.0
    for i in range(m):
        if k == 1:
            if (A[i, 0] > 0.5) == (Y[i, 0] > 0.5):
                correct += 1
        elif _argmax_row(A[i]) == _argmax_row(Y[i]):
            correct += 1
        row_sq = 0.0
        row_ab = 0.0
        for j in range(k):
            d = np.float64(A[i, j]) - np.float64(Y[i, j])
            row_sq += d * d
            row_ab += abs(d)
        sq += row_sq / k
        ab += row_ab / k
    return correct, sq, ab


# The first layer's input, dense or sparse.  Each is a Python stand-in (never
# called) plus a Numba overload that picks the implementation by the type of X:
# a 2-D array, or the CSR arrays (indptr, indices, data) of a SparseInput.
def _batch_input(X, rows, Xb):
    """The first layer's input for the batch ``rows`` of ``X``: a dense ``X``'s rows
    gathered into ``Xb``, or a CSR ``X`` as ``(indptr, indices, data, rows)``, read in place."""
    raise NotImplementedError("compiled only")


@overload(_batch_input, jit_options=_LOOP_OPTIONS)
def _ol_batch_input(X, rows, Xb):
    if isinstance(X, types.Array):
        def impl(X, rows, Xb):
            gather_rows(X, rows, Xb)
            return Xb
    else:
        def impl(X, rows, Xb):
            return X[0], X[1], X[2], rows
    return impl


@_jit_loop
def _sparse_forward(xb, W, b, act, alpha, Z_out, A_out):
    """``sparse_dense_forward`` on a CSR batch ``xb`` from ``_batch_input``."""
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
def _layer_forward(inp, W, b, code, act, alpha, Z_out, A_out):
    """``_dense_forward`` of a layer on ``inp``: activation ``code`` if it is a
    compile-time constant, else ``act`` (the layer's code, a run-time integer)."""
    raise NotImplementedError("compiled only")


def _layer_backward(inp, W, dZ, l2, dW_out, db_out, dX_out):
    """``_dense_backward`` of a layer whose input was ``inp``."""
    raise NotImplementedError("compiled only")


def _hidden_backward(code, act, alpha, Z, A, dZ):
    """dZ *= act'(Z) of a hidden layer, in place (``code``/``act`` as in ``_layer_forward``)."""
    raise NotImplementedError("compiled only")


@overload(_layer_forward, prefer_literal=True, jit_options=_LOOP_OPTIONS)
def _ol_layer_forward(inp, W, b, code, act, alpha, Z_out, A_out):
    forward = _dense_forward if isinstance(inp, types.Array) else _sparse_forward
    if isinstance(code, types.IntegerLiteral):
        def impl(inp, W, b, code, act, alpha, Z_out, A_out):
            forward(inp, W, b, code, alpha, Z_out, A_out)
    else:
        def impl(inp, W, b, code, act, alpha, Z_out, A_out):
            forward(inp, W, b, act, alpha, Z_out, A_out)
    return impl


@overload(_layer_backward, jit_options=_LOOP_OPTIONS)
def _ol_layer_backward(inp, W, dZ, l2, dW_out, db_out, dX_out):
    if isinstance(inp, types.Array):
        def impl(inp, W, dZ, l2, dW_out, db_out, dX_out):
            _dense_backward(inp, W, dZ, l2, dW_out, db_out, dX_out)
    else:  # a CSR batch: the first layer, no input gradient
        def impl(inp, W, dZ, l2, dW_out, db_out, dX_out):
            if db_out.shape[0] > 0:
                sparse_dense_backward(inp[0], inp[1], inp[2], inp[3], dZ, l2, W, dW_out, db_out)
            else:
                sparse_dense_backward(inp[0], inp[1], inp[2], inp[3], dZ, l2, W, dW_out, None)
    return impl


@overload(_hidden_backward, prefer_literal=True, jit_options=_LOOP_OPTIONS)
def _ol_hidden_backward(code, act, alpha, Z, A, dZ):
    if isinstance(code, types.IntegerLiteral):
        def impl(code, act, alpha, Z, A, dZ):
            _derivative_in_place(code, alpha, Z, A, dZ)
    else:
        def impl(code, act, alpha, Z, A, dZ):
            _derivative_in_place(act, alpha, Z, A, dZ)
    return impl


@_jit_loop_inline
def _forward(xb, Ws, bs, acts, alphas, Zs, As, m, hidden, out):
    # ``hidden`` is the output layer's code in a one-layer model (see _loop_for), so
    # the first layer needs no branch of its own for that case.
    L = len(Ws)
    _layer_forward(xb, Ws[0], bs[0], hidden, acts[0], alphas[0], Zs[0][:m], As[0][:m])
    for l in range(1, L - 1):
        _layer_forward(As[l - 1][:m], Ws[l], bs[l], hidden, acts[l], alphas[l], Zs[l][:m], As[l][:m])
    if L > 1:
        _layer_forward(As[L - 2][:m], Ws[L - 1], bs[L - 1], out, acts[L - 1], alphas[L - 1],
                       Zs[L - 1][:m], As[L - 1][:m])


@_jit_loop_inline
def _backward(xb, Ws, bs, dWs, dbs, acts, alphas, l2s, Zs, As, dZs, m, hidden):
    L = len(Ws)
    for l in range(L - 1, -1, -1):
        dZ = dZs[l][:m]
        if l < L - 1:
            _hidden_backward(hidden, acts[l], alphas[l], Zs[l][:m], As[l][:m], dZ)
        if l == 0:  # no input gradient: zero rows of dX
            _layer_backward(xb, Ws[l], dZ, l2s[l], dWs[l], dbs[l], dZs[0][:0])
        else:
            _layer_backward(As[l - 1][:m], Ws[l], dZ, l2s[l], dWs[l], dbs[l], dZs[l - 1][:m])


@_jit_loop
def _train_batches(X, Y, SW, perm, batch_size, first_batch, n_batches,
                   Ws, bs, dWs, dbs, acts, alphas, l2s,
                   Zs, As, dZs, Xb, Yb, SWb,
                   loss, opt, hyper, lrs, step0, S1W, S1b, S2W, S2b, hidden, out):
    """The fields of ``TrainResult``, as a tuple.  ``X`` is a 2-D array or a CSR
    ``(indptr, indices, data)`` (see ``_batch_input``).  ``opt``, ``hidden`` (the
    hidden layers' shared activation) and ``out`` (the output layer's) are
    compile-time constants when ``train_batches`` compiles the loop for a model;
    ``hidden`` may be a run-time integer, and then each layer's is ``acts[l]``."""
    n = perm.shape[0]  # X's rows
    L = len(Ws)
    loss_sum = correct = squared_error = absolute_error = 0.0
    for j in range(n_batches):
        start = (first_batch + j) * batch_size
        stop = min(start + batch_size, n)
        m = stop - start
        idx = perm[start:stop]
        xb = _batch_input(X, idx, Xb[:m])
        yb = Yb[:m]
        gather_rows(Y, idx, yb)
        _forward(xb, Ws, bs, acts, alphas, Zs, As, m, hidden, out)
        A = As[L - 1][:m]
        if SW is None:
            batch_loss = loss_value(loss, A, yb, None)
        else:
            wb = SWb[:m]
            gather_rows(SW, idx, wb)
            batch_loss = loss_value(loss, A, yb, wb)
        if not np.isfinite(batch_loss):
            return j, loss_sum, correct, squared_error, absolute_error, True
        loss_sum += m * batch_loss
        c, se, ae = _batch_statistics(A, yb)
        correct += c
        squared_error += se
        absolute_error += ae
        if SW is None:
            loss_output_delta(loss, out, alphas[L - 1], Zs[L - 1][:m], A, yb, None, dZs[L - 1][:m])
        else:
            loss_output_delta(loss, out, alphas[L - 1], Zs[L - 1][:m], A, yb, SWb[:m], dZs[L - 1][:m])
        _backward(xb, Ws, bs, dWs, dbs, acts, alphas, l2s, Zs, As, dZs, m, hidden)
        lr = lrs[j]
        step = step0 + j + 1
        for l in range(L):  # weights as flat views: one compiled update for W and b
            _update(opt, _flat(Ws[l]), _flat(dWs[l]), lr, hyper, step, _flat(S1W[l]), _flat(S2W[l]))
            if bs[l].shape[0] > 0:
                _update(opt, bs[l], dbs[l], lr, hyper, step, S1b[l], S2b[l])
    finite = True
    if n_batches > 0 and first_batch + n_batches == (n + batch_size - 1) // batch_size:
        # the epoch's last update: see TrainResult.ends_finite
        start = (first_batch + n_batches - 1) * batch_size
        m = n - start
        xb = _batch_input(X, perm[start:n], Xb[:m])
        for l in range(L):
            finite = (finite and _all_finite(_flat(Ws[l])) and _all_finite(bs[l]) and _all_finite(_flat(S1W[l]))
                      and _all_finite(S1b[l]) and _all_finite(_flat(S2W[l])) and _all_finite(S2b[l]))
        if finite:
            _forward(xb, Ws, bs, acts, alphas, Zs, As, m, hidden, out)
            finite = _all_finite(_flat(As[L - 1][:m]))
    return n_batches, loss_sum, correct, squared_error, absolute_error, finite


def _loop_for(plan, args):
    """``_train_batches`` compiled for this plan's model, once per plan.

    The optimizer code, the hidden layers' shared activation and the output
    layer's are compile-time constants of the specialization (``IntegerLiteral``),
    so only their kernels compile: a cold first fit compiles one activation, one
    rule and one loss path instead of every one.  The entry point is called
    directly, without Numba's per-call type dispatch over ~30 arguments."""
    entry = plan.compiled.get("numba")
    if entry is None and not _jit.SPECIALIZE:
        entry = plan.compiled["numba"] = _train_batches  # Numba's dispatcher: run-time codes
    elif entry is None:
        acts = [int(a) for a in plan.acts]
        shared = len(acts) == 1 or len(set(acts[:-1])) == 1
        sig = [typeof(a) for a in args]
        sig[_LOSS] = types.literal(int(plan.loss))
        sig[_OPT] = types.literal(int(plan.optimizer))
        sig[_OUT] = types.literal(acts[-1])
        if shared:  # one layer: the output layer's code, so the unused branch adds nothing
            sig[_HIDDEN] = types.literal(acts[0])
        entry = plan.compiled["numba"] = _train_batches.compile(tuple(sig))
    return entry


# positions of the codes among _train_batches' arguments
_LOSS, _OPT, _HIDDEN, _OUT = 20, 21, 29, 30


def train_batches(plan, first_batch, n_batches, lrs, step0):
    """See ``fastnn._kernels``: runs ``n_batches`` whole training steps (with
    denormals flushed to zero, see ``_flush_denormals``)."""
    # Numba reads the hyper-parameters' named tuple by field; all floats (the
    # flags become 0.0/1.0), so every optimizer shares one compiled type.
    hyper = OptimizerHyper(*map(float, plan.hyper))
    X = plan.X
    if isinstance(X, SparseInput):  # its batches are read in place (plan.Xb has no rows)
        X = (X.indptr, X.indices, X.data)
    if not (isinstance(lrs, np.ndarray) and lrs.dtype == np.float64 and lrs.ndim == 1
            and lrs.flags.c_contiguous):  # the compiled entry point takes exactly this type
        lrs = np.ascontiguousarray(lrs, dtype=np.float64)
    acts = plan.acts
    args = (X, plan.Y, plan.SW, plan.perm, plan.batch_size, first_batch, n_batches,
            plan.Ws, plan.bs, plan.dWs, plan.dbs, acts, plan.alphas, plan.l2s,
            plan.Zs, plan.As, plan.dZs, plan.Xb, plan.Yb, plan.SWb,
            plan.loss, plan.optimizer, hyper, lrs, step0, plan.S1W, plan.S1b, plan.S2W, plan.S2b,
            int(acts[0]), int(acts[-1]))
    loop = _loop_for(plan, args)
    fp = flush_denormals()
    try:
        totals = loop(*args)
    finally:
        restore_fp(fp)
    return TrainResult(*totals)

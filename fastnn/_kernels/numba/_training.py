"""``train_batches`` for the Numba backend: whole minibatch steps in one
compiled call (see the contract in ``fastnn._kernels``).

``_train_batches`` strings the kernels together -- no Python runs between
steps.  Layer tuples (``Ws``, ``Zs``, ...) are homogeneous, so Numba types them
as ``UniTuple`` and indexes them with the loop variable.  A layer without bias
has a zero-length ``b``, which the loop's kernels take as "no bias", so every
layer of a model calls one compiled kernel: each function Numba compiles adds
0.1-1 s to a first fit (see "Numba: compiling once per model" in
``docs/performance.md``).
``train_batches`` is the Python wrapper that unpacks the ``TrainingPlan`` (a
dataclass, which ``@njit`` cannot take) into arguments; a sparse ``X``
(``SparseInput``) arrives as its CSR arrays ``(indptr, indices, data)``, whose
batch rows the first layer reads in place through
``sparse_dense_forward``/``backward`` -- the layer helpers are overloaded on
the input's type, so dense and sparse input are two specializations of one
loop, with no branch at run time (those steps are in ``_loop_steps``).

Threads, as in the Cython loop: a large enough batch (``_threads_for``) is
split across threads that each run the same compiled loop (``nogil``) on
their share -- their rows forward, rows of each ``dW`` (``_blas``) and columns
of each bias gradient, their rows' input gradients, the update of the rows
and columns they computed -- and meet at barriers (``_sync``), ``L + 1`` per
batch.  BLAS is held at one thread meanwhile.  The threads are a pool of
Python threads (``_pool``), not ``prange``, whose parallel compilation would
add seconds to a first fit; with one thread the same loop meets no barrier.
Below the split's size, or when ``fit``'s thread policy holds the plan at one
thread (``plan.threads``, a busy machine), BLAS keeps its own threads.  A wide
first layer of dense input is split by its input features instead of batch rows
(``FEATURE_SPLIT``), as in the Cython loop.
"""
import threading

import numpy as np
from numba import get_num_threads, njit, typeof, types
from numba._dispatcher import compute_fingerprint
from numba.core.cpu import CPUTargetOptions

from .. import blas_threads
from ..plan import OptimizerHyper, TrainResult
from ..sparse import SparseInput
from . import _compile_ahead, _jit
from ._blas import matmul_columns, matmul_nt
from ._jit import _flush_denormals, _restore_fp, jit_inline
from ._loop_steps import (
    _LOOP_OPTIONS, _add_parts, _batch_input_view, _flat, _forward, _gather_input, _hidden_backward,
    COLUMN_SKIP_SHARE, _jit_loop, _jit_loop_inline, _layer_epilogue, _pack_first, _unpack_first, _weight_grad,
    gather_rows,
)
from ._math import _all_finite
from ._losses import loss_sums, output_delta
from ._pool import wait_all, workers
from ._optimizers import apply_rule
from ._sync import ABORT, barrier, new_sync, share

# The loop itself without Numba's reference counting (NRT): every view it takes of a
# layer's arrays (``Zs[l][lo:hi]``, a tuple item, a flat view for the update) and
# every call that passes one counted references with an atomic increment and
# decrement on the array's MemInfo, about 900 a batch for 13-128-128-64-1: 7 us of
# a 50 us batch.  The loop allocates nothing (it cannot: without NRT, Numba refuses
# to compile an allocation), its arrays come from the caller, who holds them for the
# call, and the kernels it calls keep their own options (a NULL MemInfo costs them a
# test).  Regression (batch 16) ran 1.37 against 1.49 ms an epoch, tiny 16.1 against
# 17.0 ms, with the same weights.  ``_nrt`` is an option of Numba's CPU target,
# not of its public API: where it is missing, the loop counts references as before.
_LOOP_NRT = {"_nrt": False} if "_nrt" in dir(CPUTargetOptions) else {}
_jit_epoch = njit(cache=True, nogil=True, **_LOOP_NRT, **_LOOP_OPTIONS)

@_jit_loop
def flush_denormals():
    """Flush denormals to zero on this thread until ``restore_fp``; returns the old state."""
    return _flush_denormals()


@_jit_loop
def restore_fp(old):
    _restore_fp(old)


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


@_jit_loop_inline
def _backward(xb, Ws, dWs, dbs, acts, alphas, l2s, Zs, As, dZs, m, lo, hi, tid, nt, sync, hidden,
              skip, kept, cols, xc, wc, dwc):
    """The backward pass of the batch's m rows, run by thread tid of nt (lo .. hi - 1:
    its rows of the batch): each layer's weight gradient by rows of dW and its bias
    gradient by columns, each from all rows (after a barrier: every row of dZ done),
    then the input gradient and activation derivative of the thread's own rows.
    ``kept`` >= 0: the first layer's products kept that many packed columns (``cols``,
    ``xc``, ``wc``; the gradient packed into ``dwc``, see ``_pack_first``).
    False when a barrier was released by ``sync[ABORT]``."""
    L = len(Ws)
    for l in range(L - 1, -1, -1):
        if l < L - 1 and nt > 1 and not barrier(sync, nt):
            return False
        n_in, n_out = Ws[l].shape
        r0, r1 = share(n_in, tid, nt, 1)
        c0, c1 = share(n_out, tid, nt, 1)
        # the first layer's kept columns (packed): their rows of dW, then every row of r0:r1;
        # one _weight_grad call for every layer (each call site is compiled again)
        k = kept if l == 0 else -1
        W, dW, w0, w1 = Ws[l], dWs[l], r0, r1
        if k >= 0:
            W, dW, w0, w1 = wc, dwc, k - k, k
        _weight_grad(l, xb, xc, k, As, m, W, dZs[l][:m], l2s[l], dW, dbs[l], w0, w1, c0, c1, nt)
        if k >= 0:
            _unpack_first(skip, k, dwc, cols, Ws[0], l2s[0], r0, r1, dWs[0])
        if l > 0 and hi > lo:  # the input gradient of own rows, then the activation derivative
            dA = dZs[l - 1][lo:hi]
            matmul_nt(dZs[l][lo:hi], Ws[l], dA)
            _hidden_backward(hidden, acts[l - 1], alphas[l - 1], Zs[l - 1][lo:hi], As[l - 1][lo:hi], dA)
    return True


@_jit_loop_inline
def _batch_weight_sum(SW, idx):
    """The batch's sample weights added in row order (every thread gets the same float)."""
    s = 0.0
    for i in range(idx.shape[0]):
        r = idx[i]
        s += SW[r + SW.shape[0] if r < 0 else r]
    return s


@_jit_epoch
def _train_batches(X, Y, SW, perm, batch_size, first_batch, n_batches,
                   Ws, bs, dWs, dbs, acts, alphas, l2s,
                   Zs, As, dZs, Xb, Yb, SWb,
                   loss, opt, hyper, lrs, step0, S1W, S1b, S2W, S2b,
                   tid, nt, min_rows, sync, sums, hidden, out, features, partials, compact, skip):
    """The fields of ``TrainResult``, as a tuple, from thread ``tid`` of ``nt``.

    ``X`` is a 2-D array or a CSR ``(indptr, indices, data)`` (see ``_batch_input``).
    ``opt``, ``hidden`` (the hidden layers' shared activation) and ``out`` (the output
    layer's) are compile-time constants when ``train_batches`` compiles the loop for a
    model; ``hidden`` may be a run-time integer, and then each layer's is ``acts[l]``.

    With ``nt`` > 1 every thread runs this loop at once (``train_batches``), as the
    Cython loop splits a batch: the batch's rows into up to ``nt`` parts of at least
    ``min_rows`` rows, each thread gathering its rows, running them forward and
    putting its loss and metric sums in ``sums[tid]`` and the output delta in its
    rows of dZ; after a barrier every thread adds the sums in thread order (the same
    batch loss, the same branch); the backward pass splits each weight gradient by
    rows of dW and the bias gradient by columns (``_backward``), and the update
    takes the same rows and columns, so each thread updates what it computed; a
    barrier ends the batch.  The gradients do not depend on the thread count (up to
    BLAS's blocking).  Thread 0 returns the totals and checks the epoch's end; a
    barrier released by ``sync[ABORT]`` (another thread raised) returns at once.

    ``features`` (a compile-time constant in a loop compiled per model): the first
    layer is split by input features, not rows: each thread gathers its features of
    every row (``_gather_input``) and multiplies them by its rows of W into its partial
    product of the batch (``partials`` (nt, batch_size, n_out)); after a barrier each
    adds the partial products of its own rows, in thread order, and applies the bias
    and activation.  Its weight gradient and update take the same rows of W, split as
    every layer's already are.  With ``skip`` (a compile-time constant, ``_skips_for``)
    a thread leaves its features that are zero in every row of the batch out
    (``_pack_first``), in ``compact`` (the kept columns, their values, rows of W and of
    dW, per thread; see ``_compact``)."""
    n = perm.shape[0]  # X's rows
    L = len(Ws)
    n0 = Ws[0].shape[0]
    loss_sum = correct = squared_error = absolute_error = 0.0
    finite = True
    # Thread 0 checks what the epoch's last update left (TrainResult.ends_finite) in one more
    # pass (j == n_batches), through the batches' own _forward call: one copy of its code.
    ends = tid == 0 and n_batches > 0 and first_batch + n_batches == (n + batch_size - 1) // batch_size
    for j in range(n_batches + 1 if ends else n_batches):
        if j < n_batches:
            start = (first_batch + j) * batch_size
            stop = min(start + batch_size, n)
            m = stop - start
            idx = perm[start:stop]
            parts = max(1, min(nt, m // min_rows))
            lo, hi = share(m, tid, parts, 1)
            f0, f1 = share(n0, tid, nt, 1)  # split by features: this thread's rows of Ws[0]
            fparts = nt
            for t in range(5):
                sums[tid, t] = 0.0
        else:
            for l in range(L):
                finite = (finite and _all_finite(_flat(Ws[l])) and _all_finite(bs[l]) and _all_finite(_flat(S1W[l]))
                          and _all_finite(S1b[l]) and _all_finite(_flat(S2W[l])) and _all_finite(S2b[l]))
            if not finite:
                break
            start = (first_batch + n_batches - 1) * batch_size
            m = n - start
            idx = perm[start:n]
            lo, hi = 0, m
            f0, f1, fparts = 0, n0, 1  # thread 0 alone
        own = idx[lo:hi]
        xb = _gather_input(features, X, idx, own, Xb, Xb[lo:hi], f0, f1)
        kept = -1
        cols, xc, wc, dwc = compact[0][tid], compact[1][tid], compact[2][tid], compact[3][tid]
        if features:  # the first layer: this thread's features of every row, then its rows
            # (the columns zero in every row left out, packed, where enough are: _pack_first)
            kept = _pack_first(skip, j < n_batches, Xb[:m], f0, f1, Ws[0], cols, xc, wc)
            xin, win, a0, a1 = Xb[:m], Ws[0], f0, f1
            if kept >= 0:  # columns and rows 0 .. kept - 1 of the packed arrays
                xin, win, a0, a1 = xc[:m], wc, kept - kept, kept
            matmul_columns(xin, a0, a1, win, partials[tid][:m], nt > 1)
            if fparts > 1 and not barrier(sync, nt):
                return j, loss_sum, correct, squared_error, absolute_error, False
            if hi > lo:
                _add_parts(partials, fparts, lo, hi, Zs[0])
                _layer_epilogue(bs[0], hidden, acts[0], alphas[0], Zs[0][lo:hi], As[0][lo:hi])
        if hi > lo:
            _forward(xb, Ws, bs, acts, alphas, Zs, As, lo, hi, hidden, out, nt > 1, features)
        if j == n_batches:
            finite = _all_finite(_flat(As[L - 1][:m]))
            break
        if hi > lo:
            yb = Yb[lo:hi]
            gather_rows(Y, own, yb)
            A = As[L - 1][lo:hi]
            if SW is None:
                total, wsum = loss_sums(loss, A, yb, None)
            else:
                wb = SWb[lo:hi]
                gather_rows(SW, own, wb)
                total, wsum = loss_sums(loss, A, yb, wb)
            c, se, ae = _batch_statistics(A, yb)
            sums[tid, 0] = total
            sums[tid, 1] = wsum
            sums[tid, 2] = c
            sums[tid, 3] = se
            sums[tid, 4] = ae
            # the output delta of these rows, scaled for the whole batch
            if SW is None:
                output_delta(loss, out, alphas[L - 1], Zs[L - 1][lo:hi], A, yb, None, m, 0.0,
                             dZs[L - 1][lo:hi])
            else:
                output_delta(loss, out, alphas[L - 1], Zs[L - 1][lo:hi], A, yb, SWb[lo:hi], m,
                             _batch_weight_sum(SW, idx), dZs[L - 1][lo:hi])
        if nt > 1 and not barrier(sync, nt):
            return j, loss_sum, correct, squared_error, absolute_error, False
        total = wsum = c = se = ae = 0.0
        for t in range(parts):
            total += sums[t, 0]
            wsum += sums[t, 1]
            c += sums[t, 2]
            se += sums[t, 3]
            ae += sums[t, 4]
        batch_loss = total / m if SW is None else (total / wsum if wsum != 0 else 0.0)  # no weight: 0
        if not np.isfinite(batch_loss):
            return j, loss_sum, correct, squared_error, absolute_error, True
        loss_sum += (m if SW is None else wsum) * batch_loss
        correct += c
        squared_error += se
        absolute_error += ae
        # all rows' input: thread 0's view of the gathered batch (a CSR batch: all its rows)
        xall = _batch_input_view(X, idx, Xb[:m])
        if not _backward(xall, Ws, dWs, dbs, acts, alphas, l2s, Zs, As, dZs, m, lo, hi, tid, nt, sync, hidden,
                         skip, kept, cols, xc, wc, dwc):
            return j, loss_sum, correct, squared_error, absolute_error, False
        lr = lrs[j]
        step = step0 + j + 1
        for l in range(L):  # the rows of W and columns of b whose gradient this thread made
            n_in, n_out = Ws[l].shape
            r0, r1 = share(n_in, tid, nt, 1)
            a, b = r0 * n_out, r1 * n_out
            if b > a:  # weights as flat views: one compiled update for W and b
                apply_rule(opt, _flat(Ws[l])[a:b], _flat(dWs[l])[a:b], lr, hyper, step,
                        _flat(S1W[l])[a:b], _flat(S2W[l])[a:b])
            c0, c1 = share(n_out, tid, nt, 1)
            if bs[l].shape[0] > 0 and c1 > c0:
                apply_rule(opt, bs[l][c0:c1], dbs[l][c0:c1], lr, hyper, step, S1b[l][c0:c1], S2b[l][c0:c1])
        if nt > 1 and not barrier(sync, nt):
            return j, loss_sum, correct, squared_error, absolute_error, False
    return n_batches, loss_sum, correct, squared_error, absolute_error, finite


def _loop_for(plan, args):
    """``_train_batches`` compiled for this plan's model, once per plan.

    The optimizer code, the hidden layers' shared activation, the output
    layer's and whether the first layer is split by features are compile-time
    constants of the specialization (``IntegerLiteral``, ``BooleanLiteral``),
    so only their kernels compile: a cold first fit compiles one activation, one
    rule and one loss path instead of every one.  The entry point is called
    directly, without Numba's per-call type dispatch over ~30 arguments, and is
    kept by the arguments' types (``_type_key``): each ``fit`` makes a new plan,
    and Numba's ``typeof`` of its ~50 arrays took longer than a small model's epoch."""
    entry = plan.compiled.get("numba")
    if entry is None and not _jit.SPECIALIZE:
        entry = plan.compiled["numba"] = _train_batches  # Numba's dispatcher: run-time codes
    elif entry is None:
        acts = [int(a) for a in plan.acts]
        shared = len(acts) == 1 or len(set(acts[:-1])) == 1
        features, skip = bool(args[_FEATURES]), bool(args[_SKIP])
        key = (_type_key(args), int(plan.loss), int(plan.optimizer), acts[-1], shared and acts[0], features, skip)
        entry = _ENTRIES.get(key)
        if entry is None:
            sig = [typeof(a) for a in args]
            sig[_LOSS] = types.literal(int(plan.loss))
            sig[_OPT] = types.literal(int(plan.optimizer))
            sig[_OUT] = types.literal(acts[-1])
            if shared:  # one layer: the output layer's code, so the unused branch adds nothing
                sig[_HIDDEN] = types.literal(acts[0])
            sig[_FEATURES] = types.literal(features)
            sig[_SKIP] = types.literal(skip)
            ahead = None
            try:
                ahead = _compile_ahead.start(_train_batches, tuple(sig))
                entry = _ENTRIES[key] = _train_batches.compile(tuple(sig))
            finally:
                _compile_ahead.stop(ahead)
        plan.compiled["numba"] = entry
    return entry


_ENTRIES = {}  # compiled entry points of _train_batches by _loop_for's key


def _type_key(args):
    """What Numba's ``typeof`` reads of the arguments, cheaply: Numba's own
    fingerprint (each array's dtype, rank, layout and writability, each tuple's
    items, any other value's type: 3 us for a plan's ~60 arrays, where ``typeof``
    took 100) and, which it leaves out, the alignment of the arrays that come from
    the caller (X or its CSR arrays, Y, the sample weights): the plan's own
    parameters, slots and workspaces are allocated aligned (``aligned.empty``)."""
    X = args[0]
    given = (*X, *args[1:3]) if isinstance(X, tuple) else args[:3]
    aligned = tuple(a.flags.aligned for a in given if isinstance(a, np.ndarray))
    return compute_fingerprint(tuple(args)), aligned


# positions of the codes among _train_batches' arguments
_LOSS, _OPT, _HIDDEN, _OUT, _FEATURES, _SKIP = 20, 21, 34, 35, 36, 39
_TID = 29  # the thread number

# A batch is split across threads when each gets at least this many rows and one
# batch's products have at least MIN_PARALLEL_FLOPS (below that, the barriers cost
# more than the split saves; as in the Cython loop).  Float32: a batch of 16 split
# into two threads of 8 rows ran slower than one thread (784-128-10 1.11-1.16x,
# 13-128-128-64-1 1.42x), batch 32 as 2 x 16 rows 10-15 % faster.  Float64, whose
# rows cost 2-3.5x more (its update's divisions), gains from 8: batch 16 0.78x,
# 13-128-128-64-1 0.95-0.97x (docs/performance.md, "Numba: batches split across threads").
MIN_ROWS_PER_THREAD = 16
MIN_ROWS_PER_THREAD_F64 = 8
MIN_PARALLEL_FLOPS = 1e6

# The first layer of dense input is split by its input features (rows of W) rather
# than batch rows when W has at least FEATURE_SPLIT_MIN_WEIGHTS values and the threads'
# partial products are smaller than W, as in the Cython loop (``FEATURE_SPLIT`` in
# ``cython/_training.pyx``, which says why: threads that read all of W while another
# updates it make each of its stores wait).  Decided once per plan, from the most
# threads its batches could use (``_features_for``): the loop compiles one way.
FEATURE_SPLIT = True
FEATURE_SPLIT_MIN_WEIGHTS = 16384
# Split by features, the first layer's products take all the batch's rows on every
# thread, so such a batch splits from this many rows a thread, also in float32 (as
# MIN_ROWS_PER_THREAD in the Cython loop).
MIN_ROWS_PER_THREAD_FEATURES = 8
# Split by features, a thread leaves the columns of its features that are zero in every
# row of a batch out of the first layer's products, as the Cython loop does
# (``COLUMN_SKIP`` in ``cython/_training.pyx``; ``_loop_steps._pack_first``).  Its code
# compiles into a model's loop only where the plan's first batch has at least 1 /
# COLUMN_SKIP_SHARE of its columns zero in every row (``_skips_for``): about 1 s more of a
# cold first fit, which data without such columns (standardized inputs) does not pay.
COLUMN_SKIP = True

_split_lock = threading.Lock()  # one split call at a time; another meanwhile runs on one thread


def _min_rows(plan):
    """A thread's fewest rows of a split batch, by the plan's dtype."""
    return MIN_ROWS_PER_THREAD_F64 if plan.Ws[0].dtype == np.float64 else MIN_ROWS_PER_THREAD


def _threads_for(plan):
    """Threads to split this plan's batches across: 1 for a plan held at one thread
    (``plan.threads``) or when a batch is too small (FLOPs counted as for dense input:
    a sparse first layer's products are smaller, its update is not)."""
    # Numba's get_num_threads takes two locks: ~1 us, but ~50 after the process slept
    # (a server between requests, an epoch after a pause), so it is asked last.
    rows = plan.batch_size // (MIN_ROWS_PER_THREAD_FEATURES if _features_for(plan) else _min_rows(plan))
    if plan.threads == 1 or rows < 2:
        return 1
    widths = [plan.Ws[0].shape[0]] + [W.shape[1] for W in plan.Ws]
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    # forward, weight gradient and (all layers but the first) input gradient
    flops = 2.0 * plan.batch_size * (2 * macs + macs - widths[0] * widths[1])
    if flops < MIN_PARALLEL_FLOPS:
        return 1
    nt = min(get_num_threads(), rows)
    return max(1, nt if plan.threads == 0 else min(nt, plan.threads))


def _features_for(plan):
    """Whether this plan's loop splits the first layer by input features (once per plan)."""
    features = plan.compiled.get("numba-features")
    if features is None:
        n0, n_out = plan.Ws[0].shape
        features = (FEATURE_SPLIT and not isinstance(plan.X, SparseInput)
                    and n0 * n_out >= FEATURE_SPLIT_MIN_WEIGHTS and plan.batch_size * 2 < n0)
        if features:  # get_num_threads last (see _threads_for)
            most = min(get_num_threads(), plan.batch_size // MIN_ROWS_PER_THREAD_FEATURES)
            features = most > 1 and plan.batch_size * most < n0
        plan.compiled["numba-features"] = features
    return features


def _skips_for(plan, features):
    """Whether this plan's loop leaves a batch's zero columns out (once per plan): split by
    features, with COLUMN_SKIP, and enough columns zero in every row of its first batch."""
    skip = plan.compiled.get("numba-skip")
    if skip is None:
        skip = False
        if features and COLUMN_SKIP:
            first = plan.X[plan.perm[:plan.batch_size]]
            zero = plan.X.shape[1] - int(np.count_nonzero(first.any(axis=0)))
            skip = zero * COLUMN_SKIP_SHARE >= plan.X.shape[1]
        plan.compiled["numba-skip"] = skip
    return skip


def _compact(plan, nt, skip):
    """COLUMN_SKIP's workspace for ``nt`` threads: the kept columns (nt, span) uint32, their
    values (nt, batch_size, span) and their rows of W and dW (nt, span, n_out each), span
    the most features a thread takes; empty (span 0) where the loop does not skip
    (``_skips_for``) or COLUMN_SKIP is off (once per plan)."""
    on = skip and COLUMN_SKIP
    key = ("numba-compact", nt, on)
    compact = plan.compiled.get(key)
    if compact is None:
        dtype = plan.Ws[0].dtype
        n0, n_out = plan.Ws[0].shape
        span = -(-n0 // nt) if on else 0
        compact = plan.compiled[key] = (
            np.zeros((nt, span), np.uint32), np.zeros((nt, plan.batch_size, span), dtype),
            np.zeros((nt, span, n_out), dtype), np.zeros((nt, span, n_out), dtype))
    return compact


def _per_thread(plan, key, nt, make):
    """``make(threads)``'s array (threads first), made once per plan for the most threads
    it may use and sliced to ``nt``: a fit whose thread policy moves between one thread
    and several (a busy machine) allocates nothing when it does."""
    arr = plan.compiled.get(key)
    if arr is None or arr.shape[0] < nt:
        arr = plan.compiled[key] = make(max(nt, get_num_threads()))
    return arr[:nt]


def _partials(plan, nt, features):
    """The threads' partial products of the first layer, (nt, batch_size, n_out) where the
    loop splits it by features, else an empty array of that rank (once per plan)."""
    if not features:
        empty = plan.compiled.get("numba-partials-none")
        if empty is None:
            empty = plan.compiled["numba-partials-none"] = np.zeros((0, 0, 0), plan.Ws[0].dtype)
        return empty
    return _per_thread(plan, "numba-partials", nt,
                       lambda n: np.zeros((n, plan.batch_size, plan.Ws[0].shape[1]), plan.Ws[0].dtype))


def _sums(plan, nt):
    """The threads' loss and metric sums of a batch, a cache line per thread (once per plan)."""
    return _per_thread(plan, "numba-sums", nt, lambda n: np.zeros((n, 8), np.float64))


def train_batches(plan, first_batch, n_batches, lrs, step0):
    """See ``fastnn._kernels``: runs ``n_batches`` whole training steps (with
    denormals flushed to zero, see ``_flush_denormals``), split across threads
    when the batches are large enough (``_threads_for``, ``_train_batches``)."""
    # Numba reads the hyper-parameters' named tuple by field; all floats (the
    # flags become 0.0/1.0), so every optimizer shares one compiled type.
    hyper = OptimizerHyper(*map(float, plan.hyper))
    X = plan.X
    if isinstance(X, SparseInput):  # its batches are read in place (plan.Xb has no rows)
        X = (X.indptr, X.indices, X.data)
    if not (isinstance(lrs, np.ndarray) and lrs.dtype == np.float64 and lrs.ndim == 1
            and lrs.flags.c_contiguous):  # the compiled entry point takes exactly this type
        lrs = np.ascontiguousarray(lrs, dtype=np.float64)
    nt = _threads_for(plan)
    split = nt > 1 and _split_lock.acquire(blocking=False)
    try:
        if not split:
            nt = 1
        sums = _sums(plan, nt)
        features = _features_for(plan)
        skip = _skips_for(plan, features)
        sync = new_sync()
        acts = plan.acts
        args = [X, plan.Y, plan.SW, plan.perm, plan.batch_size, first_batch, n_batches,
                plan.Ws, plan.bs, plan.dWs, plan.dbs, acts, plan.alphas, plan.l2s,
                plan.Zs, plan.As, plan.dZs, plan.Xb, plan.Yb, plan.SWb,
                plan.loss, plan.optimizer, hyper, lrs, step0, plan.S1W, plan.S1b, plan.S2W, plan.S2b,
                0, nt, _min_rows(plan), sync, sums,
                int(acts[0]), int(acts[-1]), features, _partials(plan, nt, features),
                _compact(plan, nt, skip), skip]
        loop = _loop_for(plan, args)
        if nt == 1:
            return TrainResult(*_run(loop, args, sync))
        with blas_threads.one_thread():  # each thread's products on its own core
            pool = workers("train", nt - 1)
            futures = []
            for t in range(1, nt):
                args[_TID] = t
                futures.append(pool.submit(_run, loop, tuple(args), sync))
            args[_TID] = 0
            try:
                totals = _run(loop, args, sync)
            finally:
                wait_all(futures)
            for f in futures:
                f.result()  # a worker's exception
        return TrainResult(*totals)
    finally:
        if split:
            _split_lock.release()



def _run(loop, args, sync):
    """One thread's share of the call, with denormals flushed to zero on that thread;
    if it raises, the others are released from their barriers (``sync[ABORT]``)."""
    fp = flush_denormals()
    try:
        return loop(*args)
    except BaseException:
        sync[ABORT] = 1
        raise
    finally:
        restore_fp(fp)

"""``predict_rows`` for the Numba backend: the forward pass of a stack of Dense
layers over every row of ``X`` in one call (see the contract in
``fastnn._kernels``).

Like the Cython kernel: the rows go in blocks, each thread takes a run of
blocks and its own rows of the workspaces, every BLAS is held at one thread
for the call (``blas_threads.one_thread``, about 20 us), and each block is
scanned for NaN/inf just before its first GEMM reads it.  The threads are a
small pool of Python threads, each running the serial loop (``nogil``) on its
rows, not a ``prange`` loop: Numba's parallel compilation of that loop took
about 7 s of a first ``predict`` on an empty cache, for no measurable speed.
"""
import numpy as np
from numba import get_num_threads, typeof, types
from numba._dispatcher import compute_fingerprint

from .. import blas_threads
from ..arguments import check_predict_rows
from . import _jit
from ._math import _all_finite
from ._pool import wait_all, workers
from ._small_gemm import SMALL_ROWS
# The training loop's compile options, so that the kernels it compiled serve here too.
from ._loop_steps import _flat, _jit_loop, _jit_loop_inline, _layer_forward

# Rows per step of a thread, as in the Cython predict_rows: 256, or as many as a product
# that skips BLAS takes where that is at least 64 (AVX-512: 64-row products out of BLAS
# beat 256-row ones through it; see _small_gemm).
BLOCK_ROWS = SMALL_ROWS if SMALL_ROWS >= 64 else 256
# Forward FLOPs from which the rows are split across threads.  The split hands runs of rows
# to a pool of Python threads, about 150-200 us a call on two cores; below this the serial
# loop (BLAS on its own threads) is faster.  2-core Xeon, predict of 784-128-10, serial loop
# against split: 32 rows 71 against 247 us, 256 rows 311 / 404, 512 rows 562 / 602, 1,024
# rows (208 MFLOP) 1,053 / 983, 4,096 rows 3,945 / 3,198 (4e6 FLOPs, the limit before, sent
# every batch from 20 rows up to the split).  With 512 units the serial loop, whose BLAS
# calls then have large products to thread, was 10-18 % faster at every size up to 4,096
# rows, so no single limit is right for every width; this one removes the small-batch cost.
MIN_PARALLEL_FLOPS = 2e8


@_jit_loop_inline
def _block(X, Ws, bs, acts, alphas, Zs, As, out, start, block, hidden, last):
    """Rows start .. start + block - 1 of X through every layer on the workspaces'
    first rows; the last layer writes into out.  False if X holds NaN/inf there.
    ``hidden``/``last``: the activation codes, as in ``_training._forward``."""
    stop = min(start + block, X.shape[0])
    m = stop - start
    inp = X[start:stop]
    if not _all_finite(_flat(inp)):
        return False
    L = len(Ws)
    held = block < 0  # False, as a run-time value: the training loop's kernels, not a second copy
    for l in range(L - 1):
        a = As[l][:m]
        _layer_forward(inp, Ws[l], bs[l], hidden, acts[l], alphas[l], Zs[l][:m], a, held)
        inp = a
    _layer_forward(inp, Ws[L - 1], bs[L - 1], last, acts[L - 1], alphas[L - 1], Zs[L - 1][:m], out[start:stop],
                   held)
    return True


@_jit_loop
def _serial(X, Ws, bs, acts, alphas, Zs, As, out, block, hidden, last):
    """Every row of X, ``block`` rows at a time (the workspaces hold ``block`` rows)."""
    finite = True
    for start in range(0, X.shape[0], block):
        finite &= _block(X, Ws, bs, acts, alphas, Zs, As, out, start, block, hidden, last)
    return finite


def _split(loop, args, nt, block, hidden, last):
    """``loop`` (``_serial``) on ``nt`` runs of whole blocks of rows at once: run
    ``t`` on workspace rows ``t * block ..``, run 0 in the calling thread."""
    X, Ws, bs, acts, alphas, Zs, As, out = args
    n = X.shape[0]
    n_blocks = -(-n // block)
    per = -(-n_blocks // nt) * block  # rows per run

    def run(t):
        a, b = t * per, min(n, (t + 1) * per)
        ws = slice(t * block, (t + 1) * block)
        return loop(X[a:b], Ws, bs, acts, alphas, tuple(Z[ws] for Z in Zs), tuple(A[ws] for A in As),
                    out[a:b], block, hidden, last)

    runs = [t for t in range(1, nt) if t * per < n]
    pool = workers("predict", len(runs))
    futures = [pool.submit(run, t) for t in runs]
    try:
        finite = run(0)
    finally:
        wait_all(futures)
    for f in futures:
        finite &= f.result()
    return finite


_entries = {}  # (loop, argument types, codes) -> the loop compiled with the codes as constants


def _specialized(loop, args, acts):
    """``loop`` compiled for these arguments' types with the activation codes as
    compile-time constants (see ``_training._loop_for``): only the model's own
    activations compile.  Looked up by Numba's own type fingerprint of ``args``."""
    codes = tuple(int(a) for a in acts)
    if not _jit.SPECIALIZE:
        return loop, codes[0], codes[-1]  # Numba's dispatcher: run-time codes
    shared = len(codes) == 1 or len(set(codes[:-1])) == 1
    key = (loop, compute_fingerprint(args), codes if not shared else (codes[0], codes[-1]), shared)
    entry = _entries.get(key)
    if entry is None:
        sig = [typeof(a) for a in args]
        sig.append(types.literal(codes[0]) if shared else types.int64)
        sig.append(types.literal(codes[-1]))
        entry = _entries[key] = loop.compile(tuple(sig))
    return entry, codes[0], codes[-1]


def predict_rows(X, Ws, bs, acts, alphas, Zs, As, out, sparse_below=0.0):
    """See ``fastnn._kernels``: out := the last layer's activations for every row of X;
    returns False (out unspecified) when X holds a NaN or an infinity.  Every value of X
    is read whatever ``sparse_below`` says (this backend has no non-zero path in predict:
    ``fastnn._first_layer.PREDICT_CROSSOVERS``)."""
    rows = check_predict_rows(X, Ws, bs, acts, alphas, Zs, As, out)
    n = X.shape[0]
    if n == 0:
        return True
    widths = [X.shape[1]] + [W.shape[1] for W in Ws]
    flops = 2.0 * n * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    nt = max(1, min(get_num_threads(), rows // 16, (n + 15) // 16))
    args = (X, tuple(Ws), tuple(bs), np.asarray(acts, np.int64), np.asarray(alphas, np.float64),
            tuple(Zs), tuple(As), out)
    if nt > 1 and flops >= MIN_PARALLEL_FLOPS:
        block = min(BLOCK_ROWS, rows // nt)
        loop, hidden, last = _specialized(_serial, args + (block,), acts)
        with blas_threads.one_thread():
            return bool(_split(loop, args, nt, block, hidden, last))
    args += (min(4096, rows),)
    loop, hidden, last = _specialized(_serial, args, acts)
    return bool(loop(*args, hidden, last))

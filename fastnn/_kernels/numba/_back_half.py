"""What the second process of ``_compile_ahead`` runs: ``_back_half``, the calls of
the training loop's back half with the loop's own argument types, compiled for the
sake of the kernels it calls and never run.

Keep its calls the loop's: ``tests/test_numba_compile_ahead.py`` checks that every
kernel it compiles is one the loop compiles, and that the loop then finds them in
the disk cache.
"""
import os
import pickle
import sys

from numba import int64, njit
from numba.core import caching

from ._loop_steps import _LOOP_OPTIONS, _batch_input_view, _flat, _pack_first, gather_rows
from ._losses import loss_sums, output_delta
from ._optimizers import apply_rule
from ._sync import share
from ._training import _backward, _batch_statistics, _batch_weight_sum, flush_denormals, restore_fp


@njit(nogil=True, **_LOOP_OPTIONS)
def _back_half(X, Y, SW, perm, batch_size, first_batch, n_batches,
               Ws, bs, dWs, dbs, acts, alphas, l2s,
               Zs, As, dZs, Xb, Yb, SWb,
               loss, opt, hyper, lrs, step0, S1W, S1b, S2W, S2b,
               tid, nt, min_rows, sync, sums, hidden, out, features, partials, compact, skip):
    """The calls of ``_training._train_batches``'s back half (same arguments), the
    update first and the targets' gather last: compiled, never run."""
    L = len(Ws)
    j = first_batch
    lr = lrs[j]
    step = step0 + j + 1
    for l in range(L):
        n_in, n_out = Ws[l].shape
        r0, r1 = share(n_in, tid, nt, 1)
        a, b = r0 * n_out, r1 * n_out
        apply_rule(opt, _flat(Ws[l])[a:b], _flat(dWs[l])[a:b], lr, hyper, step,
                   _flat(S1W[l])[a:b], _flat(S2W[l])[a:b])
        c0, c1 = share(n_out, tid, nt, 1)
        apply_rule(opt, bs[l][c0:c1], dbs[l][c0:c1], lr, hyper, step, S1b[l][c0:c1], S2b[l][c0:c1])
    start = j * batch_size
    stop = min(start + batch_size, perm.shape[0])
    m = stop - start
    idx = perm[start:stop]
    lo, hi = share(m, tid, nt, 1)
    f0, f1 = share(Ws[0].shape[0], tid, nt, 1)
    own = idx[lo:hi]
    kept = -1
    cols, xc, wc, dwc = compact[0][tid], compact[1][tid], compact[2][tid], compact[3][tid]
    if features:
        kept = _pack_first(skip, j < n_batches, Xb[:m], f0, f1, Ws[0], cols, xc, wc)
    xall = _batch_input_view(X, idx, Xb[:m])
    _backward(xall, Ws, dWs, dbs, acts, alphas, l2s, Zs, As, dZs, m, lo, hi, tid, nt, sync, hidden,
              skip, kept, cols, xc, wc, dwc)
    yb = Yb[lo:hi]
    A = As[L - 1][lo:hi]
    if SW is None:
        output_delta(loss, out, alphas[L - 1], Zs[L - 1][lo:hi], A, yb, None, m, 0.0, dZs[L - 1][lo:hi])
    else:
        output_delta(loss, out, alphas[L - 1], Zs[L - 1][lo:hi], A, yb, SWb[lo:hi], m,
                     _batch_weight_sum(SW, idx), dZs[L - 1][lo:hi])
    _batch_statistics(A, yb)
    if SW is None:
        loss_sums(loss, A, yb, None)
    else:
        wb = SWb[lo:hi]
        gather_rows(SW, own, wb)
        loss_sums(loss, A, yb, wb)
    gather_rows(Y, own, yb)


def _data_names_apart():
    """Name this process's cache data files apart from the first process's
    (``<function>.<n>-ahead.nbc``, where Numba writes ``<function>.<n>.nbc``): two
    processes saving new signatures of one function at once then never write one
    file for two signatures (see ``_compile_ahead``).  False where this Numba has
    no such method to wrap."""
    numbered = getattr(caching.IndexDataCacheFile, "_data_name", None)
    if numbered is None:
        return False

    def _data_name(self, number):
        stem, ext = os.path.splitext(numbered(self, number))
        return f"{stem}-ahead{ext}"

    caching.IndexDataCacheFile._data_name = _data_name
    return True


def _main():
    """Compile ``_back_half`` for the loop's argument types on stdin, and the loop's
    helpers that ``train_batches`` calls after it."""
    try:
        os.nice(10)  # behind the process it helps, and anything else that starts meanwhile
    except (AttributeError, OSError):
        pass
    sig = pickle.loads(sys.stdin.buffer.read())
    if not _data_names_apart():
        return
    flush_denormals.compile(())
    restore_fp.compile((int64,))
    _back_half.compile(sig)


if __name__ == "__main__":
    _main()

"""``predict_rows``: the forward pass of a ``Dense`` stack over every row (NumPy reference)."""
from __future__ import annotations

import numpy as np

from ..arguments import check_predict_rows
from ._dense import dense_forward


def predict_rows(X, Ws, bs, acts, alphas, Zs, As, out, sparse_below=0.0):
    """See ``fastnn._kernels``; every value of X is read (``sparse_below`` is a permission)."""
    block = check_predict_rows(X, Ws, bs, acts, alphas, Zs, As, out)
    for start in range(0, X.shape[0], block):
        stop = min(start + block, X.shape[0])
        m = stop - start
        A = X[start:stop]
        if not (np.isfinite(A.min()) and np.isfinite(A.max())):  # NaN propagates; no temporary
            return False
        for l in range(len(Ws)):
            dense_forward(A, Ws[l], bs[l] if bs[l].size else None, acts[l], alphas[l], Zs[l][:m], As[l][:m])
            A = As[l][:m]
        out[start:stop] = A
    return True

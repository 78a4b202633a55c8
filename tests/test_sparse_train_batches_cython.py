"""The Cython backend's ``train_batches`` on a plan whose ``X`` is a ``SparseInput``:
the first layer reads the batch's CSR rows in place.  It must follow the NumPy
backend's ``train_batches`` (the reference step, which reads sparse batches through
``sparse_dense_forward``/``sparse_dense_backward``) and its own run on the same data
densified: weights, optimizer state and ``TrainResult``, on one and two threads.

Plans are built the way ``fit`` builds them (``make_plan``).  Tolerances as in
``tests/test_training_paths.py``: float64 to 1e-9, float32 to 2e-4.
"""
import numpy as np
import pytest

import fastnn as fn
from fastnn import _validation as check
from fastnn._kernels.sparse import SparseInput
from fastnn._training import make_plan

sp = pytest.importorskip("scipy.sparse")
cy = pytest.importorskip("fastnn._kernels.cython")
from fastnn._kernels.cython import _blas, _training  # noqa: E402

TOL = {"float32": 2e-4, "float64": 1e-9}
N, D, K = 203, 60, 3


def data(targets, seed=0):
    """A CSR matrix (N, D) with an empty row, its targets (labels or one-hot) and
    sample weights."""
    rng = np.random.default_rng(seed)
    X = sp.random(N, D, density=0.1, format="csr", random_state=seed, dtype=np.float64)
    X.data *= 3
    X = sp.csr_matrix(X.multiply(np.arange(N)[:, None] != 5))  # row 5 is empty
    labels = (np.asarray(X[:, :10].sum(axis=1)).ravel() + rng.normal(scale=0.1, size=N) > 0.5).astype(np.int64)
    labels += np.asarray(X[:, 10:20].sum(axis=1)).ravel() > 0.5
    y = labels if targets == "labels" else np.eye(K)[labels]
    w = rng.uniform(0.5, 2.0, N)
    return X, y, w


OPTIMIZERS = {
    "adam": lambda: fn.optimizers.Adam(0.01),
    "momentum": lambda: fn.optimizers.SGD(0.05, momentum=0.9),
}
MORE_OPTIMIZERS = {
    "sgd": lambda: fn.optimizers.SGD(0.05),
    "rmsprop": lambda: fn.optimizers.RMSprop(0.01),
}


class Run:
    """A model and its TrainingPlan on (X, y, w), built as ``fit`` builds them."""

    def __init__(self, backend, dtype, opt, targets, X, y, w, batch_size, layers=None,
                 l2s=(1e-3, 2e-3, 0.0)):
        n, d = X.shape
        loss = "sparse_categorical_crossentropy" if targets == "labels" else "categorical_crossentropy"
        layers = layers() if layers else [fn.Dense(24, activation="relu", input_dim=d),
                                          fn.Dense(8, activation="tanh"),
                                          fn.Dense(K, activation="softmax")]
        self.model = fn.Sequential(layers, backend=backend, dtype=dtype, seed=0)
        self.model.compile(optimizer={**OPTIMIZERS, **MORE_OPTIMIZERS}[opt](), loss=loss)
        model, npdtype = self.model, np.dtype(dtype)
        Xc = check.check_X(X, d, npdtype, accept_sparse=True)
        model.build(d)
        model.optimizer.build(model._params)
        for layer, l2 in zip(model.layers, l2s):
            layer.l2 = l2
        yc = check.check_y(y, model.loss, model.output_dim, n, npdtype)
        wc = check.check_sample_weight(w, n, npdtype)
        self.perm = np.arange(n, dtype=np.int64)
        self.plan = make_plan(model, Xc, yc, wc, batch_size, self.perm, model._workspace(batch_size))
        self.results = []

    def train(self, first, count):
        """``train_batches`` for batches first .. first + count - 1, as ``CompiledLoop`` calls it."""
        opt = self.model.optimizer
        lrs = opt.learning_rates(np.empty(count, np.float64))
        result = self.model._kernels.train_batches(self.plan, first, count, lrs, opt.iterations)
        assert result.batches == count
        opt.iterations += result.batches
        self.results.append(result)

    def epochs(self, seed=7):
        """Two epochs: the first (in order) in two calls, the second shuffled."""
        steps = self.plan.n_batches
        self.train(0, 2)
        self.train(2, steps - 2)
        np.random.default_rng(seed).shuffle(self.perm)
        self.train(0, steps)
        return self


def assert_same(run, ref, dtype):
    tol = TOL[dtype]
    for a, b in zip(run.model.get_weights(), ref.model.get_weights()):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10)
    assert run.model.optimizer.iterations == ref.model.optimizer.iterations
    for a, b in zip(run.model.optimizer.get_state(), ref.model.optimizer.get_state()):
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10)
    for r, e in zip(run.results, ref.results):
        assert r.batches == e.batches
        np.testing.assert_allclose(r[1:], e[1:], rtol=tol, atol=tol)


class threads:
    """fastnn.set_num_threads(n) for the block (the split forced even for this small
    net, whatever else runs on the machine); the previous count, threshold and run
    queue check are restored afterwards."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.before = fn.get_num_threads()
        fn.set_num_threads(self.n)
        self.flops = _training._set_min_parallel_flops(0.0)
        self.queue = _training._set_run_queue_answer(False)
        _training.thread_statistics(reset=True)
        return self

    def __exit__(self, *exc):
        self.stats = _training.thread_statistics(reset=True)
        _training._set_min_parallel_flops(self.flops)
        _training._set_run_queue_answer(self.queue)
        fn.set_num_threads(self.before)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [20, 64])  # 203 rows: last batches of 3 and 11 rows
@pytest.mark.parametrize("targets", ["labels", "one-hot"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_plan_follows_numpy_and_dense(dtype, opt, targets, batch_size, n_threads):
    X, y, w = data(targets)
    runs = {}
    for name, backend, Xi in (("numpy", "numpy", X), ("dense", "cython", X.toarray()), ("sparse", "cython", X)):
        run = Run(backend, dtype, opt, targets, Xi, y, w, batch_size)
        assert isinstance(run.plan.X, SparseInput) == (Xi is X)
        if name == "sparse":
            assert run.plan.Xb.shape[0] == 0
        with threads(n_threads) as ctx:
            runs[name] = run.epochs()
    assert_same(runs["sparse"], runs["numpy"], dtype)
    assert_same(runs["sparse"], runs["dense"], dtype)
    if n_threads == 2 and batch_size == 64 and _blas.openmp_enabled():
        # 32 rows a thread (the last batch: 6 and 5), under a contention window
        assert ctx.stats["parallel_batches"] == 2 * runs["sparse"].plan.n_batches


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_threads_match_one_thread(dtype):
    """Layer 0's forward split by batch rows and its weight gradient by output columns
    give the one-thread result."""
    X, y, _ = data("labels")
    runs = []
    for n in (1, 2):
        run = Run("cython", dtype, "adam", "labels", X, y, None, 64)  # and no sample weights
        with threads(n):
            runs.append(run.epochs())
    tol = 2e-4 if dtype == "float32" else 1e-10  # BLAS blocks the other layers' rows differently
    for a, b in zip(runs[1].model.get_weights() + runs[1].model.optimizer.get_state(),
                    runs[0].model.get_weights() + runs[0].model.optimizer.get_state()):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_single_layer_without_bias(n_threads):
    """The sparse layer is also the output layer, and has no bias."""
    X, y, w = data("one-hot")
    runs = {}
    for name, backend in (("numpy", "numpy"), ("sparse", "cython")):
        run = Run(backend, "float64", "momentum", "one-hot", X, y, w, 64,
                  layers=lambda: [fn.Dense(K, activation="softmax", use_bias=False, input_dim=D)])
        with threads(n_threads):
            runs[name] = run.epochs()
    assert_same(runs["sparse"], runs["numpy"], "float64")


@pytest.mark.parametrize("n_threads", [1, 2])
# d features, density, units: dW from the batch's transpose, the same with a row of W
# longer than the update's buffer, and the scatter-add of a layer much wider than a batch
@pytest.mark.parametrize("d,density,units", [(300, 0.05, 24), (300, 0.05, 9000), (20_000, 0.001, 24)])
@pytest.mark.parametrize("l2", [0.0, 1e-3])
@pytest.mark.parametrize("opt", ["adam", "sgd", "rmsprop"])
def test_rows_a_batch_does_not_touch(opt, l2, d, density, units, n_threads):
    """Layer 0's dW is written only at the rows of the batch's features, and the other
    rows' gradient (l2 W, or zero) is formed inside the update, blocks of rows at a
    time: weights, optimizer state and, after each call, dW (the last batch's gradient)
    equal the reference's, with half of the features absent from every batch but the
    first and several blocks per thread."""
    n, batch = 120, 40
    rng = np.random.default_rng(3)
    X = sp.random(n, d, density=density, format="lil", random_state=3, dtype=np.float64)
    X[40:, d // 2:] = 0  # the second half of the features only in the first batch's rows
    X = sp.csr_matrix(X)
    most = int(np.diff(X.indptr).max())
    assert _training._first_layer_transposes(d, most * batch) == (d == 300)
    y = rng.integers(0, K, n)
    runs = {}
    for backend in ("numpy", "cython"):
        run = Run(backend, "float64", opt, "labels", X, y, None, batch,
                  layers=lambda: [fn.Dense(units, activation="relu", input_dim=d),
                                  fn.Dense(K, activation="softmax")], l2s=(l2, 0.0))
        gradients = []
        with threads(n_threads):
            for first, count in ((0, 1), (1, 2), (0, 3)):
                run.train(first, count)
                gradients.append(run.plan.dWs[0].copy())
        runs[backend] = (run, gradients)
    (run, gradients), (ref, ref_gradients) = runs["cython"], runs["numpy"]
    assert_same(run, ref, "float64")
    for call, (g, e) in enumerate(zip(gradients, ref_gradients)):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
        if l2 == 0 and call > 0:
            assert not e[d // 2:].any()  # the call's last batch left them untouched


# -------------------------------------------------------------- bad plans
def sparse_run(batch_size=64):
    X, y, w = data("labels")
    return Run("cython", "float64", "adam", "labels", X, y, w, batch_size)


def replace(run, **arrays):
    """A new SparseInput in the plan with some of its arrays replaced."""
    X = SparseInput(run.plan.X.matrix)
    for key, value in arrays.items():
        setattr(X, key, value)
    run.plan.X = X


@pytest.mark.parametrize("what,error,match", [
    ("indptr-length", ValueError, "X.indptr has 203 entries, expected 204"),
    ("indptr-dtype", TypeError, "X.indptr has dtype int32, expected int64"),
    ("indices-dtype", TypeError, "X.indices has dtype int64, expected int32"),
    ("data-int", TypeError, "X.data must be float32 or float64, got int64"),
    ("data-dtype", TypeError, "Ws\\[0\\] has dtype float64, expected float32 like X"),
    ("data-length", ValueError, "expected indptr from 0 to nnz"),
    ("data-strided", ValueError, "X.data must be C-contiguous"),
    ("shape", ValueError, "X has shape"),
    ("W0", ValueError, "Ws\\[0\\] has shape"),
])
def test_bad_csr_arrays_raise_before_training(what, error, match):
    run = sparse_run()
    X = run.plan.X
    if what == "indptr-length":
        replace(run, indptr=X.indptr[:-1].copy())
    elif what == "indptr-dtype":
        replace(run, indptr=X.indptr.astype(np.int32))
    elif what == "indices-dtype":
        replace(run, indices=X.indices.astype(np.int64))
    elif what == "data-int":
        replace(run, data=X.data.astype(np.int64))
    elif what == "data-dtype":
        replace(run, data=X.data.astype(np.float32))
    elif what == "data-length":
        replace(run, data=X.data[:-1].copy())
    elif what == "data-strided":
        replace(run, data=np.repeat(X.data, 2)[::2])
    elif what == "shape":
        replace(run, shape=(N + 1, D))
    elif what == "W0":
        replace(run, shape=(N, D + 1))
    before = [W.copy() for W in run.plan.Ws]
    with pytest.raises(error, match=match):
        run.train(0, 2)
    for W, W0 in zip(run.plan.Ws, before):
        np.testing.assert_array_equal(W, W0)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("what", ["row", "negative-row", "column", "indptr"])
def test_bad_rows_and_entries_stop_before_they_are_read(what, n_threads):
    """Row numbers and CSR entries are checked per batch on the thread that reads them;
    the batches before the bad one stay applied."""
    run = sparse_run()
    X = run.plan.X
    pos = 64 + 40  # batch 1, second thread's half on two threads
    r = int(run.perm[pos])
    while X.indptr[r + 1] == X.indptr[r]:  # a row with entries
        pos += 1
        r = int(run.perm[pos])
    if what == "row":
        run.perm[pos] = 10 ** 6
        error, match = IndexError, "row index 1000000"
    elif what == "negative-row":
        run.perm[pos] = -1  # gathered rows may count from the end; rows read in place may not
        error, match = IndexError, "row index -1"
    elif what == "column":
        indices = X.indices.copy()
        indices[X.indptr[r]] = 10 ** 6
        replace(run, indices=indices)
        error, match = IndexError, f"X.indices\\[{X.indptr[r]}\\] = 1000000 is out of bounds"
    else:
        indptr = X.indptr.copy()
        indptr[r + 1] = indptr[-1] + 1000
        replace(run, indptr=indptr)
        error, match = ValueError, (f"not a CSR index pointer at row {r}: "
                                    f"indptr\\[{r}:{r + 2}\\] = \\[{indptr[r]}, {indptr[r + 1]}\\]")
    before = run.plan.Ws[0].copy()
    with threads(n_threads), pytest.raises(error, match=match):
        run.train(0, 3)
    assert not np.array_equal(run.plan.Ws[0], before)  # batch 0 was applied


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_batch_larger_than_the_calls_workspace_stops_cleanly(n_threads):
    """The batch transpose's workspace is sized from X's rows when a call begins; a batch
    that holds more (X's arrays changed meanwhile, simulated by a smaller workspace) stops
    the call with a RuntimeError before it is written, the batches before it applied."""
    run = sparse_run(batch_size=20)
    counts = np.diff(run.plan.X.indptr)[run.perm]
    totals = [int(counts[i:i + 20].sum()) for i in range(0, N, 20)]
    first = next(b for b in range(len(totals) - 1) if totals[b + 1] > totals[b])
    before = run.plan.Ws[0].copy()
    old = _training._set_transpose_capacity(totals[first])  # batch `first` fits, the next does not
    try:
        with threads(n_threads), pytest.raises(RuntimeError, match="X's CSR arrays changed while it trained"):
            run.train(first, 2)
    finally:
        _training._set_transpose_capacity(old)
    assert not np.array_equal(run.plan.Ws[0], before)  # batch `first` was applied
    assert np.isfinite(run.plan.Ws[0]).all()
    run.train(0, 3)  # the next call sizes its workspace again
    assert np.isfinite(run.plan.Ws[0]).all()


@pytest.mark.parametrize("nt", [1, 2, 3, 5])
@pytest.mark.parametrize("case", ["mnist-like", "one-heavy-column", "empty", "fewer-columns-than-threads"])
def test_dw_rows_split_by_stored_values(case, nt):
    """Layer 0's rows of dW from the transpose go to the threads in contiguous ranges of
    about equal work (a row's values plus one for its fill): they cover every row once,
    and each share is within one row's work of an equal split."""
    rng = np.random.default_rng(nt)
    n0 = {"fewer-columns-than-threads": 2}.get(case, 50)
    counts = rng.integers(0, 6, (nt, n0))
    if case == "mnist-like":
        counts[:, n0 // 2:] *= 2  # the second half holds more values
    elif case == "one-heavy-column":
        counts[:, 7] = 1000
    elif case == "empty":
        counts[:] = 0
    parts = _training._values_parts(counts)
    assert parts[0][0] == 0 and parts[-1][1] == n0
    assert all(hi >= lo for lo, hi in parts)
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # contiguous, no overlap
    work = counts.sum(0) + (counts.sum(0) > 0)
    shares = [work[lo:hi].sum() for lo, hi in parts]
    assert sum(shares) == work.sum()
    assert max(shares) <= work.sum() / nt + work.max()

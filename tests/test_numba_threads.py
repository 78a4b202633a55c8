"""The Numba training loop split across threads (``numba/_training.py``).

``train_batches`` runs its compiled loop on several Python threads at once,
meeting at a barrier (``numba/_sync.py``): each thread runs its rows of the
batch forward, the weight gradients are split by rows of dW (``_blas.py``) and
the update by the same rows.  The gradients must not depend on the thread
count beyond the last bits of BLAS's blocking, a thread that raises must not
leave the others waiting, and two fits at once must both train.

The split is forced here (``_force_split``) on models far below the sizes
where it pays, so that the tests run on any machine, even on one core.
"""
import threading

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import fastnn as fn  # noqa: E402
from fastnn import _training as training  # noqa: E402
from fastnn._kernels.numba import _blas, _sync  # noqa: E402
from fastnn._kernels.numba import _training as NT  # noqa: E402

TOL = {"float32": 2e-5, "float64": 1e-10}
OPTIMIZERS = {
    "adam": lambda: fn.optimizers.Adam(0.01),
    "nesterov": lambda: fn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: fn.optimizers.RMSprop(0.005),
    "sgd": lambda: fn.optimizers.SGD(0.1),
}


class _ThreadsAlways(training.ThreadChoice):
    """``fit``'s thread policy never holding the split at one thread (on a busy
    machine, a CI runner, it would, and the split would not run)."""
    setting = "threads"


def _force_split(monkeypatch, threads):
    """Split every batch of at least 4 rows per thread across ``threads`` threads,
    however busy the machine."""
    monkeypatch.setattr(NT, "get_num_threads", lambda: threads)
    monkeypatch.setattr(training, "ThreadChoice", _ThreadsAlways)
    monkeypatch.setattr(NT, "MIN_PARALLEL_FLOPS", 0.0)
    monkeypatch.setattr(NT, "MIN_ROWS_PER_THREAD", 4)
    monkeypatch.setattr(NT, "MIN_ROWS_PER_THREAD_F64", 4)


def _record_threads(monkeypatch):
    """The thread count of every train_batches call, in a list."""
    counts = []
    threads_for = NT._threads_for

    def recorded(plan):
        n = threads_for(plan)
        counts.append(n)
        return n

    monkeypatch.setattr(NT, "_threads_for", recorded)
    return counts


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((203, 12)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    w = rng.uniform(0.5, 2.0, 203).astype(dtype)
    return X, y, w


def _model(dtype, opt):
    layers = [fn.Dense(9, activation="relu", input_dim=12), fn.Dense(7, activation="tanh", use_bias=False),
              fn.Dense(3, activation="softmax")]
    layers[0].l2 = 0.01
    model = fn.Sequential(layers, backend="numba", dtype=dtype, seed=3)
    model.compile(optimizer=OPTIMIZERS[opt](), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit(dtype, opt, weighted, seed=0):
    X, y, w = _data(dtype, seed)
    model = _model(dtype, opt)
    # batches of 40 rows, the last of 3 (too few to split: one thread runs it)
    history = model.fit(X, y, epochs=2, batch_size=40, verbose=0, sample_weight=w if weighted else None)
    return model.get_weights(), history.history


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [2, 3])
def test_a_sparse_first_layer_split_across_threads_trains_as_on_one_thread(dtype, threads, monkeypatch):
    """CSR input: each thread runs its rows forward and adds the batch's stored values
    of its rows of the first layer's dW (in batch order: the same sums as one thread)."""
    sp = pytest.importorskip("scipy.sparse")
    X, y, w = _data(dtype)
    X[np.abs(X) < 0.8] = 0  # about 40 % stored
    X = sp.csr_matrix(X)
    counts = _record_threads(monkeypatch)
    runs = []
    for split in (False, True):
        with monkeypatch.context() as m:
            if split:
                _force_split(m, threads)
            else:
                m.setattr(NT, "MIN_PARALLEL_FLOPS", float("inf"))
            model = _model(dtype, "adam")
            history = model.fit(X, y, epochs=2, batch_size=40, verbose=0, sample_weight=w)
            assert history.params["first_layer"] == "sparse"
            runs.append((model.get_weights(), history.history))
    assert set(counts) == {1, threads}
    (weights_one, history_one), (weights_split, history_split) = runs
    for a, b in zip(weights_one, weights_split):
        np.testing.assert_allclose(b, a, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(history_split["loss"], history_one["loss"], rtol=TOL[dtype])


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [2, 3])
def test_batches_split_across_threads_train_as_on_one_thread(dtype, opt, weighted, threads, monkeypatch):
    counts = _record_threads(monkeypatch)
    with monkeypatch.context() as one:
        one.setattr(NT, "MIN_PARALLEL_FLOPS", float("inf"))
        weights_one, history_one = _fit(dtype, opt, weighted)
    assert set(counts) == {1}
    counts.clear()
    _force_split(monkeypatch, threads)
    weights_split, history_split = _fit(dtype, opt, weighted)
    assert set(counts) == {threads}
    tol = TOL[dtype]
    for a, b in zip(weights_one, weights_split):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    np.testing.assert_allclose(history_split["loss"], history_one["loss"], rtol=tol)
    # an output within the tolerance of a tie may flip one row's prediction
    np.testing.assert_allclose(history_split["accuracy"], history_one["accuracy"], atol=1.01 / 203)


def _wide_data(dtype, seed=0):
    """300 features: a first layer of 300 x 64 weights, more than the threads' batch rows."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((203, 300)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y, rng.uniform(0.5, 2.0, 203).astype(dtype)


def _wide_model(dtype):
    layers = [fn.Dense(64, activation="relu", input_dim=300), fn.Dense(3, activation="softmax")]
    layers[0].l2 = 0.01
    model = fn.Sequential(layers, backend="numba", dtype=dtype, seed=3)
    model.compile(optimizer=OPTIMIZERS["adam"](), loss="sparse_categorical_crossentropy")
    return model


def _assert_trained_alike(runs, dtype):
    """Every run's (weights, loss history) equals the first's within TOL."""
    (weights_one, loss_one), *others = runs
    for weights, loss in others:
        for a, b in zip(weights_one, weights):
            np.testing.assert_allclose(b, a, rtol=TOL[dtype], atol=TOL[dtype])
        np.testing.assert_allclose(loss, loss_one, rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [2, 3])
def test_a_wide_first_layer_split_by_input_features_trains_as_on_one_thread(dtype, threads, monkeypatch):
    """A first layer with more inputs than the threads' batch rows is split by its input
    features (each thread's rows of W; their partial products added up after a barrier),
    and trains as on one thread, as the split by batch rows does."""
    X, y, w = _wide_data(dtype)
    features = []
    features_for = NT._features_for
    monkeypatch.setattr(NT, "_features_for", lambda plan: features.append(features_for(plan)) or features[-1])
    counts = _record_threads(monkeypatch)
    runs = []
    # one thread; split by features; split by batch rows; a plan split by features that
    # runs on one thread (fit's thread policy on a busy machine)
    for split, by_features in ((False, False), (True, True), (True, False), (False, True)):
        with monkeypatch.context() as m:
            if split:
                _force_split(m, threads)
            else:
                m.setattr(NT, "get_num_threads", lambda: threads)
                m.setattr(NT, "MIN_PARALLEL_FLOPS", float("inf"))
            m.setattr(NT, "FEATURE_SPLIT", by_features)
            features.clear()
            counts.clear()
            model = _wide_model(dtype)
            history = model.fit(X, y, epochs=2, batch_size=40, verbose=0, sample_weight=w)
            assert features and set(features) == {by_features}
            assert set(counts) == {threads if split else 1}
            runs.append((model.get_weights(), history.history["loss"]))
    _assert_trained_alike(runs, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("zeros", ["some columns", "one thread's every column"])
def test_columns_zero_in_a_batch_are_left_out_and_train_as_on_one_thread(dtype, zeros, monkeypatch):
    """Split by features, a thread packs the columns of its batch that are not zero in
    every row (and their rows of W) and multiplies only those; the other rows of dW are
    l2 W (l2 = 0.01 here).  The same training as reading every column and as one
    thread, on two threads and on one (a plan split by features on a busy machine),
    also when a thread keeps no column at all."""
    X, y, w = _wide_data(dtype)
    if zeros == "some columns":
        X[:, ::3] = 0.0
        X[np.random.default_rng(6).random(X.shape) < 0.9] = 0.0
        X[:, 7] = -0.0
    else:
        X[:, :160] = 0.0  # thread 0's columns (0:150)
    y = (X.sum(axis=1) > 0).astype(np.int64)
    compact = []
    compact_for = NT._compact
    monkeypatch.setattr(NT, "_compact", lambda plan, nt, f: compact.append(compact_for(plan, nt, f)) or compact[-1])
    runs = []
    for split, skip, by_features in ((False, True, False), (True, True, True), (True, False, True),
                                     (False, True, True)):
        with monkeypatch.context() as m:
            if split:
                _force_split(m, 2)
            else:
                m.setattr(NT, "get_num_threads", lambda: 2)
                m.setattr(NT, "MIN_PARALLEL_FLOPS", float("inf"))
            m.setattr(NT, "FEATURE_SPLIT", by_features)
            m.setattr(NT, "COLUMN_SKIP", skip)
            compact.clear()
            model = _wide_model(dtype)
            history = model.fit(X, y, epochs=2, batch_size=40, verbose=0, sample_weight=w)
            assert compact and all((c[0].shape[1] > 0) == (skip and by_features) for c in compact)
            runs.append((model.get_weights(), history.history["loss"]))
    _assert_trained_alike(runs, dtype)


def test_a_bad_row_in_a_batch_split_by_features_raises_and_releases_the_others(monkeypatch):
    """Split by features, every thread gathers its features of every row: a bad row
    index raises IndexError from the call, and the next call runs."""
    _force_split(monkeypatch, 2)
    X, y, _ = _wide_data("float64")
    model = _wide_model("float64")
    model.fit(X[:40], y[:40], epochs=1, batch_size=40, verbose=0)
    plan = training.CompiledLoop(model, X, y, None, 40, False, np.random.default_rng(0)).plan
    assert NT._features_for(plan)
    lrs = np.full(5, 0.01)
    plan.perm[25] = 10 ** 6
    with pytest.raises(IndexError):
        NT.train_batches(plan, 0, 3, lrs, 0)
    plan.perm[25] = 25
    result = NT.train_batches(plan, 0, 5, lrs, 0)
    assert result.batches == 5 and np.isfinite(result.loss_sum)


def _plan(dtype="float64", batch_size=40):
    X, y, _ = _data(dtype)
    model = _model(dtype, "adam")
    model.fit(X[:40], y[:40], epochs=1, batch_size=batch_size, verbose=0)
    loop = training.CompiledLoop(model, X, y, None, batch_size, False, np.random.default_rng(0))
    return model, loop.plan


@pytest.mark.parametrize("bad_row", [5, 20, 35], ids=["thread-0", "thread-1", "thread-2"])
def test_a_thread_that_raises_releases_the_others(bad_row, monkeypatch):
    """A bad row index in one thread's share of a batch raises IndexError from the
    call; the threads waiting for it at a barrier are released, not left spinning,
    and the next call runs on the same pool."""
    _force_split(monkeypatch, 3)
    model, plan = _plan()
    lrs = np.full(5, 0.01)
    plan.perm[bad_row] = 10 ** 6  # batch 0's rows: 0-13 thread 0, 14-27 thread 1, 28-39 thread 2
    with pytest.raises(IndexError):
        NT.train_batches(plan, 0, 3, lrs, 0)
    plan.perm[bad_row] = bad_row
    result = NT.train_batches(plan, 0, 5, lrs, 0)
    assert result.batches == 5 and np.isfinite(result.loss_sum)


def test_two_fits_at_once_both_train(monkeypatch):
    """One split call at a time: a fit that finds the threads taken runs its call
    on one thread, with the same results."""
    _force_split(monkeypatch, 2)
    alone = _fit("float64", "adam", True)
    results = {}
    start = threading.Barrier(2)

    def fit(seed):
        start.wait()
        results[seed] = _fit("float64", "adam", True, seed)

    threads = [threading.Thread(target=fit, args=(seed,)) for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for a, b in zip(alone[0], results[0][0]):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10)
    assert np.isfinite(results[1][1]["loss"]).all()


def test_one_thread_when_the_policy_says_so(monkeypatch):
    """``fit``'s thread policy (busy machine) holds the split at one thread through
    ``plan.threads``; small batches never split."""
    _force_split(monkeypatch, 2)
    counts = _record_threads(monkeypatch)

    class OneThread(training.ThreadChoice):
        setting = "one"

    monkeypatch.setattr(training, "ThreadChoice", OneThread)
    X, y, _ = _data("float64")
    _model("float64", "adam").fit(X, y, epochs=1, batch_size=40, verbose=0)
    assert counts and set(counts) == {1}
    _, plan = _plan()
    assert NT._threads_for(plan) == 2
    plan.threads = 1
    assert NT._threads_for(plan) == 1
    plan.threads = 0
    monkeypatch.setattr(NT, "MIN_ROWS_PER_THREAD_F64", 32)  # 40 rows: not two threads of 32
    assert NT._threads_for(plan) == 1


def test_float64_splits_a_batch_of_16_rows_float32_does_not(monkeypatch):
    """A thread's fewest rows: 16 in float32 (two threads of 8 rows ran slower than one),
    8 in float64, whose rows cost more."""
    monkeypatch.setattr(NT, "get_num_threads", lambda: 2)
    monkeypatch.setattr(NT, "MIN_PARALLEL_FLOPS", 0.0)
    for dtype, threads in (("float32", 1), ("float64", 2)):
        _, plan = _plan(dtype, batch_size=16)
        assert NT._threads_for(plan) == threads, dtype


def test_a_float32_batch_of_16_rows_split_by_features_takes_two_threads(monkeypatch):
    """Split by features, the first layer's products take all the batch's rows on every
    thread: a float32 batch of 16 splits (8 rows a thread), as float64 does."""
    monkeypatch.setattr(NT, "get_num_threads", lambda: 2)
    monkeypatch.setattr(NT, "MIN_PARALLEL_FLOPS", 0.0)
    X, y, _ = _wide_data("float32")
    model = _wide_model("float32")
    model.fit(X[:16], y[:16], epochs=1, batch_size=16, verbose=0)
    plan = training.CompiledLoop(model, X, y, None, 16, False, np.random.default_rng(0)).plan
    assert NT._features_for(plan) and NT._threads_for(plan) == 2
    monkeypatch.setattr(NT, "FEATURE_SPLIT", False)
    plan = training.CompiledLoop(model, X, y, None, 16, False, np.random.default_rng(0)).plan
    assert not NT._features_for(plan) and NT._threads_for(plan) == 1


@numba.njit(nogil=True)
def _meet(sync, nt, tid, seen, rounds):
    """Each round: write this thread's slot, meet, read every slot (all written)."""
    for r in range(1, rounds + 1):
        seen[tid, 0] = r
        if not _sync.barrier(sync, nt):
            return -1
        for t in range(nt):
            if seen[t, 0] < r:
                return r
        if not _sync.barrier(sync, nt):  # nobody writes round r + 1 before all have read
            return -1
    return 0


def test_the_barrier_orders_writes_and_can_be_released():
    nt, rounds = 3, 2000
    sync = _sync.new_sync()
    seen = np.zeros((nt, 8), np.int64)
    results = [None] * nt

    def run(t):
        results[t] = _meet(sync, nt, t, seen, rounds)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(nt)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [0] * nt
    # a thread that never comes: the others wait until released
    sync = _sync.new_sync()
    waiting = threading.Thread(target=run, args=(0,))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()
    sync[_sync.ABORT] = 1
    waiting.join(10)
    assert not waiting.is_alive() and results[0] == -1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_gradient_rows_read_a_block_of_columns_in_place(dtype):
    rng = np.random.default_rng(0)
    tol = TOL[dtype] * 10
    for m, n_in, n_out, lo, hi in [(5, 7, 3, 2, 6), (33, 40, 17, 0, 20), (33, 40, 17, 20, 40), (4, 6, 2, 3, 3),
                                   (0, 6, 2, 1, 4)]:
        X = rng.standard_normal((m, n_in)).astype(dtype)
        dZ = rng.standard_normal((m, n_out)).astype(dtype)
        W = rng.standard_normal((n_in, n_out)).astype(dtype)
        dW = np.full((n_in, n_out), 7.0, dtype)
        _blas.weight_grad_rows(X, dZ, 0.1, W, dW, lo, hi, False)
        expected = X.T @ dZ + np.asarray(0.1, dtype) * W
        np.testing.assert_allclose(dW[lo:hi], expected[lo:hi], rtol=tol, atol=tol)
        assert (dW[:lo] == 7).all() and (dW[hi:] == 7).all()
    with pytest.raises(ValueError, match="weight_grad_rows"):
        _blas.weight_grad_rows(X, dZ, 0.0, W, dW, 0, n_in + 1, False)


def test_a_split_float32_weight_gradient_of_250_rows_is_the_batchs_gradient(monkeypatch):
    """While the loop splits a batch (BLAS held at one thread), a float32 weight gradient
    over up to ``SMALL_ROWS_F32_HELD`` batch rows may run the small kernel: the last batch's
    dW[0] of a split fit is ``weight_grad_rows(..., held=True)`` of that batch's gathered
    rows and output delta bit for bit, and within rounding of the BLAS path.  (Both add a
    250-row sum in order with fused multiply-adds here, so the bits do not say which ran.)"""
    from fastnn._kernels import numba as nb
    from fastnn._kernels.numba import _small_gemm

    if _small_gemm.SMALL_ROWS_F32_HELD < 250:
        pytest.skip("the held limit is 250 rows or more only with AVX-512")
    plans = []
    original = nb.train_batches

    def recording(plan, *args):
        plans.append(plan)
        return original(plan, *args)

    monkeypatch.setattr(nb, "train_batches", recording)
    _force_split(monkeypatch, 2)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1000, 784)).astype(np.float32)
    y = rng.integers(0, 10, 1000)
    model = fn.Sequential([fn.Dense(96, activation="tanh", input_dim=784),
                           fn.Dense(10, activation="softmax")], backend="numba", seed=0, dtype="float32")
    model.compile(optimizer=fn.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=1, batch_size=250, shuffle=False, verbose=0)
    plan = plans[-1]
    m = 250  # the last batch: rows 750-999, gathered into Xb by the two threads
    np.testing.assert_array_equal(plan.Xb[:m], X[750:])
    dZ, W = plan.dZs[0][:m], plan.Ws[0]
    by_kernel, by_blas = np.empty_like(W), np.empty_like(W)
    _blas.weight_grad_rows(plan.Xb[:m], dZ, 0.0, W, by_kernel, 0, W.shape[0], True)
    _blas.weight_grad_rows(plan.Xb[:m], dZ, 0.0, W, by_blas, 0, W.shape[0], False)
    np.testing.assert_allclose(by_kernel, by_blas, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(plan.dWs[0], by_kernel)


def test_a_change_of_thread_count_reuses_the_threads_buffers(monkeypatch):
    """The threads' sums and partial products are made once per plan for the most threads
    and sliced: a fit whose thread policy moves between one thread and several on a busy
    machine allocates nothing when it does (a steady-state epoch allocated 68 KB)."""
    monkeypatch.setattr(NT, "get_num_threads", lambda: 3)
    _, plan = _plan()
    first = NT._partials(plan, 2, True), NT._sums(plan, 2)
    for nt in (1, 3, 2):
        partials, sums = NT._partials(plan, nt, True), NT._sums(plan, nt)
        assert partials.shape[0] == sums.shape[0] == nt
        assert partials.flags.c_contiguous and sums.flags.c_contiguous
        assert np.shares_memory(partials, first[0]) and np.shares_memory(sums, first[1])
    assert NT._partials(plan, 2, False).shape == (0, 0, 0)

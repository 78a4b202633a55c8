"""scipy.sparse input: fit, predict, evaluate and the estimators take any sparse
format, train the first layer through the sparse kernels on every backend, agree
with the same data given dense, and never make a dense copy of X."""
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn._kernels.sparse import SparseInput

sp = pytest.importorskip("scipy.sparse")

TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-9, atol=1e-11)}


def data(n=300, d=120, density=0.08, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed, dtype=np.float64)
    X.data *= 3
    X = sp.csr_matrix(X.multiply(np.arange(n)[:, None] != 5))  # row 5 is empty
    y = (np.asarray(X[:, :10].sum(axis=1)).ravel() + rng.normal(scale=0.1, size=n) > 0.5).astype(np.int64)
    y += np.asarray(X[:, 10:20].sum(axis=1)).ravel() > 0.5
    return X, y


def model(backend, dtype, first=None, optimizer="adam"):
    first = first or fn.Dense(16, activation="relu", input_dim=120)
    m = fn.Sequential([first, fn.Dense(3, activation="softmax")], backend=backend, dtype=dtype, seed=0)
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.mark.parametrize("optimizer", ["adam", fn.optimizers.SGD(0.1, momentum=0.9)], ids=["adam", "momentum"])
def test_sparse_training_equals_dense_training(backend, dtype, optimizer):
    X, y = data()
    runs = {}
    for kind, Xi in (("sparse", X), ("dense", X.toarray())):
        m = model(backend, dtype, optimizer=optimizer)
        h = m.fit(Xi, y, epochs=3, batch_size=32, verbose=0, validation_split=0.2)
        runs[kind] = h.history, m.get_weights(), m.predict(Xi), m.evaluate(Xi, y)
    (hs, ws, ps, es), (hd, wd, pd, ed) = runs["sparse"], runs["dense"]
    for key in hd:
        np.testing.assert_allclose(hs[key], hd[key], **TOL[dtype])
    for a, b in zip(ws, wd):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    np.testing.assert_allclose(ps, pd, **TOL[dtype])
    assert es["loss"] == pytest.approx(ed["loss"], rel=TOL[dtype]["rtol"])


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "csr_array", "int_counts"])
def test_every_format_gives_the_same_model(fmt):
    X, y = data()
    counts = X.copy()
    counts.data = np.ceil(counts.data).astype(np.int64)
    special = {"csr_array": sp.csr_array(X), "int_counts": counts}
    given = special[fmt] if fmt in special else X.asformat(fmt)
    expected = counts if fmt == "int_counts" else X
    m1, m2 = model("numpy", "float64"), model("numpy", "float64")
    m1.fit(given, y, epochs=2, verbose=0)
    m2.fit(expected.toarray(), y, epochs=2, verbose=0)
    np.testing.assert_allclose(m1.predict(given), m2.predict(expected.toarray()), rtol=1e-10)


def test_unsorted_indices_and_duplicates_are_summed():
    X, y = data(n=40)
    coo = X.tocoo()
    doubled = sp.coo_matrix((np.r_[coo.data, coo.data][::-1], (np.r_[coo.row, coo.row][::-1],
                                                              np.r_[coo.col, coo.col][::-1])), shape=X.shape)
    m = model("numpy", "float64")
    m.fit(X, y[:40], epochs=1, verbose=0)
    np.testing.assert_allclose(m.predict(doubled.tocsr()), m.predict(2 * X.toarray()), rtol=1e-12)


def test_maxout_first_layer_reads_sparse_input(backend):
    X, y = data()
    outs = []
    for Xi in (X, X.toarray()):
        m = model(backend, "float64", first=fn.Maxout(8, pieces=3, input_dim=120))
        m.fit(Xi, y, epochs=2, batch_size=50, verbose=0)
        outs.append(m.predict(Xi))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-9, atol=1e-12)


def test_validation_data_and_sample_weight_can_be_sparse():
    X, y = data()
    w = np.linspace(0.5, 2, X.shape[0])
    m1, m2 = model("numpy", "float64"), model("numpy", "float64")
    h1 = m1.fit(X[:200], y[:200], sample_weight=w[:200], validation_data=(X[200:], y[200:]), epochs=2, verbose=0)
    h2 = m2.fit(X[:200].toarray(), y[:200], sample_weight=w[:200], validation_data=(X[200:].toarray(), y[200:]),
                epochs=2, verbose=0)
    np.testing.assert_allclose(h1.history["val_loss"], h2.history["val_loss"], rtol=1e-10)


WIDE = """
import resource, sys
import numpy as np, scipy.sparse as sp, fastnn as fn
n, d = 2_000, 2 ** 18
rng = np.random.default_rng(0)
k = n * d // 1000  # 0.1 % density (sp.random would allocate n * d indices to draw them)
X = sp.csr_matrix((rng.random(k, dtype=np.float32), (rng.integers(0, n, k), rng.integers(0, d, k))), shape=(n, d))
y = rng.integers(0, 2, n)
m = fn.Sequential([fn.Dense(8, activation="relu", input_dim=d), fn.Dense(2, activation="softmax")],
                  backend=sys.argv[1], seed=0)
m.compile("adam", "sparse_categorical_crossentropy")
m.fit(X, y, epochs=2, batch_size=128, verbose=0, validation_split=0.1)
m.predict(X); m.evaluate(X, y)
# the peak resident size of this process image (getrusage's maxrss would include the parent's
# before exec); VmHWM is Linux's, elsewhere ru_maxrss is the best there is
try:
    peak = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(peak)
"""


def test_no_dense_copy_of_a_wide_matrix_is_made(backend):
    """2,000 x 262,144 at 0.1 % density: a dense float32 copy of X would be 2.1 GB, a dense
    batch buffer (128 rows) 134 MB; the whole process stays far below either."""
    out = subprocess.run([sys.executable, "-c", WIDE, backend], capture_output=True, text=True, check=True)
    peak = int(out.stdout.split()[-1])
    assert peak < 700e6, f"peak RSS {peak / 1e6:.0f} MB"


def test_a_sparse_input_is_converted_once_and_checked():
    X, _ = data(n=20)
    converted = fn._validation.check_X(X.tocoo(), 120, np.float32, accept_sparse=True)
    assert isinstance(converted, SparseInput)
    assert converted.indptr.dtype == np.int64 and converted.indices.dtype == np.int32
    assert converted.data.dtype == np.float32 and converted.shape == (20, 120)
    with pytest.raises(ValueError, match="X: expected at least 1 sample"):
        fn._validation.check_X(sp.csr_matrix((0, 120)), 120, np.float32, accept_sparse=True)
    too_big = sp.csr_matrix(([1e39], ([0], [0])), shape=(1, 120))
    with pytest.raises(ValueError, match="X: .*float32"):
        fn._validation.check_X(too_big, 120, np.float32, accept_sparse=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_dense_is_the_canonical_csr(dtype):
    X = data(n=50)[0].toarray()
    X = X.astype(dtype)
    X[7] = 0.0
    X[8, 3] = -0.0  # a negative zero is a zero
    converted = SparseInput.from_dense(X, block_values=16 * 120)  # blocks of 16 rows, the last one partial
    expected = sp.csr_matrix(X)
    assert converted.data.dtype == dtype and converted.indices.dtype == np.int32
    assert converted.indptr.dtype == np.int64 and converted.shape == X.shape
    np.testing.assert_array_equal(converted.indptr, expected.indptr)
    np.testing.assert_array_equal(converted.indices, expected.indices)
    np.testing.assert_array_equal(converted.data, expected.data)
    np.testing.assert_array_equal(converted.matrix.toarray(), X)
    assert SparseInput.from_dense(np.zeros((3, 5), dtype)).nnz == 0


def test_normalization_layer_refuses_sparse_input_with_a_hint():
    X, y = data()
    m = fn.Sequential([fn.Normalization().adapt(X.toarray()), fn.Dense(3, activation="softmax")], seed=0)
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="X: a sparse matrix cannot go through the Normalization layer.*MaxAbsScaler"):
        m.fit(X, y, verbose=0)


@pytest.mark.parametrize("Estimator", ["MLPClassifier", "MLPRegressor"])
def test_estimators_take_sparse_input(Estimator):
    X, y = data()
    target = y if Estimator == "MLPClassifier" else y.astype(float)
    params = dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0, backend="numpy", dtype="float64")
    sparse = getattr(fn, Estimator)(**params).fit(X, target)
    dense = getattr(fn, Estimator)(**params).fit(X.toarray(), target)
    np.testing.assert_allclose(sparse.predict(X.tocsc()), dense.predict(X.toarray()), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-9)
    partial = getattr(fn, Estimator)(**params)
    for _ in range(2):
        partial.partial_fit(X, target, **({"classes": np.unique(y)} if Estimator == "MLPClassifier" else {}))
    assert partial.predict(X).shape == (X.shape[0],)


class _ForceKernelLoop(fn.callbacks.Callback):
    """A per-batch hook: fit then takes the per-kernel path."""

    def on_batch_end(self, batch, logs=None):
        pass


@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_path_reads_sparse_batches_like_the_per_kernel_path(backend, dtype, threads, monkeypatch):
    X, y = data(n=331)  # a partial last batch
    K = fn._kernels.resolve(backend)
    calls = []
    original = K.train_batches
    monkeypatch.setattr(K, "train_batches", lambda *a: calls.append(1) or original(*a))
    before = fn.get_num_threads()
    fn.set_num_threads(threads)
    try:
        runs = []
        for callbacks in ([], [_ForceKernelLoop()]):
            m = model(backend, dtype)
            h = m.fit(X, y, epochs=2, batch_size=20, verbose=0, sample_weight=np.linspace(0.5, 1.5, 331),
                      callbacks=callbacks)
            runs.append((h.history, m.get_weights(), m.optimizer.get_state()))
            if not callbacks:
                assert calls, "fit did not use train_batches for sparse input"
    finally:
        fn.set_num_threads(before)
    (h1, w1, s1), (h2, w2, s2) = runs
    for key in h1:
        np.testing.assert_allclose(h1[key], h2[key], **TOL[dtype])
    for a, b in zip(w1 + s1, w2 + s2):
        np.testing.assert_allclose(a, b, **TOL[dtype])

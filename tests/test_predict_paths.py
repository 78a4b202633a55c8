"""The compiled inference path (``predict_rows``) against the per-layer path.

Tolerances: as the training paths -- float64 to 1e-12 relative, float32 to
1e-5 (BLAS blocks rows differently when a backend splits them into blocks).
"""
import concurrent.futures
import os
import signal
import threading
import time

import numpy as np
import pytest

import fastnn as fn
from fastnn import _kernels as K

ACTIVATIONS = ["relu", "sigmoid", "tanh", "elu", "leaky_relu", "linear"]


# Backends with the optional kernel (the others keep the per-layer path, which
# test_bad_input and test_api cover).
WITH_PREDICT_ROWS = [name for name in K.available() if hasattr(K.load(name), "predict_rows")]


@pytest.fixture(params=WITH_PREDICT_ROWS or [pytest.param(None, marks=pytest.mark.skip("no backend has predict_rows"))])
def compiled(request):
    return request.param


def model(backend, dtype, hidden, use_bias=True, output="softmax", k=3, n_in=7, seed=0):
    m = fn.Sequential([fn.Dense(11, activation=hidden, input_dim=n_in, use_bias=use_bias),
                       fn.Dense(5, activation=hidden, use_bias=use_bias),
                       fn.Dense(k, activation=output)], backend=backend, dtype=dtype, seed=seed)
    m.compile(optimizer="sgd", loss="mse")
    return m


def layer_by_layer(m, X):
    """What predict gives without predict_rows: dense_forward layer after layer."""
    A = np.ascontiguousarray(X, dtype=m.dtype)
    for layer in m.layers:
        Z = np.empty((len(A), layer.W.shape[1]), m.dtype)
        out = np.empty_like(Z)
        m._kernels.dense_forward(A, layer.W, layer.b, layer.activation.code, layer.activation.alpha, Z, out)
        A = out
    return A


@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("n", [1, 17, 255, 256, 257, 1000, 5003])
def test_predict_rows_equals_the_layer_by_layer_forward(compiled, dtype, hidden, n):
    m = model(compiled, dtype, hidden)
    X = np.random.default_rng(n).standard_normal((n, 7))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(m.predict(X), layer_by_layer(m, X), rtol=tol, atol=tol)


@pytest.mark.parametrize("batch_size", [1, 16, 100, None])
@pytest.mark.parametrize("use_bias", [True, False])
def test_predict_rows_with_any_workspace_size_and_without_bias(compiled, batch_size, use_bias):
    m = model(compiled, "float64", "relu", use_bias=use_bias, output="sigmoid", k=1)
    X = np.random.default_rng(1).standard_normal((2000, 7))
    np.testing.assert_allclose(m.predict(X, batch_size=batch_size), layer_by_layer(m, X), rtol=1e-12)


def test_predict_rows_mnist_shaped_matches_numpy():
    """784-128-10 on 3,000 rows: several blocks per thread, every backend near numpy."""
    X = np.random.default_rng(2).random((3000, 784), dtype=np.float32)
    outputs = {}
    for backend in K.available():
        m = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784), fn.Dense(10, activation="softmax")],
                          backend=backend, dtype="float32", seed=0)
        outputs[backend] = m.predict(X)
    for backend, out in outputs.items():
        np.testing.assert_allclose(out, outputs["numpy"], rtol=1e-4, atol=1e-6, err_msg=backend)


def test_cython_predict_blocks_at_every_x86_level_match_numpy():
    """Cython's blocks follow the small-product kernel's reach (64 rows with AVX-512, else
    256 through BLAS): each level the CPU runs gives numpy's outputs on 3,001 rows (a short
    last block)."""
    if "cython" not in K.available():
        pytest.skip("the Cython backend is not built")
    from fastnn._kernels.cython import _dense

    X = np.random.default_rng(3).random((3001, 784), dtype=np.float32)
    models = {b: fn.Sequential([fn.Dense(128, activation="relu", input_dim=784), fn.Dense(10, activation="softmax")],
                               backend=b, dtype="float32", seed=0) for b in ("numpy", "cython")}
    expected = models["numpy"].predict(X)
    for level in (1, 3, 4):
        try:
            before = _dense._set_gemm_level(level)
        except ValueError:
            continue  # not on this CPU
        try:
            out = models["cython"].predict(X)
        finally:
            _dense._set_gemm_level(before)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6, err_msg=f"level {level}")


@pytest.mark.parametrize("where", [(0, 0), (1234, 5), (2999, 783)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_rows_reports_non_finite_input_like_every_path(backend, dtype, where, bad):
    """The fused finiteness check gives the same error as the separate scan."""
    m = fn.Sequential([fn.Dense(16, activation="relu", input_dim=784), fn.Dense(3, activation="softmax")],
                      backend=backend, dtype=dtype, seed=0)
    X = np.random.default_rng(3).random((3000, 784))
    X[where] = bad
    with pytest.raises(ValueError, match=r"X: contains 1 NaN or infinite value\(s\)"):
        m.predict(X)


def test_predict_rows_kernel_contract(compiled, dtype):
    module = K.load(compiled)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 6)).astype(dtype)
    W0, W1 = rng.standard_normal((6, 8)).astype(dtype), rng.standard_normal((8, 3)).astype(dtype)
    b0, b1 = rng.standard_normal(8).astype(dtype), np.empty(0, dtype)
    Zs = [np.empty((16, 8), dtype), np.empty((16, 3), dtype)]
    As = [np.empty((16, 8), dtype), np.empty((16, 3), dtype)]
    out = np.empty((40, 3), dtype)
    assert module.predict_rows(X, [W0, W1], [b0, b1], [K.TANH, K.LINEAR], [0.0, 0.0], Zs, As, out)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, np.tanh(X @ W0 + b0) @ W1, rtol=tol, atol=tol)
    X[7, 2] = np.nan
    assert not module.predict_rows(X, [W0, W1], [b0, b1], [K.TANH, K.LINEAR], [0.0, 0.0], Zs, As, out)
    with pytest.raises(ValueError, match=r"Ws\[1\] has shape \(7, 3\), expected 8 rows"):
        module.predict_rows(X, [W0, W1[:7]], [b0, b1], [K.TANH, K.LINEAR], [0.0, 0.0], Zs, As, out)
    with pytest.raises(ValueError, match=r"out has shape \(39, 3\)"):
        module.predict_rows(X, [W0, W1], [b0, b1], [K.TANH, K.LINEAR], [0.0, 0.0], Zs, As, out[:39])
    with pytest.raises(TypeError, match="expected float"):
        module.predict_rows(X, [W0.astype(np.float16), W1], [b0, b1], [K.TANH, K.LINEAR], [0.0, 0.0], Zs, As, out)
    with pytest.raises(ValueError, match="not an activation code"):
        module.predict_rows(X, [W0, W1], [b0, b1], [99, K.LINEAR], [0.0, 0.0], Zs, As, out)
    with pytest.raises(ValueError, match="same rows in every layer"):
        module.predict_rows(X, [W0, W1], [b0, b1], [K.TANH, K.LINEAR], [0.0, 0.0],
                            Zs, [As[0], np.empty((8, 3), dtype)], out)


def _mostly_zero_rows(dtype, n=700, n_in=787):
    """Rows in blocks of ~2 % to 100 % non-zeros (-0.0 among the zeros), whole zero rows, and
    a width that leaves every vector loop a tail."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    keep = rng.random((n, 1)) * 1.02 > rng.random((n, n_in))
    X[~keep] = 0.0
    X[rng.random((n, n_in)) < 0.01] = -0.0
    X[::97] = 0.0
    return np.ascontiguousarray(X)


@pytest.mark.parametrize("sparse_below", [0.0, 0.3, 2.0], ids=["dense", "by-block", "nonzeros"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_predict_rows_reading_only_non_zeros_gives_the_same_sums(compiled, dtype, sparse_below, use_bias):
    """``sparse_below``: a block of rows under that share of non-zeros reads only those (the
    Cython backend; 2.0: every block) -- the same outputs as every value read, at every
    block size and on one thread and several."""
    module = K.load(compiled)
    X = _mostly_zero_rows(dtype)
    rng = np.random.default_rng(7)
    W0, W1 = (rng.standard_normal((787, 40)) * 0.05).astype(dtype), rng.standard_normal((40, 3)).astype(dtype)
    b0 = rng.standard_normal(40).astype(dtype) if use_bias else np.empty(0, dtype)
    expected = np.maximum(X.astype(np.float64) @ W0 + (b0 if use_bias else 0), 0) @ W1
    tol = 1e-4 if dtype == "float32" else 1e-12
    for rows in (1, 16, 64, 700):
        Zs = [np.empty((rows, 40), dtype), np.empty((rows, 3), dtype)]
        As = [np.empty((rows, 40), dtype), np.empty((rows, 3), dtype)]
        out = np.full((len(X), 3), np.nan, dtype)
        assert module.predict_rows(X, [W0, W1], [b0, np.empty(0, dtype)], [K.RELU, K.LINEAR], [0.0, 0.0],
                                   Zs, As, out, sparse_below=sparse_below)
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol, err_msg=f"workspace of {rows} rows")
    X[650, 786] = np.inf  # the finiteness check still comes first
    assert not module.predict_rows(X, [W0, W1], [b0, np.empty(0, dtype)], [K.RELU, K.LINEAR], [0.0, 0.0],
                                   Zs, As, out, sparse_below=sparse_below)


def test_the_non_zero_gather_at_every_x86_level_equals_every_value_read(dtype):
    """The Cython gather of a row's non-zeros (AVX-512 compresses; the others loop) at each
    level this CPU runs, bit for bit against the dense path's sums of the same rows."""
    if "cython" not in K.available():
        pytest.skip("the Cython backend is not built")
    from _x86 import levels
    from fastnn._kernels.cython import _sparse

    module = K.load("cython")
    X = _mostly_zero_rows(dtype, n=300)
    rng = np.random.default_rng(8)
    W0 = rng.standard_normal((787, 24)).astype(dtype)
    Zs, As = [np.empty((300, 24), dtype)], [np.empty((300, 24), dtype)]
    outs = {}
    try:
        for level in levels(_sparse._set_rows_level):
            _sparse._set_rows_level(level)
            out = np.empty((300, 24), dtype)
            assert module.predict_rows(X, [W0], [np.empty(0, dtype)], [K.LINEAR], [0.0], Zs, As, out,
                                       sparse_below=2.0)
            outs[level] = out
    finally:
        _sparse._set_rows_level(0)
    expected = X.astype(np.float64) @ W0
    for level, out in outs.items():
        tol = 1e-4 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol, err_msg=f"level {level}")
    if 4 in outs and 3 in outs:  # both fuse multiply-adds in the same order: the gathers agree
        np.testing.assert_array_equal(outs[4], outs[3])


def test_model_predict_reads_mostly_zero_rows_sparsely_on_cython_only_where_measured():
    """``Sequential.predict`` passes the measured threshold (PREDICT_CROSSOVERS) for the
    Cython backend's first layer; narrow layers and few inputs stay dense."""
    from fastnn import _first_layer

    below = _first_layer.predict_sparse_below
    assert 0.19 < below("cython", 784, 128) < 0.33  # MNIST's 19 % reads sparsely
    assert below("cython", 784, 16) == 0.0 and below("cython", 13, 128) == 0.0
    assert below("numba", 784, 128) == below("numpy", 784, 128) == 0.0
    if "cython" not in K.available():
        return
    X = _mostly_zero_rows("float32", n=3000, n_in=784) * (np.random.default_rng(9).random((3000, 1)) < 0.3)
    m = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784), fn.Dense(10, activation="softmax")],
                      backend="cython", dtype="float32", seed=0)
    np.testing.assert_allclose(m.predict(X), layer_by_layer(m, X), rtol=1e-5, atol=1e-6)


def test_predict_rows_on_one_thread_equals_the_threaded_split(compiled):
    """With OpenMP held to one thread the rows run in workspace-sized blocks on one
    thread (BLAS as it is); the result is the threaded one up to BLAS blocking."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    X = np.random.default_rng(5).random((5000, 784), dtype=np.float32)
    m = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784), fn.Dense(10, activation="softmax")],
                      backend=compiled, dtype="float32", seed=0)
    threaded = m.predict(X)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        serial = m.predict(X)
        X[4321, 7] = np.inf
        with pytest.raises(ValueError, match=r"X: contains 1 NaN or infinite value\(s\)"):
            m.predict(X)
    np.testing.assert_allclose(serial, threaded, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
@pytest.mark.parametrize("n", [1, 257, 5003])
def test_predict_logits_are_the_output_layers_pre_activations(backend, dtype, output, n):
    """``predict(output="logits")`` on every path: the forward pass with a linear last layer."""
    m = model(backend, dtype, "tanh", output=output)
    X = np.random.default_rng(n).standard_normal((n, 7))
    linear = fn.Sequential.from_config(m.get_config(), backend=backend)
    linear.set_weights(m.get_weights())
    linear.layers[-1].activation = fn.activations.get("linear")
    tol = 1e-5 if dtype == "float32" else 1e-12
    logits = m.predict(X, output="logits")
    assert logits.shape == (n, 3) and logits.dtype == np.dtype(dtype)
    np.testing.assert_allclose(logits, layer_by_layer(linear, X), rtol=tol, atol=tol)
    np.testing.assert_allclose(m.predict(X, batch_size=100, output="logits"), logits, rtol=tol, atol=tol)
    np.testing.assert_allclose(m.predict(X), layer_by_layer(m, X), rtol=tol, atol=tol)


def test_predict_logits_of_a_maxout_output_are_its_outputs():
    m = fn.Sequential([fn.Dense(8, activation="relu", input_dim=5), fn.Maxout(3, pieces=2)], seed=0)
    X = np.random.default_rng(6).standard_normal((50, 5))
    np.testing.assert_array_equal(m.predict(X, output="logits"), m.predict(X))
    with pytest.raises(ValueError, match="output: expected 'activations' or 'logits', got 'proba'"):
        m.predict(X, output="proba")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_trains_and_predicts_after_its_parent_used_threads(compiled):
    """A child forked after a threaded fit and predict (multiprocessing's default on
    Linux, Dask, a pre-forking server) has none of its parent's worker threads: its
    own fit and predict must finish (GNU OpenMP's pool does not survive fork)."""
    rng = np.random.default_rng(7)
    X = rng.random((4000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 4000)
    m = fn.Sequential([fn.Dense(64, activation="relu", input_dim=784), fn.Dense(10, activation="softmax")],
                      backend=compiled, dtype="float32", seed=0)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(X, y, epochs=1, batch_size=512, verbose=0)
    expected = m.predict(X)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its predict and fit finish and agree
        code = 1
        try:
            same = np.allclose(m.predict(X), expected, rtol=1e-5, atol=1e-7)
            m.fit(X, y, epochs=1, batch_size=512, verbose=0)
            code = 0 if same and np.isfinite(m.predict(X)).all() else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's fit or predict did not finish in 120 s")
    assert os.waitstatus_to_exitcode(status) == 0


def test_numba_predict_waits_for_its_worker_threads_when_interrupted(monkeypatch):
    """Ctrl+C in the calling thread while Numba's predict workers run: the call
    raises only after they are done, since they write into the workspaces that
    the thread's next predict reuses."""
    pytest.importorskip("numba")
    from fastnn._kernels.numba import _predict

    finished = []

    def loop(X, Ws, bs, acts, alphas, Zs, As, out, block, hidden, last):
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt
        time.sleep(0.3)
        finished.append(len(X))
        return True

    monkeypatch.setattr(_predict, "workers", lambda name, needed: concurrent.futures.ThreadPoolExecutor(1))
    X = np.zeros((512, 3))
    Zs = As = (np.zeros((512, 4)),)
    with pytest.raises(KeyboardInterrupt):
        _predict._split(loop, (X, (), (), None, None, Zs, As, np.zeros((512, 4))), 2, 256, 0, 0)
    assert finished == [256]

"""fit(first_layer=...): dense X trained through the sparse first layer agrees with the dense
path on every backend and dtype, "auto" picks by density, and the choice meets every other
option of fit (validation, sample weights, Maxout, per-batch callbacks, continued training,
Normalization) and the scikit-learn estimators."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import _first_layer

sp = pytest.importorskip("scipy.sparse")

from test_sparse_input import TOL, data, model  # noqa: E402  (tests/ is on sys.path under pytest)


def dense_data(**kw):
    X, y = data(**kw)
    return X.toarray(), y


def assert_same_run(a, b, dtype):
    (ha, wa, pa), (hb, wb, pb) = a, b
    assert ha.keys() == hb.keys()
    for key in ha:
        np.testing.assert_allclose(ha[key], hb[key], **TOL[dtype], err_msg=key)
    for x, z in zip(wa, wb):
        np.testing.assert_allclose(x, z, **TOL[dtype])
    np.testing.assert_allclose(pa, pb, **TOL[dtype])


def train(backend, dtype, X, y, first_layer, first=None, **fit_args):
    m = model(backend, dtype, first=first)
    h = m.fit(X, y, epochs=fit_args.pop("epochs", 3), batch_size=fit_args.pop("batch_size", 32), verbose=0,
              first_layer=first_layer, **fit_args)
    return m, h


def test_sparse_first_layer_on_dense_x_equals_the_dense_path(backend, dtype):
    X, y = dense_data()
    w = np.linspace(0.5, 2.0, 240)
    runs = {}
    for first_layer in ("dense", "sparse"):
        m, h = train(backend, dtype, X[:240], y[:240], first_layer, sample_weight=w,
                     validation_data=(X[240:], y[240:]))
        assert h.params["first_layer"] == first_layer
        runs[first_layer] = h.history, m.get_weights() + m.optimizer.get_state(), m.predict(X)
    assert "val_loss" in runs["sparse"][0]
    assert_same_run(runs["sparse"], runs["dense"], dtype)


def test_validation_split_and_the_per_kernel_path(backend):
    class PerBatch(fn.callbacks.Callback):  # a per-batch hook: fit takes the per-kernel loop
        def on_batch_end(self, batch, logs=None):
            pass

    X, y = dense_data(n=331)  # a partial last batch
    runs = []
    for first_layer in ("dense", "sparse"):
        m, h = train(backend, "float64", X, y, first_layer, validation_split=0.2, callbacks=[PerBatch()])
        runs.append((h.history, m.get_weights(), m.predict(X)))
    assert_same_run(*runs, "float64")


def test_maxout_first_layer(backend):
    X, y = dense_data()
    runs = []
    for first_layer in ("dense", "sparse"):
        m, h = train(backend, "float64", X, y, first_layer, first=fn.Maxout(8, pieces=3, input_dim=120), epochs=2)
        assert h.params["first_layer"] == first_layer
        runs.append((h.history, m.get_weights(), m.predict(X)))
    assert_same_run(*runs, "float64")


def test_continued_training_may_switch_paths(backend):
    X, y = dense_data()
    runs = []
    for plan in (("dense", "dense"), ("sparse", "dense"), ("dense", "sparse")):
        m, _ = train(backend, "float64", X, y, plan[0], epochs=2)
        h = m.fit(X, y, epochs=4, initial_epoch=2, batch_size=32, verbose=0, first_layer=plan[1])
        runs.append((h.history, m.get_weights() + m.optimizer.get_state(), m.predict(X)))
    assert_same_run(runs[0], runs[1], "float64")
    assert_same_run(runs[0], runs[2], "float64")


def test_auto_picks_sparse_only_below_the_backends_crossover(backend, monkeypatch):
    X, y = dense_data()  # 8 % of the values non-zero
    assert _first_layer.density(X) == pytest.approx(np.count_nonzero(X) / X.size)  # small: every row counted
    big = (np.random.default_rng(0).random((3000, 784)) < 0.03).astype(np.float32)  # counted on a sample
    assert _first_layer.density(big) == pytest.approx(0.03, abs=0.002)
    monkeypatch.setattr(_first_layer, "SPARSE_MIN_WEIGHTS", {})
    monkeypatch.setitem(_first_layer.PAYBACK_UNIT_EPOCHS, backend, 0)  # the density alone decides here
    monkeypatch.setitem(_first_layer.CROSSOVERS, backend, ((1, 0.1 / _first_layer.BELOW_CROSSOVER),))
    m, h = train(backend, "float64", X, y, "auto", epochs=1)
    assert h.params["first_layer"] == "sparse"
    monkeypatch.setitem(_first_layer.CROSSOVERS, backend, ((1, 0.05 / _first_layer.BELOW_CROSSOVER),))
    h = m.fit(X, y, verbose=0)  # "auto" is the default
    assert h.params["first_layer"] == "dense"
    assert m.fit(sp.csr_matrix(X), y, verbose=0).params["first_layer"] == "sparse"  # sparse X stays sparse


def test_the_crossover_follows_the_first_layers_width():
    """Measured at 32, 128 and 512 units: those figures there, interpolated in
    log2(units) between them, held beyond them; none for a backend never measured."""
    points = _first_layer.CROSSOVERS["cython"]
    for units, density in points:
        assert _first_layer.crossover("cython", units) == density
    (u0, c0), (u1, c1) = points[1], points[2]
    middle = 2 ** ((np.log2(u0) + np.log2(u1)) / 2)
    assert _first_layer.crossover("cython", middle) == pytest.approx((c0 + c1) / 2)
    assert _first_layer.crossover("cython", 4) == points[0][1]
    assert _first_layer.crossover("cython", 10 ** 5) == points[-1][1]
    assert _first_layer.crossover("a-backend-never-measured", 128) == 0.0


def test_auto_trains_mnist_sparse_only_where_it_measured_faster():
    """MNIST (19 % of the pixels non-zero): sparse on the Cython backend from 128 units
    (its sparse epoch measured 0.63 of the dense one at 128 units, 0.68 at 512) in a fit
    long enough to earn the conversion back; dense at 32 units (0.84) and on the Numba and
    NumPy backends, whose crossovers lie below it (docs/performance.md)."""
    X = (np.arange(100 * 784).reshape(100, 784) % 100 < 19).astype(np.float32)
    for backend in ("numpy", "numba"):
        assert not any(_first_layer.sparse_pays(X, backend, 784 * u, 100) for u in (32, 128, 512, 2048))
    assert not _first_layer.sparse_pays(X, "cython", 784 * 32, 100)
    assert not _first_layer.sparse_pays(X, "cython", 784 * 128, 2)
    assert _first_layer.sparse_pays(X, "cython", 784 * 128, 3)
    assert _first_layer.sparse_pays(X, "cython", 784 * 512, 1)
    assert not _first_layer.sparse_pays(np.zeros((4, 4)), "a-backend-never-measured", 784 * 128, 100)


def test_auto_keeps_a_small_first_layer_dense_on_the_numpy_backend():
    """SciPy's per-batch overhead: with 784 x 32 weights the NumPy backend's sparse first layer
    measured slower at every density (docs/performance.md)."""
    X = np.zeros((10, 784), np.float32)
    X[:, 0] = 1.0  # 0.13 % non-zero
    assert _first_layer.sparse_pays(X, "numpy", 784 * 128, 10)
    assert not _first_layer.sparse_pays(X, "numpy", 784 * 32, 10)
    assert _first_layer.sparse_pays(X, "cython", 784 * 32, 10)


def test_auto_needs_a_fit_long_enough_to_earn_the_conversion_back():
    """Converting X to CSR costs about what ``PAYBACK_UNIT_EPOCHS`` / (units x the share of
    the epoch saved) epochs save (docs/performance.md): a short fit, or partial_fit's one
    epoch a call (which would convert X every call), stays dense, and the NumPy backend's
    conversion needs more epochs than the compiled backends' own."""
    X = np.zeros((10, 784), np.float32)
    X[:, 0] = 1.0  # 0.13 %: nearly the whole epoch saved
    assert not _first_layer.sparse_pays(X, "cython", 784 * 32, 3)
    assert _first_layer.sparse_pays(X, "cython", 784 * 32, 4)
    assert not _first_layer.sparse_pays(X, "cython", 784 * 64, 1)
    assert _first_layer.sparse_pays(X, "cython", 784 * 128, 1)
    assert not _first_layer.sparse_pays(X, "cython", 784 * 128, 0)
    assert _first_layer.sparse_pays(X, "numba", 784 * 128, 1)
    assert not _first_layer.sparse_pays(X, "numpy", 784 * 128, 2)
    assert _first_layer.sparse_pays(X, "numpy", 784 * 128, 3)
    y = np.arange(10) % 3
    m = fn.Sequential([fn.Dense(128, activation="relu", input_dim=784), fn.Dense(3, activation="softmax")],
                      backend="numpy", seed=0)
    m.compile("adam", "sparse_categorical_crossentropy")
    assert m.fit(X, y, epochs=1, verbose=0).params["first_layer"] == "dense"
    assert m.fit(X, y, epochs=4, initial_epoch=3, verbose=0).params["first_layer"] == "dense"  # one epoch run
    assert m.fit(X, y, epochs=3, verbose=0).params["first_layer"] == "sparse"


def test_a_normalization_layer_keeps_the_first_layer_dense(monkeypatch):
    X, y = dense_data()
    m = fn.Sequential([fn.Normalization().adapt(X), fn.Dense(3, activation="softmax")], backend="numpy", seed=0)
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="first_layer: 'sparse' .*Normalization layer standardizes X"):
        m.fit(X, y, verbose=0, first_layer="sparse")
    assert m.optimizer.iterations == 0  # refused before any training
    monkeypatch.setattr(_first_layer, "SPARSE_MIN_WEIGHTS", {})
    monkeypatch.setitem(_first_layer.CROSSOVERS, "numpy", ((1, 1.0),))
    monkeypatch.setitem(_first_layer.PAYBACK_UNIT_EPOCHS, "numpy", 0)
    assert m.fit(X, y, verbose=0).params["first_layer"] == "dense"


@pytest.mark.parametrize("value", ["Sparse", "csr", None, 1, True, ["sparse"]])
def test_bad_first_layer_values_are_refused(value):
    X, y = dense_data(n=40)
    with pytest.raises(ValueError, match=r"first_layer: expected one of \['auto', 'dense', 'sparse'\], got "):
        model("numpy", "float64").fit(X, y[:40], verbose=0, first_layer=value)


def test_dense_first_layer_refuses_sparse_x():
    X, y = data(n=40)
    with pytest.raises(ValueError, match=r"first_layer: 'dense' needs a dense X, got a scipy.sparse matrix.*toarray"):
        model("numpy", "float64").fit(X, y, verbose=0, first_layer="dense")


@pytest.mark.parametrize("Estimator", ["MLPClassifier", "MLPRegressor"])
def test_estimators_pass_first_layer_to_fit(Estimator):
    from sklearn.base import clone

    X, y = dense_data()
    target = y if Estimator == "MLPClassifier" else y.astype(float)
    params = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0, backend="numpy", dtype="float64",
                  early_stopping=True)
    fits = {}
    for first_layer in ("dense", "sparse"):
        est = getattr(fn, Estimator)(**params, first_layer=first_layer)
        assert clone(est).get_params()["first_layer"] == first_layer
        fits[first_layer] = est.fit(X, target)
        assert est.model_.history.params["first_layer"] == first_layer
    np.testing.assert_allclose(fits["sparse"].loss_curve_, fits["dense"].loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(fits["sparse"].validation_scores_, fits["dense"].validation_scores_, rtol=1e-9)
    np.testing.assert_allclose(fits["sparse"].predict(X), fits["dense"].predict(X), rtol=1e-9, atol=1e-12)
    assert getattr(fn, Estimator)().get_params()["first_layer"] == "auto"
    with pytest.raises(ValueError, match=f"{Estimator}: first_layer must be one of .*, got 'csr'"):
        getattr(fn, Estimator)(**params, first_layer="csr").fit(X, target)

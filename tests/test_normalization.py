"""``fastnn.Normalization`` and ``Sequential(target_normalization=True)``: the
statistics (against scikit-learn's StandardScaler and NumPy's nan-functions),
adapt from batches, the model taking raw rows, saving, and the errors."""
import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

import fastnn as fn


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)) * [1, 1000, 0.001, 3, 1] + [0, 5e4, 0, -2, 0.1]
    X[:, 4] = 0.1  # a constant feature: divided by 1, as StandardScaler does
    y = X[:, :2] @ [[2.0, -1.0], [0.003, 0.001]] + [300.0, -40.0] + rng.normal(size=(300, 2))
    return X, y


def test_statistics_match_standard_scaler(data):
    X, _ = data
    norm = fn.Normalization().adapt(X)
    scaler = StandardScaler().fit(X)
    np.testing.assert_allclose(norm.mean, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(norm.variance, scaler.var_, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(norm.transform(X), scaler.transform(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(norm.inverse_transform(norm.transform(X)), X, rtol=1e-12, atol=1e-12)
    assert norm.count == 300 and norm.n_features == 5 and norm.transform(X, np.float32).dtype == np.float32


@pytest.mark.parametrize("batch", [1, 7, 64, 300])
def test_adapt_in_batches_is_exact(data, batch):
    X, _ = data
    whole = fn.Normalization().adapt(X)
    by_size = fn.Normalization().adapt(X, batch_size=batch)
    by_iter = fn.Normalization().adapt((X[i:i + batch], None) for i in range(0, len(X), batch))
    for norm in (by_size, by_iter):
        np.testing.assert_allclose(norm.mean, whole.mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(norm.variance, whole.variance, rtol=1e-9, atol=1e-15)


def test_adapt_skips_nans_per_feature(data):
    X, _ = data
    X = X.copy()
    X[::3, 0] = np.nan
    X[5, 1] = np.nan
    norm = fn.Normalization().adapt(X, batch_size=50)
    np.testing.assert_allclose(norm.mean, np.nanmean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.variance[:4], np.nanvar(X, axis=0)[:4], rtol=1e-10)
    assert norm.count == 200


def test_axis_none_is_one_mean_over_all_values(data):
    X, _ = data
    norm = fn.Normalization(axis=None).adapt(X)
    assert norm.mean.shape == () and norm.n_features is None
    np.testing.assert_allclose(norm.mean, X.mean(), rtol=1e-12)
    np.testing.assert_allclose(norm.transform(X), (X - X.mean()) / X.std(), rtol=1e-9)


def test_given_statistics_and_one_dimensional_data():
    norm = fn.Normalization(mean=[1.0, 2.0], variance=4.0)
    np.testing.assert_array_equal(norm.transform([[3.0, 2.0]]), [[1.0, 0.0]])
    assert fn.Normalization().adapt([1.0, 2.0, 3.0]).n_features == 1


@pytest.mark.parametrize("call, message", [
    (lambda: fn.Normalization(axis=0), "axis: expected -1"),
    (lambda: fn.Normalization(mean=1.0), "give both"),
    (lambda: fn.Normalization(mean=[0.0], variance=[-1.0]), "variance: expected values >= 0"),
    (lambda: fn.Normalization(mean=[0.0, 1.0], variance=[1.0, 1.0, 1.0]), "the same shape"),
    (lambda: fn.Normalization().adapt(np.full((3, 2), np.nan)), "at least one finite value"),
    (lambda: fn.Normalization().adapt([[np.nan, 1.0], [np.nan, 2.0]]), r"feature\(s\) \[0\] hold only NaN"),
    (lambda: fn.Normalization().adapt([[np.inf, 1.0]]), "infinite"),
    (lambda: fn.Normalization().adapt(np.ones((2, 2, 2))), "expected a 2-D array"),
    (lambda: fn.Normalization().adapt(iter([np.ones((2, 2)), np.ones((2, 3))])), "expected 2 features"),
    (lambda: fn.Normalization().adapt(5), "expected an array or an iterable"),
    (lambda: fn.Normalization().adapt(np.ones((4, 2)), batch_size=0), "batch_size: expected a positive"),
    (lambda: fn.Normalization().transform([[1.0]]), "no statistics yet; call adapt"),
    (lambda: fn.Normalization().adapt(np.ones((4, 2))).transform(np.ones((1, 3))), "adapted to 2 features"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def _regressor(X, backend, dtype, **kwargs):
    model = fn.Sequential([fn.Normalization().adapt(X), fn.Dense(16, activation="tanh"), fn.Dense(2)],
                          backend=backend, dtype=dtype, seed=0, **kwargs)
    model.compile("adam", "mse", metrics=["mae"])
    return model


def test_a_model_with_normalization_trains_as_one_on_standardized_rows(data, backend, dtype):
    """Raw rows through the layer = standardized rows through the same network without it."""
    X, y = data
    with_layer = _regressor(X, backend, dtype, target_normalization=True)
    assert with_layer.input_dim == 5 and with_layer.layers[0].input_dim == 5  # inferred from the adapted layer
    scaler_X, scaler_y = StandardScaler().fit(X), StandardScaler().fit(y)
    plain = fn.Sequential([fn.Dense(16, activation="tanh", input_dim=5), fn.Dense(2)],
                          backend=backend, dtype=dtype, seed=0)
    plain.compile("adam", "mse", metrics=["mae"])
    Xs, ys = scaler_X.transform(X), scaler_y.transform(y)
    h1 = with_layer.fit(X, y, epochs=3, batch_size=32, verbose=0, shuffle=False)
    h2 = plain.fit(Xs, ys, epochs=3, batch_size=32, verbose=0, shuffle=False)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=tol)
    for a, b in zip(with_layer.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(with_layer.predict(X), scaler_y.inverse_transform(plain.predict(Xs)),
                               rtol=tol, atol=tol * np.abs(y).max())
    assert with_layer.evaluate(X, y)["loss"] == pytest.approx(plain.evaluate(Xs, ys)["loss"], rel=tol)


def test_target_normalization_learns_targets_far_from_zero(data):
    """Targets around 1e4 with a spread of 1e3: Adam at lr 1e-3 moves the raw output only
    about lr per step, so without target normalization 40 epochs end far off; with it the
    fit is good."""
    X, _ = data
    rng = np.random.default_rng(1)
    y = 1e4 + 1e3 * np.tanh(X[:, 0]) + rng.normal(size=300)
    rmse = {}
    for flag in (False, True):
        model = fn.Sequential([fn.Normalization().adapt(X), fn.Dense(32, activation="tanh"), fn.Dense(1)],
                              seed=0, target_normalization=flag)
        model.compile("adam", "mse")
        model.fit(X, y, epochs=40, batch_size=16, verbose=0)
        rmse[flag] = np.sqrt(np.mean((model.predict(X)[:, 0] - y) ** 2))
    assert model.target_normalizer.mean == pytest.approx([y.mean()])
    assert rmse[True] < 0.2 * y.std() and rmse[False] > 5 * y.std()


def _identity(backend, **kwargs):
    """A float32 1-1 linear layer of weight 1 and bias 0, trained (if at all) at a rate too small to move it."""
    model = fn.Sequential(kwargs.pop("layers", []) + [fn.Dense(1, input_dim=1)], backend=backend, seed=0, **kwargs)
    model.set_weights([np.ones((1, 1)), np.zeros(1)])
    model.compile(fn.optimizers.SGD(learning_rate=1e-12), "mse")
    return model


def _losses(model, X, y):
    """evaluate's loss, and fit's training and validation losses of one epoch."""
    history = model.fit(X, y, epochs=1, batch_size=50, shuffle=False, verbose=0, validation_data=(X, y))
    return [model.evaluate(X, y)["loss"], history.history["loss"][0], history.history["val_loss"][0]]


@pytest.mark.parametrize("offset, spread", [(1e6, 1.0), (1.7e9, 100.0)], ids=["1e6", "timestamps"])
def test_float64_data_far_from_zero_is_standardized_before_the_float32_cast(backend, offset, spread):
    """Float64 values around 1e6 (or timestamps around 1.7e9) are standardized in float64,
    then cast: a float32 model sees them within float32 rounding of the exact standardized
    values (cast first, 1e6 + x rounds to 1/16, 0.05 standard deviations here)."""
    rng = np.random.default_rng(0)
    raw = offset + spread * rng.normal(size=(200, 1))
    exact = (raw - raw.mean()) / raw.std()
    inputs = _identity(backend, layers=[fn.Normalization().adapt(raw)])
    np.testing.assert_allclose(inputs.predict(raw), exact, rtol=0, atol=1e-6)
    assert max(_losses(inputs, raw, exact)) < 1e-12
    targets = _identity(backend, target_normalization=True)
    targets.target_normalizer.adapt(raw)
    assert max(_losses(targets, exact, raw)) < 1e-12
    # float32 input keeps the float32 path: cast first (what the caller chose), no extra pass
    rounded = raw.astype(np.float32)
    expected = (rounded - np.float32(raw.mean())) / np.float32(raw.std())
    np.testing.assert_array_equal(inputs.predict(rounded), expected)


def test_target_statistics_come_from_the_training_rows_of_the_first_fit(data):
    X, y = data
    model = _regressor(X, "numpy", "float64", target_normalization=True)
    model.fit(X, y, epochs=1, verbose=0, validation_split=0.25)
    np.testing.assert_allclose(model.target_normalizer.mean, y[:225].mean(axis=0))
    before = model.target_normalizer.mean.copy()
    model.fit(X + 1, y + 100, epochs=1, verbose=0)  # continued training keeps the scale
    np.testing.assert_array_equal(model.target_normalizer.mean, before)


def test_save_load_and_onnx_keep_the_statistics(data, tmp_path, backend):
    X, y = data
    model = _regressor(X, backend, "float32", target_normalization=True)
    model.fit(X, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = fn.load_model(tmp_path / "m.fastnn")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.input_normalizer.variance, model.input_normalizer.variance)
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    loaded.fit(X, y, epochs=1, verbose=0)  # resumes on the same scale


@pytest.mark.parametrize("form", ["axis=-1", "axis=None", "scalar statistics", "per-feature statistics"])
def test_every_form_round_trips_through_a_file(data, tmp_path, form):
    X, y = data
    norm = {"axis=-1": lambda: fn.Normalization().adapt(X),
            "axis=None": lambda: fn.Normalization(axis=None).adapt(X),
            "scalar statistics": lambda: fn.Normalization(mean=0.5, variance=2.0),
            "per-feature statistics": lambda: fn.Normalization(mean=X.mean(0), variance=X.var(0))}[form]()
    model = fn.Sequential([norm, fn.Dense(2, input_dim=5)], backend="numpy", seed=0)
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.fastnn")
    loaded = fn.load_model(tmp_path / "m.fastnn")
    assert loaded.input_normalizer.axis == norm.axis
    assert loaded.input_normalizer.count == norm.count  # adapt's count of values (0 for given statistics)
    assert loaded.input_normalizer.mean.shape == norm.mean.shape
    np.testing.assert_array_equal(loaded.input_normalizer.variance, norm.variance)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_an_unadapted_layer_saves_and_loads(tmp_path):
    model = fn.Sequential([fn.Normalization(axis=None), fn.Dense(2, input_dim=3)], seed=0)
    model.save(tmp_path / "m.fastnn")
    loaded = fn.load_model(tmp_path / "m.fastnn")
    assert loaded.input_normalizer.axis is None and not loaded.input_normalizer.adapted


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_graph_includes_both_normalizations(data, dtype, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    X, y = data
    model = _regressor(X, "numpy", dtype, target_normalization=True)
    model.fit(X, y, epochs=2, verbose=0)
    model.export_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": X.astype(dtype)})[0]
    # the outputs are in y's units (hundreds): compare relative to them
    np.testing.assert_allclose(out, model.predict(X), rtol=0, atol=1e-5 * np.abs(y).max())


@pytest.mark.parametrize("call, message", [
    (lambda X, y: fn.Sequential([fn.Dense(2, input_dim=5), fn.Normalization()]),
     "Normalization layer standardizes the model's inputs, so it must come first"),
    (lambda X, y: fn.Sequential([fn.Normalization().adapt(X), fn.Dense(2, input_dim=4)]),
     "input_dim: the first layer expects 4 inputs but the Normalization layer was adapted to 5"),
    (lambda X, y: fn.Sequential(target_normalization="yes"), "target_normalization: expected True or False"),
    (lambda X, y: fn.Sequential([fn.Dense(2, activation="softmax", input_dim=5)], target_normalization=True)
     .compile("adam", "sparse_categorical_crossentropy"), "target_normalization standardizes regression targets"),
])
def test_bad_models_are_clear_errors(data, call, message):
    X, y = data
    with pytest.raises((TypeError, ValueError), match=message):
        call(X, y)


def test_fit_with_an_unadapted_layer_says_to_adapt(data):
    X, y = data
    model = fn.Sequential([fn.Normalization(), fn.Dense(2)], seed=0)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"input_normalizer: .* call adapt\(X\)"):
        model.fit(X, y, verbose=0)


def test_a_stranger_file_with_bad_statistics_is_refused(data, tmp_path):
    X, y = data
    model = _regressor(X, "numpy", "float32")
    model.save(tmp_path / "m.fastnn")
    with np.load(tmp_path / "m.fastnn") as f:
        arrays = dict(f)
    arrays["input_variance"] = -arrays["input_variance"] - 1
    with open(tmp_path / "bad.fastnn", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="input_variance: expected values >= 0"):
        fn.load_model(tmp_path / "bad.fastnn")
    del arrays["input_variance"]
    with open(tmp_path / "missing.fastnn", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="input_variance missing"):
        fn.load_model(tmp_path / "missing.fastnn")


def test_errors_name_the_input_and_the_first_fit(data):
    """A NaN in X is X's, not the layer's; target_normalization's statistics come from fit."""
    X, y = data
    model = fn.Sequential([fn.Normalization().adapt(X), fn.Dense(1, input_dim=5)], backend="numpy", seed=0)
    model.compile("adam", "mse")
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^X: contains 1 NaN"):
        model.predict(bad)
    regressor = fn.Sequential([fn.Dense(2, input_dim=5)], backend="numpy", seed=0, target_normalization=True)
    regressor.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"target_normalization learns them from the targets of the first fit\(\)"):
        regressor.predict(X)
    regressor.fit(X, y, epochs=1, verbose=0)
    assert regressor.predict(X).shape == (len(X), 2)

"""Bad input gives a clear ValueError/TypeError naming the argument, the
expected and the received value -- never a silent broadcast or a crash."""
import numpy as np
import pytest

import fastnn as fn


@pytest.fixture
def model(backend):
    m = fn.Sequential([fn.Dense(6, activation="relu", input_dim=4), fn.Dense(3, activation="softmax")],
                      backend=backend, seed=0)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


X = np.random.default_rng(0).standard_normal((10, 4))
Y = np.arange(10) % 3


def test_wrong_feature_count(model):
    for call in (lambda: model.fit(X[:, :3], Y, verbose=0), lambda: model.predict(X[:, :3]),
                 lambda: model.evaluate(np.hstack([X, X]), Y)):
        with pytest.raises(ValueError, match=r"X: expected 4 features.*got shape \(10, (3|8)\)"):
            call()


def test_length_mismatch(model):
    with pytest.raises(ValueError, match=r"y: expected 10 targets to match X, got 9"):
        model.fit(X, Y[:9], verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight: expected shape \(10,\), got shape \(3,\)"):
        model.fit(X, Y, sample_weight=np.ones(3), verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf(model, bad):
    Xb = X.copy()
    Xb[3, 2] = bad
    with pytest.raises(ValueError, match=r"X: contains 1 NaN or infinite"):
        model.fit(Xb, Y, verbose=0)
    with pytest.raises(ValueError, match=r"X: contains 1 NaN or infinite"):
        model.predict(Xb)
    reg = fn.Sequential([fn.Dense(1, input_dim=4)])
    reg.compile(optimizer="sgd", loss="mse")
    yb = np.ones(10)
    yb[0] = bad
    with pytest.raises(ValueError, match=r"y: contains 1 NaN or infinite"):
        reg.fit(X, yb, verbose=0)


def test_labels_out_of_range(model):
    with pytest.raises(ValueError, match=r"y: labels must be integers in \[0, 3\).*got values in \[0, 5\]"):
        model.fit(X, np.arange(10) % 6, verbose=0)
    with pytest.raises(ValueError, match=r"y: labels must be integers in \[0, 3\).*\[-1, 1\]"):
        model.fit(X, Y - 1, verbose=0)
    with pytest.raises(ValueError, match="non-integer"):
        model.fit(X, Y + 0.5, verbose=0)
    with pytest.raises(ValueError, match=r"use 'categorical_crossentropy'"):
        model.fit(X, np.eye(3)[Y], verbose=0)


def test_binary_targets_outside_unit_interval():
    m = fn.Sequential([fn.Dense(1, activation="sigmoid", input_dim=4)])
    m.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"y: binary_crossentropy expects targets in \[0, 1\]"):
        m.fit(X, np.arange(10), verbose=0)


def test_wrong_target_shape_is_not_broadcast():
    m = fn.Sequential([fn.Dense(2, input_dim=4)])
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"y: expected shape \(10, 2\) for a 2-unit output layer, got shape \(10,\)"):
        m.fit(X, np.ones(10), verbose=0)
    with pytest.raises(ValueError, match=r"y: expected shape \(10, 2\).*got shape \(10, 3\)"):
        m.fit(X, np.ones((10, 3)), verbose=0)


def test_empty_data(model):
    with pytest.raises(ValueError, match=r"X: expected at least 1 sample, got shape \(0, 4\)"):
        model.fit(np.empty((0, 4)), np.empty(0), verbose=0)
    with pytest.raises(ValueError, match=r"X: expected at least 1 sample"):
        model.predict(np.empty((0, 4)))


def test_non_numeric_arrays(model):
    with pytest.raises(TypeError, match=r"X: expected numeric data, got dtype <U"):
        model.fit(np.full((10, 4), "a"), Y, verbose=0)
    with pytest.raises(TypeError, match=r"X: expected numeric data, got an array of Python objects"):
        model.predict(np.array([[object()] * 4] * 2))
    with pytest.raises(TypeError, match=r"X: expected real numbers, got complex"):
        model.predict(X + 1j)
    with pytest.raises(TypeError, match=r"y: expected numeric data"):
        model.fit(X, np.array(["a"] * 10), verbose=0)
    import scipy.sparse

    with pytest.raises(TypeError, match="y: sparse matrices are not supported"):  # X may be sparse, y not
        model.fit(X, scipy.sparse.csr_matrix(np.eye(3)[np.arange(10) % 3]), verbose=0)
    with pytest.raises(ValueError, match=r"X: expected 4 features \(columns\), got shape \(10, 5\)"):
        model.predict(scipy.sparse.random(10, 5, density=0.5, format="csr"))
    with pytest.raises(TypeError, match=r"X: expected a sparse matrix of real numbers, got dtype complex128"):
        model.predict(scipy.sparse.csr_matrix(X + 1j))
    bad = scipy.sparse.csr_matrix(X)
    bad.indices[0] = 99  # a stranger's matrix: column 99 of 4
    with pytest.raises(ValueError, match=r"X: not a valid sparse matrix \(indices: expected values in \[0, 4\), "
                                         r"got values in \[0, 99\]\)"):
        model.predict(bad)
    inf = scipy.sparse.csr_matrix(X)
    inf.data[3] = np.inf
    with pytest.raises(ValueError, match=r"X: contains 1 NaN or infinite value"):
        model.predict(inf)


def test_unusual_but_valid_csr_matrices_read_as_their_canonical_form(model):
    """Values stored past indptr[-1] (belonging to no row, their indices unchecked),
    unsigned indices and big-endian values: the same predictions as the plain CSR."""
    import scipy.sparse as sp

    plain = sp.csr_matrix(X)
    nnz = plain.nnz
    junk = plain.copy()  # scipy's constructor would prune the extra values; a stranger's need not be
    junk.data, junk.indices = np.r_[plain.data, 7.0, 8.0], np.r_[plain.indices, 99, -5].astype(np.int32)
    odd = sp.csr_matrix((plain.data.astype(">f8"), plain.indices.astype(np.uint32), plain.indptr), shape=X.shape)
    expected = model.predict(plain)
    for m in (junk, odd):
        np.testing.assert_array_equal(model.predict(m), expected)
    assert junk.data.size == nnz + 2  # the caller's matrix is left as it was
    model.fit(junk, Y, verbose=0, epochs=1)


def _corrupt_sparse(kind):
    """A 10 x 4 sparse matrix in format ``kind`` whose index arrays break one rule."""
    import scipy.sparse as sp

    fmt, array = kind.split("_")
    make = getattr(sp, f"{fmt}_{array}")
    m = make(np.eye(10, 4) + 1)
    if fmt == "coo":
        m.row[1] = 10  # row 10 of 10: scipy's conversion to CSR drops the entry
        return m, r"row: expected values in \[0, 10\), got values in \[0, 10\]"
    if fmt == "csc":
        m.indices[1] = 12  # row 12 of 10: scipy's conversion to CSR writes past its buffers
        return m, r"indices: expected values in \[0, 10\), got values in \[0, 12\]"
    m.indptr[2] = 0  # CSR: rows out of order
    return m, r"indptr: expected non-decreasing values from 0"


@pytest.mark.parametrize("kind", ["csc_matrix", "csc_array", "coo_matrix", "coo_array", "csr_matrix", "csr_array"])
def test_corrupt_sparse_matrices_are_refused_before_conversion(model, kind):
    bad, message = _corrupt_sparse(kind)
    with pytest.raises(ValueError, match=r"X: not a valid sparse matrix \(" + message):
        model.predict(bad)
    with pytest.raises(ValueError, match=r"X: not a valid sparse matrix \(" + message):
        model.fit(bad, Y, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data\[0\]: not a valid sparse matrix \(" + message):
        model.fit(X, Y, validation_data=(bad, Y), verbose=0)


def test_one_dimensional_X(model):
    with pytest.raises(ValueError, match=r"X: expected a 2-D array \(n_samples, n_features\), got shape \(4,\).*reshape"):
        model.predict(X[0])
    with pytest.raises(ValueError, match=r"X: expected a 2-D array.*got shape \(2, 5, 4\)"):
        model.predict(np.zeros((2, 5, 4)))


def test_loss_that_does_not_fit_the_output_layer():
    relu_out = fn.Sequential([fn.Dense(3, activation="relu", input_dim=4)])
    with pytest.raises(ValueError, match=r"loss: sparse_categorical_crossentropy needs probabilities.*got activation 'relu'"):
        relu_out.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    one_unit = fn.Sequential([fn.Dense(1, activation="sigmoid", input_dim=4)])
    with pytest.raises(ValueError, match=r"at least 2 units.*got 1.*binary_crossentropy"):
        one_unit.compile(optimizer="sgd", loss="categorical_crossentropy")
    softmax_one = fn.Sequential([fn.Dense(1, activation="softmax", input_dim=4)])
    with pytest.raises(ValueError, match="1-unit softmax"):
        softmax_one.compile(optimizer="sgd", loss="mse")


def test_using_the_model_before_building_or_compiling():
    unbuilt = fn.Sequential([fn.Dense(3, activation="softmax")])
    with pytest.raises(fn.NotBuiltError, match=r"predict: the model has no weights yet.*input_dim"):
        unbuilt.predict(X)
    with pytest.raises(ValueError, match="get_weights: the model has no weights"):
        unbuilt.get_weights()
    built = fn.Sequential([fn.Dense(3, activation="softmax", input_dim=4)])
    for call in (lambda: built.fit(X, Y, verbose=0), lambda: built.evaluate(X, Y)):
        with pytest.raises(ValueError, match=r"not compiled; call model.compile"):
            call()
    with pytest.raises(ValueError, match="no layers"):
        fn.Sequential().compile(optimizer="sgd", loss="mse")


@pytest.mark.parametrize("make, error, message", [
    (lambda: fn.initializers.RandomNormal(stddev=-1), ValueError, r"stddev: expected a finite number >= 0, got -1.0"),
    (lambda: fn.initializers.RandomNormal(stddev=np.inf), ValueError, r"stddev: expected a finite number >= 0, got inf"),
    (lambda: fn.initializers.RandomNormal(mean=np.nan), ValueError, r"mean: expected a finite number, got nan"),
    (lambda: fn.initializers.RandomNormal(mean="0"), TypeError, r"mean: expected a number, got str '0'"),
    (lambda: fn.initializers.Constant(-np.inf), ValueError, r"value: expected a finite number, got -inf"),
    (lambda: fn.initializers.RandomUniform(1.0, 0.0), ValueError, r"maxval: expected >= minval \(1.0\), got 0.0"),
    (lambda: fn.initializers.RandomUniform(-1e308, 1e308), ValueError,
     r"minval, maxval: expected a range of finite width, got \[-1e\+308, 1e\+308\]"),
    (lambda: fn.Sequential([fn.Dense(2, input_dim=3, kernel_initializer=fn.initializers.RandomNormal(stddev=1e300))]),
     ValueError, r"mean, stddev: initial weights up to .* overflow float32"),
])
def test_bad_initializer_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_layer_and_model_arguments():
    with pytest.raises(ValueError, match=r"units: expected a positive integer, got 0"):
        fn.Dense(0)
    with pytest.raises(TypeError, match=r"units: expected a positive integer, got float 3.5"):
        fn.Dense(3.5)
    with pytest.raises(ValueError, match=r"dtype: expected 'float32' or 'float64', got 'int32'"):
        fn.Sequential(dtype="int32")
    with pytest.raises(ValueError, match=r"backend: expected one of .*'fortran'"):
        fn.Sequential(backend="fortran")
    with pytest.raises(TypeError, match="layer: expected a fastnn layer"):
        fn.Sequential(["dense"])
    with pytest.raises(ValueError, match=r"input_dim: layer 1 expects 5 inputs but the previous layer has 3 units"):
        fn.Sequential([fn.Dense(3, input_dim=2), fn.Dense(2, input_dim=5)])
    with pytest.raises(ValueError, match=r"alpha: expected a finite number >= 0, got -1.0"):
        fn.activations.LeakyReLU(alpha=-1)


def test_bad_fit_arguments(model):
    with pytest.raises(ValueError, match=r"batch_size: expected a positive integer or None \(full batch\), got 0"):
        model.fit(X, Y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match=r"epochs: expected an integer >= 0, got -1"):
        model.fit(X, Y, epochs=-1, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split: expected a float in \[0, 1\), got 1.5"):
        model.fit(X, Y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match=r"verbose: expected 0, 1, 2, True, False or 'auto', got 3"):
        model.fit(X, Y, verbose=3)
    with pytest.raises(ValueError, match="sample_weight: expected non-negative"):
        model.fit(X, Y, sample_weight=-np.ones(10), verbose=0)
    with pytest.raises(TypeError, match=r"callbacks\[0\]: expected a Callback instance, got builtin_function"):
        model.fit(X, Y, callbacks=[print], verbose=0)
    with pytest.raises(TypeError, match="callbacks: expected a list of Callback instances, got str"):
        model.fit(X, Y, callbacks="EarlyStopping", verbose=0)
    with pytest.raises(ValueError, match="shuffle: expected True or False, got 'batch'"):
        model.fit(X, Y, shuffle="batch", verbose=0)


def test_validation_weights_are_named_as_such(model):
    with pytest.raises(ValueError, match=r"^validation_data\[2\]: expected shape \(10,\), got shape \(5,\)"):
        model.fit(X, Y, validation_data=(X, Y, np.ones(5)), verbose=0)
    with pytest.raises(ValueError, match=r"^validation_data\[2\]: expected at least one positive weight, got all zeros"):
        model.fit(X, Y, validation_data=(X, Y, np.zeros(10)), verbose=0)
    with pytest.raises(ValueError, match=r"^validation_data\[2\]: expected non-negative weights"):
        model.fit(X, Y, validation_data=(X, Y, -np.ones(10)), verbose=0)


def test_bad_optimizer_hyperparameters():
    with pytest.raises(ValueError, match=r"learning_rate: expected a value in \(0"):
        fn.optimizers.SGD(learning_rate=-0.1)
    with pytest.raises(ValueError, match=r"momentum: expected a value in \[0.0, 1.0\], got 1.5"):
        fn.optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="nesterov: Nesterov momentum needs momentum > 0"):
        fn.optimizers.SGD(nesterov=True)
    with pytest.raises(ValueError, match=r"beta_1: expected a value in \[0.0, 1.0\)"):
        fn.optimizers.Adam(beta_1=1.0)


def test_set_weights_checks_count_and_shapes(model):
    ws = model.get_weights()
    with pytest.raises(ValueError, match=r"weights: expected 4 arrays"):
        model.set_weights(ws[:3])
    ws[2] = np.zeros((3, 6))
    with pytest.raises(ValueError, match=r"weights\[2\]: expected shape \(6, 3\), got \(3, 6\)"):
        model.set_weights(ws)
    ws = model.get_weights()
    ws[1] = np.full(6, np.nan)
    with pytest.raises(ValueError, match=r"weights\[1\]: contains 6 NaN"):
        model.set_weights(ws)


def test_values_that_overflow_float32_are_not_called_nan_or_infinite(model):
    Xb = X.copy()
    Xb[2, 1] = -1e39
    for call in (lambda: model.fit(Xb, Y, verbose=0), lambda: model.predict(Xb), lambda: model.evaluate(Xb, Y)):
        with pytest.raises(ValueError, match=r"X: 1 value\(s\) overflow float32: largest magnitude 1e\+39 "
                                             r"exceeds float32's maximum 3\.40282e\+38"):
            call()
    reg = fn.Sequential([fn.Dense(1, input_dim=4)], seed=0)
    reg.compile(optimizer="sgd", loss="mse")
    big = np.ones(10)
    big[4] = 5e40
    with pytest.raises(ValueError, match=r"y: 1 value\(s\) overflow float32: largest magnitude 5e\+40"):
        reg.fit(X, big, verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight: 1 value\(s\) overflow float32"):
        reg.fit(X, np.ones(10), sample_weight=big, verbose=0)
    wide = fn.Sequential([fn.Dense(1, input_dim=4)], dtype="float64", seed=0)
    assert wide.predict(Xb).shape == (10, 1)  # float64 holds 1e39: no error


def test_masked_arrays_with_masked_values_are_refused(model):
    masked_X = np.ma.masked_array(X, mask=np.zeros_like(X, bool))
    masked_X[3, 0] = np.ma.masked
    with pytest.raises(ValueError, match=r"X: a masked array with 1 masked value\(s\); .*X\.filled"):
        model.fit(masked_X, Y, verbose=0)
    with pytest.raises(ValueError, match=r"X: a masked array with 1 masked value"):
        model.predict(masked_X)
    masked_Y = np.ma.masked_equal(Y, 2)
    with pytest.raises(ValueError, match=rf"y: a masked array with {np.sum(Y == 2)} masked value"):
        model.fit(X, masked_Y, verbose=0)
    weights = np.ma.masked_less(np.linspace(0, 1, 10), 0.05)
    with pytest.raises(ValueError, match=r"sample_weight: a masked array with 1 masked value"):
        model.fit(X, Y, sample_weight=weights, verbose=0)
    model.fit(np.ma.masked_array(X), np.ma.masked_array(Y), verbose=0)  # nothing masked: fine


def test_set_weights_refuses_values_that_overflow_the_model_dtype(model):
    ws = model.get_weights()
    ws[0] = ws[0].astype(np.float64)
    ws[0][1, 2] = 1e39
    with pytest.raises(ValueError, match=r"weights\[0\]: 1 value\(s\) overflow float32: largest magnitude 1e\+39"):
        model.set_weights(ws)
    assert np.isfinite(model.get_weights()[0]).all()


@pytest.mark.parametrize("make,message", [
    (lambda: fn.callbacks.EarlyStopping(patience="a"), r"patience: expected an integer >= 0, got 'a'"),
    (lambda: fn.callbacks.EarlyStopping(patience=1.5), r"patience: expected an integer >= 0, got 1.5"),
    (lambda: fn.callbacks.EarlyStopping(min_delta=None), r"min_delta: expected a number >= 0, got None"),
    (lambda: fn.callbacks.EarlyStopping(min_delta=float("nan")), r"min_delta: expected a number >= 0, got nan"),
    (lambda: fn.callbacks.LossPlateauStopping(tol=-1), r"tol: expected a number >= 0, got -1"),
    (lambda: fn.callbacks.LossPlateauStopping(patience=-1), r"patience: expected an integer >= 0, got -1"),
    (lambda: fn.callbacks.ReduceLROnPlateau(patience=-1), r"patience: expected an integer >= 0, got -1"),
    (lambda: fn.callbacks.ReduceLROnPlateau(cooldown=0.5), r"cooldown: expected an integer >= 0, got 0.5"),
    (lambda: fn.callbacks.ReduceLROnPlateau(factor="x"), r"factor: expected a number > 0, got 'x'"),
    (lambda: fn.callbacks.ReduceLROnPlateau(min_lr=-1.0), r"min_lr: expected a number >= 0, got -1.0"),
    (lambda: fn.callbacks.GradientNormStopping(tol="small"), r"tol: expected a number > 0, got 'small'"),
    (lambda: fn.callbacks.WeightChangeStopping(tol=0), r"tol: expected a number > 0, got 0"),
])
def test_callback_arguments_are_checked_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()
    with pytest.raises(TypeError, match="monitor: expected the name of a logged quantity, got 3"):
        fn.callbacks.EarlyStopping(monitor=3)


def test_x_without_columns_is_named_as_x():
    model = fn.Sequential([fn.Dense(2)], backend="numpy")
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"X: expected at least 1 feature column, got shape \(5, 0\)"):
        model.fit(np.ones((5, 0)), np.ones((5, 2)), verbose=0)
    assert not model.built

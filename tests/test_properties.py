"""Property-based tests: whatever the input, fastnn gives a correct result or a clean,
documented error (ValueError / TypeError; FileNotFoundError for a missing file) --
never another exception type, a crash, or a model that predicts NaN.

Hypothesis draws the inputs. The example counts below keep this file to about half a minute;
``FASTNN_HYPOTHESIS_EXAMPLES`` scales them (e.g. 10 for a long local hunt).
"""
import io
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn as fn
from fastnn.datasets._idx import parse_idx

SCALE = float(os.environ.get("FASTNN_HYPOTHESIS_EXAMPLES", "1"))
CLEAN = (ValueError, TypeError)


def budget(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


activation_names = st.sampled_from(["relu", "tanh", "sigmoid", "softmax", "linear", "elu", "leaky_relu",
                                    "gelu", "swish", "softplus", None, "relux", "", 3, 1.5])
units = st.one_of(st.integers(-2, 12), st.sampled_from([1.5, "4", None, True, 10**12]))
losses = st.sampled_from(["mse", "mae", "binary_crossentropy", "categorical_crossentropy",
                          "sparse_categorical_crossentropy", "half_squared_error", "hinge", None, 3])
optimizers = st.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "adamw", None,
                              fn.optimizers.SGD(0.1, momentum=0.9), fn.optimizers.Adam(1e-2)])
metric_lists = st.lists(st.sampled_from(["accuracy", "mse", "mae", "f1"]), max_size=2)


@budget(400)
@given(layer_units=st.lists(units, min_size=1, max_size=3), acts=st.lists(activation_names, min_size=3, max_size=3),
       input_dim=st.one_of(st.integers(-1, 6), st.none()), loss=losses, optimizer=optimizers, metrics=metric_lists,
       backend=st.sampled_from(fn.backends.available() + ["gpu"]), dtype=st.sampled_from(["float32", "float64", "int8"]))
def test_building_and_compiling_a_model(layer_units, acts, input_dim, loss, optimizer, metrics, backend, dtype):
    try:
        layers = [fn.Dense(u, activation=a, input_dim=input_dim if i == 0 else None)
                  for i, (u, a) in enumerate(zip(layer_units, acts))]
        model = fn.Sequential(layers, backend=backend, dtype=dtype, seed=0)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    except CLEAN:
        return
    assert model.compiled


def _small_classifier(backend, dtype, n_in=3, k=3):
    model = fn.Sequential([fn.Dense(5, activation="tanh", input_dim=n_in), fn.Dense(k, activation="softmax")],
                          backend=backend, dtype=dtype, seed=1)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


any_dtype = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.bool_, np.uint8])
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.floats(-1e3, 1e3), st.integers(-5, 5))


@budget(300)
@given(X=hnp.arrays(any_dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6)),
       y=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=6), elements=values),
       backend=st.sampled_from(fn.backends.available()), dtype=st.sampled_from(["float32", "float64"]),
       batch_size=st.one_of(st.none(), st.integers(-1, 8)), epochs=st.integers(0, 2))
def test_fit_on_arbitrary_arrays(X, y, backend, dtype, batch_size, epochs):
    model = _small_classifier(backend, dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # divergence is reported as a warning
            model.fit(X, y, batch_size=batch_size, epochs=epochs, verbose=0)
    except CLEAN:
        return
    # It trained: the model stays finite and predicts finite probabilities.
    assert all(np.isfinite(w).all() for w in model.get_weights())
    P = model.predict(np.asarray(X, dtype=np.float64).reshape(len(X), -1))
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-3)


@budget(300)
@given(X=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=7), elements=values),
       backend=st.sampled_from(fn.backends.available()), dtype=st.sampled_from(["float32", "float64"]),
       batch_size=st.one_of(st.none(), st.integers(-1, 9)))
def test_predict_on_arbitrary_arrays(X, backend, dtype, batch_size):
    model = _small_classifier(backend, dtype)
    try:
        P = model.predict(X, batch_size=batch_size)
    except CLEAN:
        assume(True)
        return
    assert P.shape == (X.shape[0], 3) and P.dtype == np.dtype(dtype)
    assert np.isfinite(P).all()


@budget(150)
@given(X=hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(3)), elements=st.floats(-1e6, 1e6)),
       labels=st.lists(st.integers(0, 2), min_size=12, max_size=12), lr=st.floats(1e-4, 1e4),
       backend=st.sampled_from(fn.backends.available()))
def test_training_never_leaves_non_finite_weights(X, labels, lr, backend):
    """fit's guarantee: finite weights and optimizer state, and finite outputs on the
    last batch it trained on (other rows may still overflow float32 after wild steps)."""
    model = fn.Sequential([fn.Dense(6, activation="relu", input_dim=3), fn.Dense(3, activation="softmax")],
                          backend=backend, seed=2)
    model.compile(fn.optimizers.SGD(lr, momentum=0.9), "sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            model.fit(X, np.array(labels[: len(X)]), epochs=3, batch_size=4, shuffle=False, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(np.isfinite(s).all() for s in model.optimizer.get_state())
    last = X[(len(X) - 1) // 4 * 4:]
    assert np.isfinite(model.predict(last)).all()


@budget(250)
@given(data=st.binary(max_size=200), ndim=st.one_of(st.none(), st.integers(0, 4)))
def test_idx_parser_on_arbitrary_bytes(data, ndim):
    try:
        parse_idx(data, ndim=ndim)
    except CLEAN:
        pass


@budget(250)
@given(header=st.tuples(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]), st.integers(0, 4)),
       dims=st.lists(st.integers(0, 2**31 - 1), min_size=0, max_size=4), payload=st.binary(max_size=64))
def test_idx_parser_on_crafted_headers(header, dims, payload):
    code, n = header
    data = bytes([0, 0, code, n]) + b"".join(d.to_bytes(4, "big") for d in dims[:n]) + payload
    try:
        a = parse_idx(data)
    except CLEAN:
        return
    assert a.ndim == n and a.size * a.itemsize == len(payload)


@pytest.fixture(scope="module")
def saved_model_bytes(tmp_path_factory):
    model = _small_classifier("numpy", "float32")
    model.fit(np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 3, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("model") / "m.fastnn"
    model.save(path)
    return path.read_bytes()


@budget(300)
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_load_model_on_damaged_files(saved_model_bytes, tmp_path_factory, edits, cut):
    data = bytearray(saved_model_bytes)
    for where, byte in edits:
        data[int(where * len(data))] = byte
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path_factory.mktemp("damaged") / "m.fastnn"
    path.write_bytes(bytes(data))
    try:
        model = fn.load_model(path)
    except ValueError:
        return
    # A flip that loads must give a usable model.
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(model.predict(np.zeros((2, 3)))).all()

"""Hand-computed examples from the teaching material, on every backend and dtype."""
import numpy as np
import pytest

import fastnn as fn


def test_worked_example_one_sgd_step(backend, dtype):
    """2-2-1 ReLU network, no bias, E = ½(O - t)², t = 1, η = 0.1.

    h = relu(W1 x) = (relu(0.5·1 + 0.7·3), relu(0.5·-2 + 0.7·4)) = (2.6, 1.8)
    O = 0.5·2.6 + 0.3·1.8 = 1.84;  E = ½ · 0.84² = 0.3528
    dE/dW2 = 0.84 · h = (2.184, 1.512)      → W2 = (0.2816, 0.1488)
    dE/dW1[neuron 1] = 0.84·0.5·x = (0.21, 0.294)   → (0.979, 2.9706)
    dE/dW1[neuron 2] = 0.84·0.3·x = (0.126, 0.1764) → (-2.0126, 3.98236)
    """
    model = fn.Sequential([
        fn.Dense(2, activation="relu", use_bias=False, input_dim=2),
        fn.Dense(1, activation="linear", use_bias=False),
    ], backend=backend, dtype=dtype)
    W1_rows_are_neurons = np.array([[1.0, 3.0], [-2.0, 4.0]])
    model.set_weights([W1_rows_are_neurons.T, np.array([[0.5], [0.3]])])
    model.compile(optimizer=fn.optimizers.SGD(learning_rate=0.1), loss="half_squared_error")
    x, t = np.array([[0.5, 0.7]]), np.array([1.0])
    tol = 1e-6 if dtype == "float32" else 1e-12

    assert model.predict(x)[0, 0] == pytest.approx(1.84, abs=tol)
    assert model.evaluate(x, t)["loss"] == pytest.approx(0.3528, abs=tol)
    history = model.fit(x, t, epochs=1, batch_size=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(0.3528, abs=tol)

    W1, W2 = model.get_weights()
    np.testing.assert_allclose(W2[:, 0], [0.2816, 0.1488], atol=tol)
    np.testing.assert_allclose(W1.T, [[0.979, 2.9706], [-2.0126, 3.98236]], atol=tol)
    assert W1.dtype == np.dtype(dtype)


def test_xnor_from_hand_set_logic_gates(backend):
    """XNOR(x1, x2) = OR(AND(x1, x2), NOT x1 AND NOT x2) with sigmoid neurons."""
    model = fn.Sequential([
        fn.Dense(2, activation="sigmoid", input_dim=2),  # [AND, NOT-AND-NOT]
        fn.Dense(1, activation="sigmoid"),  # OR
    ], backend=backend)
    model.set_weights([
        np.array([[20.0, -20.0], [20.0, -20.0]]),  # columns: AND, NOT x1 AND NOT x2
        np.array([-30.0, 10.0]),
        np.array([[20.0], [20.0]]),  # OR
        np.array([-10.0]),
    ])
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    hidden = fn.activations.get("sigmoid")(X @ model.get_weights()[0] + model.get_weights()[1])
    np.testing.assert_array_equal(hidden > 0.5, [[False, True], [False, False], [False, False], [True, False]])
    out = model.predict(X)[:, 0]
    np.testing.assert_array_equal(out > 0.5, [True, False, False, True])
    assert np.all(np.abs(out - [1, 0, 0, 1]) < 1e-4)

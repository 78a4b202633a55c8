"""Learning outcomes on real (bundled) data sets."""
import numpy as np
from sklearn.datasets import load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn as fn


def test_wine_alcohol_proline_three_sigmoid_units(backend):
    data = load_wine()
    keep = data.target < 2
    cols = [data.feature_names.index("alcohol"), data.feature_names.index("proline")]
    X, y = data.data[keep][:, cols], data.target[keep]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    model = fn.Sequential([
        fn.Dense(3, activation="sigmoid", input_dim=2),
        fn.Dense(1, activation="sigmoid"),
    ], backend=backend, seed=0)
    model.compile(optimizer=fn.optimizers.Adam(learning_rate=0.05), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(scaler.transform(X_train), y_train, epochs=100, batch_size=16, verbose=0)
    assert model.evaluate(scaler.transform(X_test), y_test)["accuracy"] >= 0.9


def test_digits_reaches_95_percent(backend):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
    model = fn.Sequential([
        fn.Dense(64, activation="relu", input_dim=64, kernel_initializer="he_normal"),
        fn.Dense(10, activation="softmax"),
    ], backend=backend, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X_train, y_train, epochs=30, batch_size=32, validation_split=0.1, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95
    probs = model.predict(X_test)
    assert probs.shape == (len(X_test), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_full_batch_and_stochastic_gradient_descent_both_learn():
    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16.0
    y = y[:300]
    for batch_size, epochs, lr in [(None, 150, 0.5), (1, 3, 0.05)]:
        model = fn.Sequential([fn.Dense(32, activation="tanh", input_dim=64), fn.Dense(10, activation="softmax")],
                              backend="numpy", seed=0)
        model.compile(optimizer=fn.optimizers.SGD(lr), loss="sparse_categorical_crossentropy", metrics=["acc"])
        history = model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
        assert history.params["steps"] == (1 if batch_size is None else 300)
        assert history.history["acc"][-1] > 0.85, (batch_size, history.history["acc"][-1])

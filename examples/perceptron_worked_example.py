"""One step of gradient descent on a 2-2-1 network, by hand and by fastnn.

The network has two ReLU hidden neurons and one linear output, no biases:

    x = (0.5, 0.7)      W1 = [[ 1, 3],     (row i = the weights of hidden neuron i)
                              [-2, 4]]
    h = relu(W1 x)      O = W2 . h         W2 = (0.5, 0.3)
    E = 1/2 (O - t)^2   with target t = 1 and learning rate 0.1

We work the forward pass, the error, the backward pass and the update out
in plain NumPy, print every number, and check that fastnn trains its model
to the same weights.  fastnn stores a layer's weights as (n_in, n_out), so
its W1 is the transpose of the matrix above.

    python examples/perceptron_worked_example.py
"""
import argparse
import tempfile

import numpy as np

import fastnn as fn

# The numbers the worked example arrives at.
EXPECTED = {
    "output": 1.84,
    "error": 0.3528,
    "W2": [0.2816, 0.1488],
    "W1": [[0.979, 2.9706], [-2.0126, 3.98236]],
}


def fmt(values):
    """Numbers as short decimals: (0.2816, 0.1488)."""
    values = np.atleast_1d(np.asarray(values, dtype=float))
    if values.ndim == 2:
        return "[" + ", ".join(fmt(row) for row in values) + "]"
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def by_hand(x, W1, W2, t, lr):
    """Forward pass, error, backward pass and update, printed step by step."""
    print("Forward pass")
    z = W1 @ x
    h = np.maximum(z, 0.0)
    for i in range(2):
        print(f"  hidden {i + 1}: z = {W1[i, 0]:g}*{x[0]:g} + {W1[i, 1]:g}*{x[1]:g} = {z[i]:.6g}"
              f"  ->  relu -> h = {h[i]:.6g}")
    O = W2 @ h
    print(f"  output:   O = {W2[0]:g}*{h[0]:.6g} + {W2[1]:g}*{h[1]:.6g} = {O:.6g}")
    E = 0.5 * (O - t) ** 2
    print(f"  error:    E = 1/2 ({O:.6g} - {t:g})^2 = {E:.6g}")

    print("Backward pass")
    delta_out = O - t  # dE/dO; the output is linear, so also dE/dz_out
    print(f"  dE/dO        = O - t = {delta_out:.6g}")
    dW2 = delta_out * h
    print(f"  dE/dW2       = dE/dO * h = {fmt(dW2)}")
    delta_hidden = delta_out * W2 * (z > 0)  # through W2 (old values) and relu'
    print(f"  dE/dz_hidden = dE/dO * W2 * relu'(z) = {fmt(delta_hidden)}")
    dW1 = np.outer(delta_hidden, x)
    print(f"  dE/dW1       = dE/dz_hidden x^T = {fmt(dW1)}")

    print(f"Update (learning rate {lr:g})")
    new_W2 = W2 - lr * dW2
    new_W1 = W1 - lr * dW1
    print(f"  W2 <- W2 - {lr:g} dE/dW2 = {fmt(new_W2)}")
    print(f"  W1 <- W1 - {lr:g} dE/dW1 = {fmt(new_W1)}")
    return O, E, new_W1, new_W2


def with_fastnn(x, W1, W2, t, lr, backend):
    """The same network in fastnn, trained for one step of one sample."""
    model = fn.Sequential([
        fn.Dense(2, activation="relu", use_bias=False, input_dim=2),
        fn.Dense(1, activation="linear", use_bias=False),
    ], backend=backend, dtype="float64")
    model.set_weights([W1.T, W2.reshape(2, 1)])  # fastnn: (n_in, n_out)
    model.compile(optimizer=fn.optimizers.SGD(learning_rate=lr), loss="half_squared_error")
    X, y = x.reshape(1, 2), np.array([t])
    O = float(model.predict(X)[0, 0])
    E = model.evaluate(X, y)["loss"]
    model.fit(X, y, epochs=1, batch_size=1, verbose=0)
    fitted_W1, fitted_W2 = model.get_weights()
    return O, E, fitted_W1.T, fitted_W2[:, 0], model.backend


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity; this example is instant")
    parser.add_argument("--out", default=tempfile.gettempdir(), help="unused: this example makes no plots")
    parser.add_argument("--backend", default="auto", help="fastnn backend (auto, numpy, numba, cython)")
    args = parser.parse_args(argv)

    x = np.array([0.5, 0.7])
    W1 = np.array([[1.0, 3.0], [-2.0, 4.0]])
    W2 = np.array([0.5, 0.3])
    t, lr = 1.0, 0.1

    O, E, new_W1, new_W2 = by_hand(x, W1, W2, t, lr)
    fn_O, fn_E, fn_W1, fn_W2, backend = with_fastnn(x, W1, W2, t, lr, args.backend)

    print(f"\nfastnn (backend {backend}, float64) after one SGD step:")
    print(f"  output {fn_O:.6g}, error {fn_E:.6g}")
    print(f"  W2 = {fmt(fn_W2)}")
    print(f"  W1 = {fmt(fn_W1)}   (rows = neurons; fastnn stores the transpose)")

    for name, mine, theirs in [("output", O, fn_O), ("error", E, fn_E), ("W2", new_W2, fn_W2), ("W1", new_W1, fn_W1)]:
        check(np.allclose(mine, EXPECTED[name], atol=1e-9),
              f"by hand, {name} = {fmt(mine)}, expected {fmt(EXPECTED[name])}")
        check(np.allclose(theirs, EXPECTED[name], atol=1e-9),
              f"fastnn gives {name} = {fmt(theirs)}, expected {fmt(EXPECTED[name])}")
    print("\nOK: fastnn and the hand computation agree with the worked example.")
    return {"backend": backend, "output": fn_O, "error": fn_E, "W1": fn_W1.tolist(), "W2": fn_W2.tolist()}


if __name__ == "__main__":
    main()

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

With --plots, four figures of the same network (PNG, in --out or the folder
given):

- the error as a function of W2[0], the other weights fixed: a parabola
  whose slope at the current value 0.5 is dE/dW2[0], lowest at
  W2[0] = (1 - 0.3*1.8)/2.6 = 0.1769;
- the output over 30 epochs of SGD on this one example (learning rate
  0.01, slow enough to watch), falling from 1.84 towards the target 1;
- the error over those epochs on a log scale (a straight line: it shrinks
  by the same factor every step);
- the change in error from one epoch to the next.

    python examples/perceptron_worked_example.py [--plots [DIR]]
"""
import argparse
import os
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


def training_plots(x, W1, W2, t, backend, folder, lr=0.01, epochs=30):
    """Train the network on its one example for ``epochs`` steps; save the four plots."""
    from fastnn import plot

    model = fn.Sequential([
        fn.Dense(2, activation="relu", use_bias=False, input_dim=2),
        fn.Dense(1, activation="linear", use_bias=False),
    ], backend=backend, dtype="float64")
    model.set_weights([W1.T, W2.reshape(2, 1)])
    model.compile(optimizer=fn.optimizers.SGD(learning_rate=lr), loss="half_squared_error")
    X, y = x.reshape(1, 2), np.array([t])

    paths = [os.path.join(folder, name) for name in
             ("loss_vs_W2_0.png", "output_over_epochs.png", "loss_log_scale.png", "loss_change.png")]
    # Before training: the error along W2[0], the other three weights fixed.
    fig = plot.plot_loss_vs_weight(model, X, y, layer=1, index=(0, 0), span=(-0.5, 1.0), n=601, path=paths[0],
                                   title="error as a function of W2[0]")
    sweep = fig.axes[0].lines[0]
    best_w2_0 = float(sweep.get_xdata()[np.argmin(sweep.get_ydata())])

    recorder = fn.callbacks.OutputRecorder(X)
    history = model.fit(X, y, epochs=epochs, batch_size=1, verbose=0, callbacks=[recorder])
    outputs = recorder.as_array()[:, 0, 0]
    plot.plot_outputs_over_epochs(recorder, targets=[t], labels=["x = (0.5, 0.7)"], path=paths[1],
                                  title="output over epochs")
    plot.plot_history(history, log_scale=True, path=paths[2], title="error (log scale)")
    plot.plot_loss_change(history, path=paths[3], title="change in error between epochs")

    losses = history.history["loss"]
    print(f"\nPlots (SGD, learning rate {lr:g}, {epochs} epochs on the one example):")
    exact = (t - W2[1] * max(W1[1] @ x, 0.0)) / max(W1[0] @ x, 0.0)
    print(f"  error along W2[0] is lowest at W2[0] = {best_w2_0:.4g} (exactly {exact:.4g}; now {W2[0]:g})")
    print("  output by epoch: " + ", ".join(f"{e}: {outputs[e]:.4g}" for e in (0, 1, 2, 5, 10, epochs)))
    print(f"  error: epoch 1 {losses[0]:.4g}, epoch {epochs} {losses[-1]:.3g}")
    for path in paths:
        print(f"saved {path}")
    return {"best_W2_0": best_w2_0, "outputs": outputs.tolist(), "losses": list(losses), "plots": paths}


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity; this example is instant")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots of --plots")
    parser.add_argument("--plots", nargs="?", const="", default=None, metavar="DIR",
                        help="also train for 30 epochs and save the plots (in DIR, default --out)")
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
    outcome = {"backend": backend, "output": fn_O, "error": fn_E, "W1": fn_W1.tolist(), "W2": fn_W2.tolist()}
    if args.plots is not None:
        try:
            outcome.update(training_plots(x, W1, W2, t, args.backend, args.plots or args.out))
        except ImportError as exc:
            print(f"\n(no plots: {exc})")
            outcome["plots"] = []
    return outcome


if __name__ == "__main__":
    main()

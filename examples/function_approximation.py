"""Approximating 1-D functions: which activation, initialization and depth,
and what happens outside the training range.

Three targets, each sampled at 256 points of [-3, 3]:

    2x + 5                      a line
    2 sin(x) + 5                a smooth curve
    -x if x < -1, 1 if -1 <= x < 1, x if x >= 1      a piecewise-linear "bathtub"

Six networks learn each one with SGD and Nesterov momentum on the mean
squared error: one hidden layer of 32 linear, ReLU or tanh units; two hidden
layers of ReLU (He or Glorot initialization) or tanh units.  We measure the
error on [-3, 3] and on [-6, 6], where the networks never saw data:

- a network of linear units is a linear function, however many layers: it
  fits the line perfectly (and extends it perfectly) but nothing else;
- ReLU networks are piecewise linear: beyond the data they continue in
  straight lines, which is exactly right for the bathtub;
- tanh units saturate: beyond the data tanh networks level off.

    python examples/function_approximation.py [--quick] [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as fn
from fastnn import plot
from fastnn.datasets import make_function_data

TARGETS = {
    "2x + 5": lambda x: 2 * x + 5,
    "2 sin(x) + 5": lambda x: 2 * np.sin(x) + 5,
    "piecewise": lambda x: np.where(x < -1, -x, np.where(x < 1, 1.0, x)),
}

# name -> (activation, hidden layer widths, kernel initializer)
NETWORKS = {
    "linear, 1 hidden": ("linear", (32,), "glorot_uniform"),
    "relu, 1 hidden": ("relu", (32,), "he_normal"),
    "tanh, 1 hidden": ("tanh", (32,), "glorot_uniform"),
    "relu, 2 hidden, He": ("relu", (32, 32), "he_normal"),
    "relu, 2 hidden, Glorot": ("relu", (32, 32), "glorot_uniform"),
    "tanh, 2 hidden": ("tanh", (32, 32), "glorot_uniform"),
}

TRAIN_RANGE, WIDE_RANGE = (-3.0, 3.0), (-6.0, 6.0)


def build(activation, hidden, initializer, seed):
    layers = [fn.Dense(hidden[0], activation=activation, input_dim=1, kernel_initializer=initializer)]
    layers += [fn.Dense(units, activation=activation, kernel_initializer=initializer) for units in hidden[1:]]
    layers.append(fn.Dense(1, kernel_initializer=initializer))  # linear output for regression
    model = fn.Sequential(layers, seed=seed)
    model.compile(optimizer=fn.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True), loss="mse")
    return model


def mse(model, f, interval, n=400):
    x = np.linspace(*interval, n, dtype=np.float32).reshape(-1, 1)
    return float(np.mean((model.predict(x) - f(x)) ** 2))


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 epochs instead of 400")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 150 if args.quick else 400

    results, plots = {}, []
    for target_name, f in TARGETS.items():
        X, y = make_function_data(f, 256, *TRAIN_RANGE, seed=args.seed)
        print(f"\n== {target_name}: 256 points on {list(TRAIN_RANGE)}, {epochs} epochs ==")
        print(f"  {'network':<24} {'loss@5':>8} {'MSE [-3,3]':>11} {'MSE [-6,6]':>11} "
              f"{'f(6)':>6} {'net(6)':>7}")
        models = {}
        for net_name, (activation, hidden, initializer) in NETWORKS.items():
            model = build(activation, hidden, initializer, args.seed)
            history = model.fit(X, y, epochs=epochs, batch_size=16, verbose=0)
            at_6 = float(model.predict(np.array([[6.0]], np.float32))[0, 0])
            row = {"mse_train_range": mse(model, f, TRAIN_RANGE), "mse_wide_range": mse(model, f, WIDE_RANGE),
                   "loss_after_5_epochs": history.history["loss"][4], "at_6": at_6}
            results[(target_name, net_name)] = row
            models[net_name] = model
            print(f"  {net_name:<24} {row['loss_after_5_epochs']:8.4f} {row['mse_train_range']:11.4f} "
                  f"{row['mse_wide_range']:11.3f} {float(f(6.0)):6.2f} {at_6:7.2f}")
        try:
            x = np.linspace(*WIDE_RANGE, 400)
            low, high = float(np.min(f(x))), float(np.max(f(x)))
            margin = 0.3 * (high - low) + 1
            path = os.path.join(args.out, "function_" + "".join(c for c in target_name if c.isalnum()) + ".png")
            plot.plot_function_fit(x, f, models, path=path, train_range=TRAIN_RANGE, X_train=X, y_train=y,
                                   ylim=(low - margin, high + margin), title=f"{target_name}: fits and extrapolation")
            plots.append(path)
        except ImportError as exc:
            print(f"  (no plot: {exc})")

    print()
    for path in plots:
        print(f"saved {path}")

    line, sine, tub = "2x + 5", "2 sin(x) + 5", "piecewise"
    check(results[(line, "linear, 1 hidden")]["mse_wide_range"] < 1e-2,
          "linear units should fit and extend 2x + 5 exactly")
    for target in (sine, tub):
        check(results[(target, "linear, 1 hidden")]["mse_train_range"] > 0.2,
              f"linear units cannot fit {target}, yet the MSE is small")
        for net in ("relu, 1 hidden", "tanh, 1 hidden", "relu, 2 hidden, He", "tanh, 2 hidden"):
            error = results[(target, net)]["mse_train_range"]
            check(error < 0.05, f"{net} should fit {target} on [-3, 3]; MSE {error:.4f}")
    relu_gap = abs(results[(tub, "relu, 1 hidden")]["at_6"] - 6.0)
    tanh_gap = abs(results[(tub, "tanh, 1 hidden")]["at_6"] - 6.0)
    check(relu_gap < tanh_gap, f"on the piecewise function ReLU should extrapolate better than tanh "
                               f"(error at x = 6: relu {relu_gap:.2f}, tanh {tanh_gap:.2f})")
    print("\nOK: linear units fit only the line; ReLU and tanh fit all three on [-3, 3]; "
          "outside it ReLU continues in straight lines and tanh levels off.")
    return {"results": {f"{t} | {n}": row for (t, n), row in results.items()}, "epochs": epochs, "plots": plots}


if __name__ == "__main__":
    main()

"""A hard 1-D function: how many neurons, how many epochs, which initializer.

The target (the teaching material's own "hard" function is not part of this
repository, so this one stands in for it; it is hard for the same reasons):

    f(x) = sin(3x) + step(x >= 1) + 0.5 |x + 1|

on [-3, 3], 512 points: a sine of three periods (many bends to place), a
jump of height 1 at x = 1 (no continuous function fits it exactly; the
network needs a steep ramp, that is large weights) and a kink at x = -1
(easy for ReLU, which is itself a kink).

Networks with one hidden layer of ReLU units and a linear output learn it
with Adam (learning rate 0.005, batches of 32) on the mean squared error,
measured on 1,000 points of [-3, 3].  Each number is the mean over a few
seeds, as one seed can be lucky or unlucky.

- Neurons: 1 to 256 hidden units, a fixed number of epochs.  Each ReLU unit
  adds one bend; a handful fit little more than the kink and the trend.
- Epochs: one network of 128 units (64 with --quick), checked along its
  training; the sine and the step come late.
- Initializers: Glorot (Xavier) uniform and normal versus He uniform and
  normal, same width and epochs.  He's larger weights are meant for ReLU
  units (Glorot's keep the variance of tanh units), which matters in deep
  networks; with one hidden layer the differences are of the size of the
  spread between seeds, which the table prints beside them.

    python examples/function_approximation_sweeps.py [--quick] [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as fn
from fastnn import plot
from fastnn.datasets import make_function_data

RANGE = (-3.0, 3.0)


def hard_function(x):
    """sin(3x) + step(x >= 1) + 0.5 |x + 1|: a sine, a jump at 1 and a kink at -1."""
    x = np.asarray(x)
    return np.sin(3 * x) + (x >= 1).astype(x.dtype) + 0.5 * np.abs(x + 1)


SETTINGS = {  # quick: the test-suite's run; full: the material's sweeps
    "quick": {"widths": [2, 8, 32, 128], "width_epochs": 200, "checkpoints": [10, 50, 200, 600],
              "epoch_width": 64, "inits": ["glorot_uniform", "glorot_normal", "he_normal"],
              "init_width": 32, "init_epochs": 150, "seeds": 2},
    "full": {"widths": [1, 2, 4, 8, 16, 32, 64, 128, 256], "width_epochs": 600,
             "checkpoints": [10, 25, 50, 100, 200, 400, 800, 1600], "epoch_width": 128,
             "inits": ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal"],
             "init_width": 32, "init_epochs": 400, "seeds": 3},
}


def build(width, initializer, seed):
    model = fn.Sequential([fn.Dense(width, activation="relu", input_dim=1, kernel_initializer=initializer),
                           fn.Dense(1, kernel_initializer=initializer)], seed=seed)
    model.compile(optimizer=fn.optimizers.Adam(learning_rate=0.005), loss="mse")
    return model


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer widths, epochs, initializers and seeds")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = SETTINGS["quick" if args.quick else "full"]
    seeds = [args.seed + i for i in range(cfg["seeds"])]

    X, y = make_function_data(hard_function, 512, *RANGE, seed=args.seed)
    x_eval = np.linspace(*RANGE, 1000, dtype=np.float32).reshape(-1, 1)
    f_eval = hard_function(x_eval)
    variance = float(np.var(f_eval))  # the MSE of always answering the mean

    def mse(model):
        return float(np.mean((model.predict(x_eval) - f_eval) ** 2))

    print(f"target sin(3x) + step(x >= 1) + 0.5|x + 1| on {list(RANGE)}, 512 points; "
          f"MSE of predicting its mean: {variance:.3f}")
    print(f"one hidden ReLU layer, Adam 0.005, batches of 32; MSE on 1,000 points, mean of {len(seeds)} seeds")

    # ---- neurons
    print(f"\n== neurons ({cfg['width_epochs']} epochs, He normal) ==")
    by_width, width_fits = {}, {}
    for width in cfg["widths"]:
        errors = []
        for seed in seeds:
            model = build(width, "he_normal", seed)
            model.fit(X, y, epochs=cfg["width_epochs"], batch_size=32, verbose=0)
            errors.append(mse(model))
            if seed == seeds[0]:
                width_fits[f"{width} units"] = model.predict(x_eval)
        by_width[width] = float(np.mean(errors))
        print(f"  {width:>4} units   MSE {by_width[width]:.4f}")

    # ---- epochs: one network per seed, checked along its training
    print(f"\n== epochs ({cfg['epoch_width']} units, He normal) ==")
    per_seed, epoch_fits = [], {}
    for seed in seeds:
        model, done, errors = build(cfg["epoch_width"], "he_normal", seed), 0, []
        for epochs in cfg["checkpoints"]:
            model.fit(X, y, epochs=epochs, initial_epoch=done, batch_size=32, verbose=0)
            done = epochs
            errors.append(mse(model))
            if seed == seeds[0]:
                epoch_fits[f"after {epochs} epochs"] = model.predict(x_eval)
        per_seed.append(errors)
    by_epochs = dict(zip(cfg["checkpoints"], np.mean(per_seed, axis=0).tolist()))
    for epochs, error in by_epochs.items():
        print(f"  {epochs:>5} epochs   MSE {error:.4f}")

    # ---- initializers
    print(f"\n== initializers ({cfg['init_width']} units, {cfg['init_epochs']} epochs) ==")
    by_init, init_fits = {}, {}
    for init in cfg["inits"]:
        errors, early = [], []
        for seed in seeds:
            model = build(cfg["init_width"], init, seed)
            history = model.fit(X, y, epochs=cfg["init_epochs"], batch_size=32, verbose=0)
            errors.append(mse(model))
            early.append(history.history["loss"][9])
            if seed == seeds[0]:
                init_fits[init] = model.predict(x_eval)
        by_init[init] = {"mse": float(np.mean(errors)), "loss_after_10_epochs": float(np.mean(early)),
                         "spread": float(np.ptp(errors))}
        print(f"  {init:<15} MSE {by_init[init]['mse']:.4f} (seeds differ by {by_init[init]['spread']:.4f})   "
              f"loss after 10 epochs {by_init[init]['loss_after_10_epochs']:.4f}")

    plots = []
    for name, fits, title in (("neurons", width_fits, f"{cfg['width_epochs']} epochs"),
                              ("epochs", epoch_fits, f"{cfg['epoch_width']} units"),
                              ("initializers", init_fits, f"{cfg['init_width']} units, {cfg['init_epochs']} epochs")):
        try:
            path = os.path.join(args.out, f"hard_function_{name}.png")
            plot.plot_function_fit(x_eval, f_eval, fits, path=path, X_train=X, y_train=y,
                                   title=f"hard function: {name} ({title})")
            plots.append(path)
        except ImportError as exc:
            print(f"(no plot: {exc})")
            break
    if plots:
        print()
    for path in plots:
        print(f"saved {path}")

    narrow, wide = by_width[cfg["widths"][0]], by_width[cfg["widths"][-1]]
    first, last = by_epochs[cfg["checkpoints"][0]], by_epochs[cfg["checkpoints"][-1]]
    check(wide < 0.5 * narrow, f"{cfg['widths'][-1]} units (MSE {wide:.4f}) should fit far better than "
                               f"{cfg['widths'][0]} (MSE {narrow:.4f})")
    check(last < 0.5 * first, f"after {cfg['checkpoints'][-1]} epochs (MSE {last:.4f}) the fit should be far "
                              f"better than after {cfg['checkpoints'][0]} (MSE {first:.4f})")
    for init, row in by_init.items():
        check(row["mse"] < 0.5 * variance, f"{init}: MSE {row['mse']:.4f} is not far below {variance:.3f}")
    best = min(by_init, key=lambda k: by_init[k]["mse"])
    print(f"\nOK: more units and more epochs fit the hard function better "
          f"(MSE {narrow:.3f} -> {wide:.3f} over widths, {first:.3f} -> {last:.3f} over epochs); "
          f"lowest MSE with {best}.")
    return {"variance": variance, "by_width": by_width, "by_epochs": by_epochs, "by_init": by_init,
            "plots": plots}


if __name__ == "__main__":
    main()

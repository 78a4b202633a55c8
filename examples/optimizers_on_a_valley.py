"""Optimizers on a long, narrow valley, and learning-rate schedules.

The loss L(w) = 0.1 w1^2 + 2 w2^2 is 20 times steeper across the valley (w2)
than along it (w1).  Plain gradient descent must keep its step below
2 / 4 = 0.5 or it diverges across the valley, and such a step shrinks w1 by
only 1 - 0.2 * 0.4 = 8% per step along it.  Momentum builds up speed along the valley floor; AdaGrad, RMSprop
and Adam scale each coordinate's step by its own gradient history.

The optimizers are fastnn's own objects, driven by hand on a 2-vector:
``opt.build([w])`` creates their state, ``opt.apply(kernels, [w], [grad])``
makes one update in place with the NumPy backend's kernels.

The second part plots the learning-rate schedules of ``fastnn.schedules``
over 100 epochs.

    python examples/optimizers_on_a_valley.py [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as fn
from fastnn import plot

START = (-9.0, 2.0)


def loss(w1, w2):
    return 0.1 * w1**2 + 2.0 * w2**2


def gradient(w):
    return np.array([0.2 * w[0], 4.0 * w[1]])


def optimizers():
    """The optimizers to race, with learning rates that suit this valley."""
    return {
        "GD, lr 0.4": fn.optimizers.SGD(learning_rate=0.4),
        "momentum 0.9, lr 0.05": fn.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        "Nesterov 0.9, lr 0.05": fn.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
        "AdaGrad, lr 1.0": fn.optimizers.Adagrad(learning_rate=1.0),
        "RMSprop, lr 0.3": fn.optimizers.RMSprop(learning_rate=0.3),
        "Adam, lr 0.5": fn.optimizers.Adam(learning_rate=0.5),
    }


def descend(optimizer, steps, kernels):
    """Weights after each of ``steps`` updates from START, as a (steps + 1, 2) array."""
    w = np.array(START)
    optimizer.build([w])
    path = [w.copy()]
    for _ in range(steps):
        optimizer.apply(kernels, [w], [gradient(w)])
        path.append(w.copy())
    return np.array(path)


def schedules(epochs):
    """One of each schedule, stepping once per epoch, all starting from 0.1."""
    s = fn.schedules
    return {
        "constant": s.Constant(0.1),
        "step: x0.5 every 20": s.StepDecay(0.1, factor=0.5, decay_steps=20),
        "exponential: x0.96 per epoch": s.ExponentialDecay(0.1, decay_rate=0.96, decay_steps=1),
        "polynomial: 0.1 / (1 + 0.05 t)": s.PolynomialDecay(0.1, alpha=0.05, power=1.0, decay_steps=1),
        "cosine": s.CosineDecay(0.1, decay_steps=epochs),
        "warmup 10, then cosine": s.Warmup(s.CosineDecay(0.1, decay_steps=epochs - 10), warmup_steps=10),
    }


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity; this example is instant")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    args = parser.parse_args(argv)
    kernels = fn.backends.resolve("numpy")
    start_loss = loss(*START)

    print(f"L(w) = 0.1 w1^2 + 2 w2^2 from w = {START} (L = {start_loss:.2f}), {args.steps} steps")
    print(f"  {'optimizer':<24} {'L after 10':>10} {'L after 30':>10} {'final L':>10}   final w")
    paths, final = {}, {}
    for name, optimizer in optimizers().items():
        path = descend(optimizer, args.steps, kernels)
        paths[name], final[name] = path, float(loss(*path[-1]))
        print(f"  {name:<24} {loss(*path[min(10, args.steps)]):10.4f} {loss(*path[min(30, args.steps)]):10.4f} "
              f"{final[name]:10.2e}   ({path[-1][0]:.3f}, {path[-1][1]:.3f})")
    too_big = descend(fn.optimizers.SGD(learning_rate=0.55), args.steps, kernels)
    diverged = float(loss(*too_big[-1]))
    print(f"  GD with lr 0.55 > 0.5 oscillates ever wider across the valley: L = {diverged:.3g}")

    epochs = 100
    lrs = {name: [schedule(t) for t in range(epochs + 1)] for name, schedule in schedules(epochs).items()}
    print(f"\n  {'learning rate at epoch':<32} {0:>7} {10:>7} {50:>7} {100:>7}")
    for name, values in lrs.items():
        print(f"  {name:<32} {values[0]:7.4f} {values[10]:7.4f} {values[50]:7.4f} {values[100]:7.4f}")

    plots = []
    try:
        path = os.path.join(args.out, "optimizers_valley.png")
        plot.plot_optimizer_paths(loss, paths, path=path, minimum=(0, 0),
                                  title="L(w) = 0.1 w1² + 2 w2²: paths of the optimizers")
        plots.append(path)
        path = os.path.join(args.out, "lr_schedules.png")
        plot.plot_schedules(schedules(epochs), epochs + 1, path=path, title="Learning-rate schedules")
        plots.append(path)
        for path in plots:
            print(f"saved {path}")
    except ImportError as exc:
        print(f"(no plots: {exc})")

    for name, value in final.items():
        check(value < 0.01 * start_loss, f"{name} left the loss at {value:.3g} after {args.steps} steps")
    check(diverged > start_loss, f"GD with lr 0.55 should diverge on this valley, but L = {diverged:.3g}")
    check(lrs["step: x0.5 every 20"][20] == 0.05 and lrs["warmup 10, then cosine"][0] == 0.0
          and abs(lrs["warmup 10, then cosine"][10] - 0.1) < 1e-12 and abs(lrs["cosine"][epochs]) < 1e-12,
          "a schedule does not give the documented values")
    print("\nOK: every optimizer brings the loss below 1% of its start; GD with too large a step diverges.")
    return {"final_loss": final, "diverged_loss": diverged, "schedules": lrs, "plots": plots}


if __name__ == "__main__":
    main()

"""Random labels: a big enough network memorises labels that mean nothing.

Zhang et al. (2017), "Understanding deep learning requires rethinking
generalization", in miniature.  The 8x8 digits (scikit-learn's copy, always
offline) are split into a training part and 797 test images.  One network
learns the true training labels; an identical one learns the same images
with their labels shuffled, so a label says nothing about its image.

- True labels: training accuracy reaches 100% and test accuracy is high.
- Shuffled labels: with enough hidden units and epochs, training accuracy
  also climbs to (nearly) 100% -- the network memorises every image's label
  -- while test accuracy stays at chance, 10%.  It takes longer: there is no
  pattern to find, only examples to store.

So a training accuracy of 100% says nothing about generalisation; only data
the network never saw does.

    python examples/random_labels.py [--quick] [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as fn
from fastnn import plot
from fastnn.datasets import load_digits

N_TEST = 797
CHANCE = 0.1


def train(X_train, y_train, X_test, y_test, width, epochs, seed):
    """A 64-width-10 ReLU/softmax network fitted with Adam; (model, history)."""
    model = fn.Sequential([fn.Dense(width, activation="relu", input_dim=64), fn.Dense(10, activation="softmax")],
                          seed=seed)
    model.compile(optimizer=fn.optimizers.Adam(learning_rate=0.003), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=32, validation_data=(X_test, y_test),
                        verbose=0)
    return model, history


def first_epoch_reaching(accuracies, level):
    """1-based epoch at which accuracy first reaches ``level``, or None."""
    hits = np.flatnonzero(np.asarray(accuracies) >= level)
    return int(hits[0]) + 1 if hits.size else None


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="300 training images, 256 hidden units, 100 epochs (instead of 1000, 512, 200)")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_train, width, epochs = (300, 256, 100) if args.quick else (1000, 512, 200)

    X, y = load_digits()
    order = np.random.default_rng(args.seed).permutation(len(X))
    X, y = X[order], y[order]
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[-N_TEST:], y[-N_TEST:]
    shuffled = np.random.default_rng([args.seed, 1]).permutation(y_train)
    agree = float(np.mean(shuffled == y_train))
    print(f"8x8 digits: {n_train} training images, {N_TEST} test images; network 64-{width}-10, {epochs} epochs")
    print(f"shuffled labels agree with the true ones on {agree:.1%} of the training images (chance: 10%)\n")

    results, plots = {}, []
    print(f"  {'labels':<10} {'train acc':>9} {'test acc':>9} {'epochs to 90% train':>20}")
    for name, labels in (("true", y_train), ("shuffled", shuffled)):
        model, history = train(X_train, labels, X_test, y_test, width, epochs, args.seed)
        row = {"train_accuracy": model.evaluate(X_train, labels)["accuracy"],
               "test_accuracy": model.evaluate(X_test, y_test)["accuracy"],
               "epochs_to_90": first_epoch_reaching(history.history["accuracy"], 0.9)}
        results[name] = row
        reached = "never" if row["epochs_to_90"] is None else str(row["epochs_to_90"])
        print(f"  {name:<10} {row['train_accuracy']:9.3f} {row['test_accuracy']:9.3f} {reached:>20}")
        try:
            path = os.path.join(args.out, f"random_labels_{name}.png")
            plot.plot_history(history, path=path, metrics=["accuracy"],
                              title=f"{name} labels: training vs test (val_) curves")
            plots.append(path)
        except ImportError as exc:
            print(f"  (no plot: {exc})")

    print()
    for path in plots:
        print(f"saved {path}")
    true, rand = results["true"], results["shuffled"]
    check(true["test_accuracy"] >= 0.85, f"true labels: test accuracy {true['test_accuracy']:.3f} < 0.85")
    check(rand["train_accuracy"] >= 0.9,
          f"shuffled labels: training accuracy {rand['train_accuracy']:.3f} < 0.9; the network did not memorise them")
    check(rand["test_accuracy"] <= CHANCE + 0.1,
          f"shuffled labels: test accuracy {rand['test_accuracy']:.3f} is well above chance ({CHANCE:.0%})")
    print(f"\nOK: on shuffled labels the network reaches {rand['train_accuracy']:.1%} training accuracy by "
          f"memorising, while its test accuracy, {rand['test_accuracy']:.1%}, stays at chance.")
    return {"results": results, "chance": CHANCE, "n_train": n_train, "epochs": epochs, "plots": plots}


if __name__ == "__main__":
    main()

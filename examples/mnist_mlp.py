"""The fast path: a ReLU MLP with Adam on MNIST, timed on every backend.

784-128-10 (and, without --quick, a wider 784-512-512-10), ReLU hidden
layers, softmax output, cross-entropy, Adam, mini-batches of 128, float32.
The same model (same seed, same batches) is trained once per backend that
works here (``fastnn.backends.available()``), and the epoch times are
compared with the NumPy reference backend.  Compilation (Numba) happens in a
warm-up before timing.

Data: real MNIST if its four files are found (``$FASTNN_DATA``, the cache
``~/.cache/fastnn/mnist``, or ``--download``); else the real MNIST test set
alone (10,000 digits, e.g. ``$FASTNN_DATA/mnist-t10k``) split 8,000/2,000;
else Fashion-MNIST (Debian package ``dataset-fashion-mnist``); else
scikit-learn's 8x8 digits enlarged to 28x28.  The output says which.

    python examples/mnist_mlp.py [--quick] [--download] [--epochs N] [--out DIR]
"""
import argparse
import os
import tempfile
import time

import numpy as np

import fastnn as fn
from fastnn import plot
from _mnist_data import load_data  # beside this script

# Test accuracy every backend must reach, by data set (full run, --quick run).
TARGETS = {"MNIST": (0.97, 0.88), "MNIST test set": (0.92, 0.85), "Fashion-MNIST": (0.86, 0.75),
           "8x8 digits": (0.90, 0.80)}


class EpochTimer(fn.callbacks.Callback):
    """Wall-clock seconds of each epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def build(hidden, backend, seed):
    layers = [fn.Dense(hidden[0], activation="relu", input_dim=784, kernel_initializer="he_normal")]
    layers += [fn.Dense(units, activation="relu", kernel_initializer="he_normal") for units in hidden[1:]]
    layers.append(fn.Dense(10, activation="softmax"))
    model = fn.Sequential(layers, backend=backend, dtype="float32", seed=seed)
    model.compile(optimizer=fn.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def time_backends(hidden, data, epochs, batch_size, seed):
    """Train the same model on every backend; {backend: (seconds per epoch, test accuracy, history)}."""
    X_train, y_train, X_test, y_test = data
    results = {}
    for backend in fn.backends.available():
        build(hidden, backend, seed).fit(X_train[:512], y_train[:512], epochs=1, batch_size=batch_size,
                                         verbose=0)  # warm-up: compilation, thread pools, caches
        model, timer = build(hidden, backend, seed), EpochTimer()
        history = model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size, callbacks=[timer],
                            verbose=0)
        accuracy = model.evaluate(X_test, y_test)["accuracy"]
        results[backend] = (float(np.median(timer.seconds)), accuracy, history)
    return results


def report(title, results):
    print(f"\n{title}")
    base = results.get("numpy", (None,))[0]
    print(f"  {'backend':<8} {'s/epoch':>8} {'vs numpy':>9} {'test acc':>9}")
    for backend, (seconds, accuracy, _) in sorted(results.items(), key=lambda item: item[1][0]):
        ratio = f"{base / seconds:.2f}x" if base else "-"
        print(f"  {backend:<8} {seconds:8.3f} {ratio:>9} {accuracy:9.4f}")


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 training images, 2 epochs, 784-128-10 only")
    parser.add_argument("--download", action="store_true", help="download MNIST (11 MB) if it is not found")
    parser.add_argument("--epochs", type=int, default=None, help="default 5, or 2 with --quick")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    name, X_train, y_train, X_test, y_test = load_data(args.download)
    if args.quick:
        X_train, y_train = X_train[:5000], y_train[:5000]
    epochs = args.epochs or (2 if args.quick else 5)
    if name == "8x8 digits":
        epochs *= 10  # 1,437 images: more passes for the same number of steps
    print(f"data: {name}, {len(X_train)} training and {len(X_test)} test images; {epochs} epochs, "
          f"batch {args.batch_size}; backends: {', '.join(fn.backends.available())}")

    architectures = [(128,)] if args.quick else [(128,), (512, 512)]
    outcome = {"dataset": name, "epochs": epochs, "seconds_per_epoch": {}, "accuracy": {}, "speedup_vs_numpy": {},
               "plots": []}
    for hidden in architectures:
        label = "-".join(map(str, (784, *hidden, 10)))
        results = time_backends(hidden, (X_train, y_train, X_test, y_test), epochs, args.batch_size, args.seed)
        report(f"{label}, Adam:", results)
        outcome["seconds_per_epoch"][label] = {b: r[0] for b, r in results.items()}
        outcome["accuracy"][label] = {b: r[1] for b, r in results.items()}
        if "numpy" in results:
            outcome["speedup_vs_numpy"][label] = {b: results["numpy"][0] / r[0] for b, r in results.items()}
        fastest = min(results, key=lambda b: results[b][0])
        try:
            path = os.path.join(args.out, f"mnist_mlp_{label}.png")
            plot.plot_history(results[fastest][2], path=path, title=f"{label} on {name} ({fastest} backend)")
            outcome["plots"].append(path)
            print(f"  saved {path}")
        except ImportError as exc:
            print(f"  (no plot: {exc})")

    target = TARGETS[name][1 if args.quick else 0]
    for label, accuracies in outcome["accuracy"].items():
        for backend, accuracy in accuracies.items():
            check(accuracy >= target, f"{label} on the {backend} backend: test accuracy {accuracy:.4f} "
                                      f"on {name} is below {target}")
    print(f"\nOK: every backend reaches test accuracy >= {target} on {name}")
    return outcome


if __name__ == "__main__":
    main()

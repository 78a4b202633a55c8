"""The digit network of 3Blue1Brown's "But what is a neural network?":
784 inputs, two hidden layers of 16 sigmoid neurons, 10 sigmoid outputs.

It is trained the way the video (and Michael Nielsen's book it follows)
describes: squared error against one-hot targets, stochastic gradient
descent on mini-batches of 10.  Then we look inside:

- each first-layer neuron's 784 weights drawn as a 28x28 image: no neat
  strokes or loops, mostly noise-like blobs;
- what the network answers for images of pure white noise: it names a
  digit, often confidently, because it never learned to say "none".

Data: real MNIST if its four files are found (``$FASTNN_DATA``, the cache
``~/.cache/fastnn/mnist``, or ``--download``); else the real MNIST test set
alone (10,000 digits, e.g. ``$FASTNN_DATA/mnist-t10k``) split 8,000/2,000;
else Fashion-MNIST (Debian package ``dataset-fashion-mnist``); else
scikit-learn's 8x8 digits enlarged to 28x28.  The output says which.

    python examples/mnist_3b1b.py [--quick] [--download] [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as fn
from fastnn import plot
from _mnist_data import load_data  # beside this script

FASHION_LABELS = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                  "ankle boot"]

# Accuracy the run must reach, by data set (full run, --quick run).
TARGETS = {"MNIST": (0.93, 0.85), "MNIST test set": (0.90, 0.85), "Fashion-MNIST": (0.82, 0.72),
           "8x8 digits": (0.85, 0.75)}


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="at most 8,000 training images, 5 epochs")
    parser.add_argument("--download", action="store_true", help="download MNIST (11 MB) if it is not found")
    parser.add_argument("--epochs", type=int, default=None, help="default 30, or 5 with --quick")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the PNG plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    name, X_train, y_train, X_test, y_test = load_data(args.download)
    if args.quick:
        X_train, y_train = X_train[:8000], y_train[:8000]
    epochs = args.epochs or (5 if args.quick else 30)
    if name == "8x8 digits":
        epochs *= 6  # 1,437 images: more passes for the same number of steps
    print(f"data: {name}, {len(X_train)} training and {len(X_test)} test images; {epochs} epochs")

    model = fn.Sequential([
        fn.Dense(16, activation="sigmoid", input_dim=784),
        fn.Dense(16, activation="sigmoid"),
        fn.Dense(10, activation="sigmoid"),
    ], seed=args.seed)
    # Squared error against one-hot targets, plain SGD with mini-batches of 10.
    model.compile(optimizer=fn.optimizers.SGD(learning_rate=3.0), loss="mse", metrics=["accuracy"])
    one_hot = np.eye(10, dtype=np.float32)
    history = model.fit(X_train, one_hot[y_train], epochs=epochs, batch_size=10,
                        validation_data=(X_test, one_hot[y_test]), verbose=2)
    accuracy = float(np.mean(model.predict(X_test).argmax(axis=1) == y_test))
    print(f"test accuracy: {accuracy:.4f}")

    # What does it say about white noise?
    noise = np.random.default_rng(args.seed).random((8, 784), dtype=np.float32)
    outputs = model.predict(noise)
    answers = outputs.argmax(axis=1)
    labels = FASHION_LABELS if name == "Fashion-MNIST" else [str(k) for k in range(10)]
    print("white noise -> answer (activation of that output neuron):")
    for i, (k, out) in enumerate(zip(answers, outputs)):
        print(f"  noise image {i}: {labels[k]}  ({out[k]:.2f}; all outputs {' '.join(f'{v:.2f}' for v in out)})")

    plots = []
    try:
        path = os.path.join(args.out, "mnist_3b1b_weights.png")
        plot.plot_weights_as_images(model.get_weights()[0], path=path,
                                    title=f"First-layer weights, 784-16-16-10 on {name}")
        plots.append(path)
        path = os.path.join(args.out, "mnist_3b1b_noise.png")
        plot.plot_images(noise, shape=(28, 28), path=path, title="White noise and the network's answers",
                         titles=[f"says {labels[k]} ({out[k]:.2f})" for k, out in zip(answers, outputs)])
        plots.append(path)
        path = os.path.join(args.out, "mnist_3b1b_curves.png")
        plot.plot_history(history, path=path)
        plots.append(path)
        for path in plots:
            print(f"saved {path}")
    except ImportError as exc:
        print(f"(no plots: {exc})")

    target = TARGETS[name][1 if args.quick else 0]
    check(accuracy >= target, f"test accuracy {accuracy:.4f} on {name} is below {target}")
    print(f"\nOK: {accuracy:.4f} >= {target} on {name}")
    return {"dataset": name, "accuracy": accuracy, "epochs": epochs, "noise_answers": answers.tolist(),
            "noise_confidence": outputs.max(axis=1).tolist(), "plots": plots}


if __name__ == "__main__":
    main()

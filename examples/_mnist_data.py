"""MNIST-shaped data for the examples, with fallbacks when MNIST is not at hand.

Shared by ``mnist_3b1b.py`` and ``mnist_mlp.py``: full MNIST, else the MNIST
test set split 8,000 / 2,000, else Fashion-MNIST, else scikit-learn's 8x8
digits enlarged to 28x28.  The first value returned names the choice.
"""
import numpy as np

from fastnn.datasets import load_digits, load_fashion_mnist, load_mnist, to_float


def load_data(download=False):
    """(name, X_train, y_train, X_test, y_test): floats in [0, 1], 784 per row, int labels."""
    try:
        (X_train, y_train), (X_test, y_test) = load_mnist(download=download, progress=True)
        return "MNIST", to_float(X_train), y_train.astype(np.int64), to_float(X_test), y_test.astype(np.int64)
    except (FileNotFoundError, OSError, ValueError) as exc:
        reason = "files not found" if isinstance(exc, FileNotFoundError) else str(exc).splitlines()[0]
        print(f"(full MNIST: {reason}; use --download, or put the four files in $FASTNN_DATA)")
    try:
        X, y = load_mnist(split="test", download=False)
        X, y = to_float(X), y.astype(np.int64)
        return "MNIST test set", X[:8000], y[:8000], X[8000:], y[8000:]
    except (FileNotFoundError, OSError, ValueError):
        pass
    try:
        (X_train, y_train), (X_test, y_test) = load_fashion_mnist(download=False)
        return ("Fashion-MNIST", to_float(X_train), y_train.astype(np.int64),
                to_float(X_test), y_test.astype(np.int64))
    except (FileNotFoundError, OSError, ValueError):
        pass
    X, y = load_digits()
    # 8x8 -> 24x24 by repeating each pixel 3x3, then a 2-pixel border: 28x28 like MNIST.
    images = np.pad(np.kron(X.reshape(-1, 8, 8), np.ones((3, 3), X.dtype)), ((0, 0), (2, 2), (2, 2)))
    X = images.reshape(len(X), 784)
    cut = int(0.8 * len(X))
    return "8x8 digits", X[:cut], y[:cut], X[cut:], y[cut:]

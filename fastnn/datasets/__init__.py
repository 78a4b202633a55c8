"""Data sets for examples, tests and benchmarks.

Return conventions
------------------
- Image sets (:func:`load_mnist`, :func:`load_fashion_mnist`) return
  ``(X_train, y_train), (X_test, y_test)`` as the stored uint8 values:
  X of shape (n_samples, 28, 28), y of shape (n_samples,). :func:`to_float`
  turns X into (n_samples, 784) floats in [0, 1].
- Classification sets (:func:`load_digits`, :func:`load_wine`) return
  ``X, y``: X float of shape (n_samples, n_features), y int64 labels of shape
  (n_samples,).
- Regression sets (:func:`load_boston`, :func:`make_function_data`) return
  ``X, y``: both float, X of shape (n_samples, n_features), y of shape
  (n_samples, 1).
- Float outputs are float32 unless ``dtype="float64"`` is asked for.
- No loader splits, shuffles or standardizes; use
  ``sklearn.model_selection.train_test_split`` and
  ``sklearn.preprocessing.StandardScaler`` as needed.

Where files come from
---------------------
File-based loaders search an explicit ``path`` only, if given; otherwise the
folder named by the ``FASTNN_DATA`` environment variable (and per-data-set
sub-folders of it), system copies, and the cache ``~/.cache/fastnn``.
MNIST and Fashion-MNIST are downloaded into the cache when missing, from
``MIRRORS``, with SHA-256 verification. Errors say which folders were searched.
"""
from ._boston import BOSTON_COLUMNS, load_boston
from ._download import DownloadError
from ._idx import read_idx
from ._mnist import MIRRORS, SHA256, load_fashion_mnist, load_mnist, to_float
from ._small import load_digits, load_wine, make_function_data

__all__ = [
    "BOSTON_COLUMNS",
    "DownloadError",
    "MIRRORS",
    "SHA256",
    "load_boston",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_wine",
    "make_function_data",
    "read_idx",
    "to_float",
]

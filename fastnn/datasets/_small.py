"""Small data sets that always work offline: scikit-learn's bundled copies and synthetic data."""
import numpy as np
import sklearn.datasets

from ._common import float_dtype


def load_digits(dtype="float32"):
    """Load scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes).

    Bundled with scikit-learn, so it needs no file and no network.

    Parameters
    ----------
    dtype : {'float32', 'float64'}
        Dtype of ``X``.

    Returns
    -------
    X : ndarray of shape (1797, 64)
        Pixel intensities (0..16 in the source) divided by 16, so in [0, 1];
        each row is an 8x8 image in row-major order.
    y : ndarray of int64, shape (1797,)
        Digit 0..9.
    """
    dtype = float_dtype(dtype)
    bunch = sklearn.datasets.load_digits()
    X = bunch.data.astype(dtype)
    X /= dtype.type(16)
    return X, bunch.target.astype(np.int64)


def load_wine(binary=False, features=None, *, dtype="float32"):
    """Load scikit-learn's wine recognition data (178 wines, 13 features, 3 cultivars).

    Bundled with scikit-learn, so it needs no file and no network. Features
    are unscaled (proline is in the hundreds, hue around 1): standardize them,
    e.g. with ``sklearn.preprocessing.StandardScaler``, before training an MLP.

    Parameters
    ----------
    binary : bool
        Keep only classes 0 and 1 (130 wines), for binary classification.
    features : sequence of str, optional
        Columns to keep, by name and in the order given, e.g.
        ``["alcohol", "proline"]``. Default: all 13, in the order of
        ``sklearn.datasets.load_wine().feature_names``.
    dtype : {'float32', 'float64'}
        Dtype of ``X``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        n_samples is 178, or 130 with ``binary=True``.
    y : ndarray of int64, shape (n_samples,)
        Class 0, 1 or 2 (0 or 1 with ``binary=True``).
    """
    dtype = float_dtype(dtype)
    bunch = sklearn.datasets.load_wine()
    names = list(bunch.feature_names)
    if features is None:
        columns = list(range(len(names)))
    else:
        if isinstance(features, str):
            raise ValueError(f"features must be a list of names, got the string {features!r}")
        if isinstance(features, (set, frozenset, dict)):  # no order for the columns
            raise ValueError(f"features must be a list of names (in column order), got a "
                             f"{type(features).__name__}")
        features = list(np.asarray(features, dtype=object).ravel()) if isinstance(features, np.ndarray) \
            else list(features)
        unknown = [f for f in features if f not in names]
        if unknown or not features:
            raise ValueError(f"features must be a non-empty list of names from {names}, "
                             f"got {list(features)!r}")
        columns = [names.index(f) for f in features]
    keep = bunch.target < 2 if binary else slice(None)
    return bunch.data[keep][:, columns].astype(dtype), bunch.target[keep].astype(np.int64)


def make_function_data(f, n, low, high, *, noise=0.0, seed=None, dtype="float32"):
    """Sample a 1-D function for regression: ``y = f(x) + noise``.

    ``x`` is drawn uniformly from ``[low, high)`` (unsorted; use
    ``np.argsort(X[:, 0])`` to plot), then Gaussian noise of standard
    deviation ``noise`` is added to ``f(x)``. Computed in float64.

    Parameters
    ----------
    f : callable
        Vectorized function: takes x of shape (n,), returns shape (n,) or (n, 1),
        e.g. ``np.sin``.
    n : int
        Number of samples, at least 1.
    low, high : float
        Interval of x, ``low < high``.
    noise : float
        Standard deviation of the additive Gaussian noise, at least 0.
    seed : int or None
        Seed of ``np.random.default_rng``; the same seed gives the same data.
    dtype : {'float32', 'float64'}
        Dtype of both returned arrays.

    Returns
    -------
    X : ndarray of shape (n, 1)
    y : ndarray of shape (n, 1)
    """
    dtype = float_dtype(dtype)
    if not callable(f):
        raise ValueError(f"f must be callable, got {f!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not low < high:
        raise ValueError(f"low must be less than high, got low={low!r}, high={high!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=n)
    y = np.asarray(f(x), dtype=np.float64)
    if y.shape not in ((n,), (n, 1)):
        raise ValueError(f"f(x) must return shape ({n},) or ({n}, 1) for x of shape ({n},), "
                         f"got {y.shape}")
    y = y.reshape(n, 1)
    if noise > 0:
        y = y + rng.normal(0.0, noise, size=(n, 1))
    return x.reshape(n, 1).astype(dtype), y.astype(dtype)

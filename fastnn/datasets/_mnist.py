"""MNIST and Fashion-MNIST from the four standard IDX files.

Local copies (``path``, ``$FASTNN_DATA``, system packages, the cache) are
accepted after a full structural check of each file (IDX header, exact data
length, gzip CRC, expected shapes) rather than by checksum, because
repackaged copies such as Debian's differ from the published archives in the
gzip wrapper only. Downloads are checked against the SHA-256 of the
published archives.
"""
import os

import numpy as np

from ._common import find_file, float_dtype, not_found_message, search_dirs
from ._download import DownloadError, download as _download
from ._idx import read_idx

# Base URLs, tried in order. Each must serve the four files under their
# standard names. Edit this dict (or pass ``mirrors=``) to use another mirror.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

# SHA-256 of the published gzip archives (the files the mirrors serve).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# Sub-folders of $FASTNN_DATA searched ("" is the folder itself) and system copies.
_ENV_SUBDIRS = {"mnist": ("", "mnist", "mnist-t10k"), "fashion-mnist": ("fashion-mnist", "fashion_mnist")}
_SYSTEM_DIRS = {"mnist": (), "fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}

# split -> (images file, labels file, number of examples)
_SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}


def _locate(dataset, filenames, path, cache_dir, download, mirrors, progress):
    """Path of each standard file: found locally, else downloaded into the cache."""
    if path is not None:
        dirs = [os.fsdecode(path)]  # str, bytes or os.PathLike
    else:
        dirs = search_dirs(dataset, _ENV_SUBDIRS[dataset], cache_dir=cache_dir,
                           system_dirs=_SYSTEM_DIRS[dataset])
    # A file may also sit there uncompressed, under its name without ".gz".
    found = {f: find_file([f, f[:-3]], dirs) for f in filenames}
    missing = [f for f, p in found.items() if p is None]
    if not missing:
        return found
    if path is not None:
        hint = "Or leave path=None to search the default folders and download."
        raise FileNotFoundError(not_found_message(dataset, missing, dirs, hint))
    cache = dirs[-1]
    if not download:
        hint = f"Or pass download=True to fetch them into {cache}."
        raise FileNotFoundError(not_found_message(dataset, missing, dirs, hint))
    if mirrors is None:
        mirrors = MIRRORS[dataset]
    bases = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    for f in missing:
        urls = [base.rstrip("/") + "/" + f for base in bases]
        try:
            found[f] = _download(urls, os.path.join(cache, f), SHA256[dataset][f], progress=progress)
        except DownloadError as exc:
            hint = "Downloads go to the last of them."
            raise DownloadError(f"{exc}\n" + not_found_message(dataset, [f], dirs, hint)) from exc
    return found


def _check_pair(X, y, n, images_file, labels_file):
    if X.dtype != np.uint8 or X.shape[1:] != (28, 28) or len(X) != n:
        raise ValueError(f"{images_file!r}: expected uint8 images of shape ({n}, 28, 28), "
                         f"got {X.dtype} {X.shape}")
    if y.dtype != np.uint8 or len(y) != n or y.max(initial=0) > 9:
        raise ValueError(f"{labels_file!r}: expected {n} uint8 labels in 0..9, "
                         f"got {y.dtype} {y.shape} with maximum {y.max(initial=0)}")


def _load(dataset, path, split, cache_dir, download, mirrors, progress):
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    splits = ("train", "test") if split is None else (split,)
    filenames = [f for s in splits for f in _SPLITS[s][:2]]
    paths = _locate(dataset, filenames, path, cache_dir, download, mirrors, progress)
    pairs = []
    for s in splits:
        images_file, labels_file, n = _SPLITS[s]
        X = read_idx(paths[images_file], ndim=3)
        y = read_idx(paths[labels_file], ndim=1)
        _check_pair(X, y, n, paths[images_file], paths[labels_file])
        pairs.append((X, y))
    return tuple(pairs) if split is None else pairs[0]


def load_mnist(path=None, *, split=None, cache_dir=None, download=True, mirrors=None, progress=True):
    """Load the MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28 pixels.

    Files are looked for, in order: in ``path`` only, if given; else in
    ``$FASTNN_DATA`` and its ``mnist/`` and ``mnist-t10k/`` sub-folders, then
    in ``<cache_dir>/mnist/``. Missing files are downloaded into that cache
    folder from ``MIRRORS['mnist']`` (or ``mirrors``) and verified against
    their published SHA-256 (``SHA256['mnist']``). Each file may be
    gzip-compressed (standard name, e.g. ``train-images-idx3-ubyte.gz``) or
    raw (the same name without ``.gz``).

    Parameters
    ----------
    path : str or os.PathLike, optional
        Folder holding the files. When given, no other folder is searched and
        nothing is downloaded.
    split : {None, 'train', 'test'}
        Which part to load; ``None`` loads both.
    cache_dir : str or os.PathLike, optional
        Cache root, default ``~/.cache/fastnn``.
    download : bool
        Download missing files. With False, a missing file is an error.
    mirrors : sequence of str, optional
        Base URLs to try, in order, instead of ``MIRRORS['mnist']``.
    progress : bool
        Show a tqdm progress bar while downloading.

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        For ``split=None``. ``X_*`` is uint8 of shape (n_samples, 28, 28) with
        values 0..255; ``y_*`` is uint8 of shape (n_samples,) with values 0..9.
        Use :func:`to_float` to get (n_samples, 784) floats in [0, 1].
    X, y
        For ``split='train'`` or ``'test'``: that part alone.

    Raises
    ------
    FileNotFoundError
        A file is missing and may not be downloaded; the message lists the
        folders searched.
    DownloadError
        No mirror delivered the file with the right checksum; the message
        gives each mirror's failure and the folders to put the file in.
    ValueError
        A file is corrupt, truncated or not the expected IDX data; the message
        names it. Nothing is returned from a bad file.
    """
    return _load("mnist", path, split, cache_dir, download, mirrors, progress)


def load_fashion_mnist(path=None, *, split=None, cache_dir=None, download=True, mirrors=None,
                       progress=True):
    """Load Fashion-MNIST: Zalando article images in MNIST's format, shapes and dtypes.

    Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
    6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

    Parameters, returns and errors are those of :func:`load_mnist`, with these
    folders searched: ``$FASTNN_DATA/fashion-mnist/``,
    ``$FASTNN_DATA/fashion_mnist/``, Debian's ``/usr/share/datasets/fashion-mnist``
    (package ``dataset-fashion-mnist``), then ``<cache_dir>/fashion-mnist/``;
    downloads come from ``MIRRORS['fashion-mnist']``. ``$FASTNN_DATA`` itself
    is not searched, since the files have the same names as MNIST's.
    """
    return _load("fashion-mnist", path, split, cache_dir, download, mirrors, progress)


def to_float(X, dtype="float32"):
    """Scale uint8 images to [0, 1] and flatten each to one row.

    Parameters
    ----------
    X : ndarray of uint8, shape (n_samples, ...)
        Images as returned by :func:`load_mnist`, e.g. (n_samples, 28, 28).
    dtype : {'float32', 'float64'}
        Output dtype.

    Returns
    -------
    ndarray of shape (n_samples, n_pixels)
        ``X / 255`` in ``dtype``; (n_samples, 784) for MNIST. A new array.
    """
    X = np.asarray(X)
    if X.dtype != np.uint8 or X.ndim < 2:
        raise ValueError(f"X must be a uint8 array of shape (n_samples, ...), got {X.dtype} {X.shape}")
    out = X.reshape(len(X), -1).astype(float_dtype(dtype))
    out /= out.dtype.type(255)
    return out

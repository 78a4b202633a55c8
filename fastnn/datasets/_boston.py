"""Boston housing (Harrison & Rubinfeld, 1978) from a CSV file.

No copy is downloaded: the data set is no longer distributed by scikit-learn,
and the usual public copies differ in layout. Any CSV with the 14 standard
columns is accepted after its header, size and published statistics check out.
"""
import csv
import os

import numpy as np

from ._common import find_file, float_dtype, not_found_message, search_dirs

BOSTON_COLUMNS = ("CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX",
                  "PTRATIO", "B", "LSTAT", "MEDV")
BOSTON_FILENAME = "boston_housing.csv"
_N_ROWS = 506
# Published column means of the data set: a wrong or altered file fails these.
_MEANS = {"CRIM": 3.613524, "RM": 6.284634, "TAX": 408.237154, "MEDV": 22.532806}


def _find(path, cache_dir):
    if path is not None:
        path = os.fsdecode(path)  # str, bytes or os.PathLike
        candidate = os.path.join(path, BOSTON_FILENAME) if os.path.isdir(path) else path
        if not os.path.isfile(candidate):
            raise FileNotFoundError(f"load_boston: no file {candidate!r}")
        return candidate
    dirs = search_dirs("boston", ("", "boston"), cache_dir=cache_dir)
    found = find_file([BOSTON_FILENAME], dirs)
    if found is None:
        hint = "Or pass path= to the CSV file (any name) with the 14 standard columns."
        raise FileNotFoundError(not_found_message("boston", [BOSTON_FILENAME], dirs, hint))
    return found


def _read_checked(filename):
    """(506, 14) float64 array from the CSV, or ValueError naming the file."""
    try:  # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the header
        with open(filename, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{filename!r}: not a UTF-8 text CSV file ({exc.reason} at byte {exc.start})") from None
    if not rows:
        raise ValueError(f"{filename!r} is empty")
    header = tuple(name.strip().upper() for name in rows[0])
    if header != BOSTON_COLUMNS:
        raise ValueError(f"{filename!r}: header must be {','.join(BOSTON_COLUMNS)} "
                         f"(any case), got {','.join(rows[0])}")
    if len(rows) - 1 != _N_ROWS:
        raise ValueError(f"{filename!r}: expected {_N_ROWS} data rows, got {len(rows) - 1}")
    widths = {len(row) for row in rows[1:]}
    if widths != {len(BOSTON_COLUMNS)}:
        raise ValueError(f"{filename!r}: every row needs {len(BOSTON_COLUMNS)} numbers, "
                         f"found rows of {sorted(widths)} fields")
    try:
        data = np.array(rows[1:], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{filename!r}: every row needs {len(BOSTON_COLUMNS)} numbers ({exc})") from exc
    if not np.isfinite(data).all():
        raise ValueError(f"{filename!r}: contains non-finite values")
    if not np.isin(data[:, BOSTON_COLUMNS.index("CHAS")], (0.0, 1.0)).all():
        raise ValueError(f"{filename!r}: CHAS must be 0 or 1")
    for name, published in _MEANS.items():
        mean = data[:, BOSTON_COLUMNS.index(name)].mean()
        if not np.isclose(mean, published, rtol=1e-4, atol=0.0):
            raise ValueError(f"{filename!r}: mean {name} is {mean:.6g}, the Boston housing data "
                             f"has {published:.6g}; the file is not the standard data set")
    return data


def load_boston(path=None, *, cache_dir=None, dtype="float32"):
    """Load the Boston housing regression data: 506 districts, 13 features, target MEDV.

    The ``B`` column encodes a racial statistic (``1000 (Bk - 0.63)^2``);
    scikit-learn removed this data set in 1.2 for that reason. It is kept here
    because teaching material uses it as a regression example; prefer another
    data set for new work.

    The file is looked for in ``path`` only, if given (a CSV file, or a folder
    holding ``boston_housing.csv``); else as ``boston_housing.csv`` in
    ``$FASTNN_DATA``, ``$FASTNN_DATA/boston/``, then ``<cache_dir>/boston/``.
    Nothing is downloaded. The header must name the 14 columns
    ``BOSTON_COLUMNS`` in order (any case), with 506 rows of finite numbers
    whose column means match the published data set.

    Parameters
    ----------
    path : str or os.PathLike, optional
        CSV file or folder holding ``boston_housing.csv``.
    cache_dir : str or os.PathLike, optional
        Cache root, default ``~/.cache/fastnn``.
    dtype : {'float32', 'float64'}
        Dtype of both returned arrays.

    Returns
    -------
    X : ndarray of shape (506, 13)
        Features in the order of ``BOSTON_COLUMNS[:13]``, unscaled.
    y : ndarray of shape (506, 1)
        Median home value (MEDV) in $1000s.

    Raises
    ------
    FileNotFoundError
        No file found; the message lists the folders searched.
    ValueError
        The file's header, size or values are not those of the data set.
    """
    dtype = float_dtype(dtype)
    data = _read_checked(_find(path, cache_dir)).astype(dtype)
    return data[:, :-1].copy(), data[:, -1:].copy()

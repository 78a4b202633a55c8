"""fastnn.datasets: IDX parsing, file look-up, verified downloads and the small loaders.

Real data comes from the folder named by ``$FASTNN_DATA`` (``mnist-t10k/``,
``boston/``); those tests skip with a reason when it is unset or lacks them. Everything else writes its own small files. Network
access is limited to 127.0.0.1 by the ``localhost_only`` fixture; downloads go
to a local ``http.server`` started by the test.
"""
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets

import fastnn.datasets as ds



def _shared_data_dir():
    env = os.environ.get("FASTNN_DATA")
    return Path(env) if env else None


SHARED = _shared_data_dir()
MNIST_T10K = SHARED / "mnist-t10k" if SHARED else None
BOSTON_CSV = SHARED / "boston" / "boston_housing.csv" if SHARED else None
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

needs_mnist = pytest.mark.skipif(
    MNIST_T10K is None or not MNIST_T10K.is_dir(),
    reason="real MNIST test set not found: set FASTNN_DATA to a folder with mnist-t10k/",
)
needs_boston = pytest.mark.skipif(
    BOSTON_CSV is None or not BOSTON_CSV.is_file(),
    reason="boston/boston_housing.csv not found under FASTNN_DATA",
)
needs_debian_fashion = pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason="Debian package dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)",
)

# Class counts of the official MNIST test and training sets.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(autouse=True)
def localhost_only(monkeypatch):
    """Fail any name look-up other than 127.0.0.1, and start without FASTNN_DATA."""
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"test tried to reach {host!r}; only 127.0.0.1 is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.delenv("FASTNN_DATA", raising=False)


# --------------------------------------------------------------------------- helpers

def idx_bytes(array, type_code=0x08):
    """IDX encoding of ``array``: magic, big-endian uint32 dims, big-endian values."""
    be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + np.asarray(array).astype(be).tobytes()


def write(path, data, *, compress):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_split(folder, split="test", fill=0):
    """Standard-named, standard-sized IDX files for ``split`` whose first pixel is ``fill``."""
    n = {"train": 60000, "test": 10000}[split]
    prefix = {"train": "train", "test": "t10k"}[split]
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = fill
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        f"{prefix}-images-idx3-ubyte.gz": write(folder / f"{prefix}-images-idx3-ubyte.gz",
                                                idx_bytes(images), compress=True),
        f"{prefix}-labels-idx1-ubyte.gz": write(folder / f"{prefix}-labels-idx1-ubyte.gz",
                                                idx_bytes(labels), compress=True),
    }


# --------------------------------------------------------------------------- IDX parser

@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("type_code, values", [
    (0x08, np.arange(2 * 3 * 4).reshape(2, 3, 4)),
    (0x09, np.array([-128, -1, 0, 127])),
    (0x0B, np.array([[-300, 2], [3, 30000]])),
    (0x0C, np.array([-(2 ** 31), 2 ** 31 - 1])),
    (0x0D, np.array([[0.5, -1.25e-3]])),
    (0x0E, np.array([np.pi, -np.e])),
])
def test_read_idx_round_trips_every_type(tmp_path, compress, type_code, values):
    path = write(tmp_path / "data.idx", idx_bytes(values, type_code), compress=compress)
    out = ds.read_idx(path)
    assert out.shape == values.shape
    assert out.dtype.isnative
    assert out.flags.writeable
    np.testing.assert_array_equal(out, values.astype(out.dtype))


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    labels = np.array([3, 1, 4], np.uint8)
    raw_named_gz = write(tmp_path / "raw.gz", idx_bytes(labels), compress=False)
    gz_named_raw = write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels), compress=True)
    np.testing.assert_array_equal(ds.read_idx(raw_named_gz), labels)
    np.testing.assert_array_equal(ds.read_idx(gz_named_raw), labels)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x08", "only 3 bytes"),
    (b"\x08\x03\x00\x00" + bytes(12), "bad magic number"),
    (b"\x00\x00\x07\x01" + bytes(5), "bad magic number"),          # unknown type code
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + np.array([2, 2], ">u4").tobytes(), "header needs 16 bytes"),
    (idx_bytes(np.zeros((4, 3), np.uint8))[:-1], "truncated"),
    (idx_bytes(np.zeros((4, 3), np.uint8)) + b"\x00", "longer than its header says"),
])
def test_read_idx_rejects_malformed_files_naming_them(tmp_path, compress, content, message):
    path = write(tmp_path / "broken-idx", content, compress=compress)
    with pytest.raises(ValueError, match=message) as info:
        ds.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_checks_the_dimension_count(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(np.zeros(10, np.uint8)), compress=True)
    with pytest.raises(ValueError, match="expected an IDX file with 3 dimensions, got 1"):
        ds.read_idx(path, ndim=3)
    assert ds.read_idx(path, ndim=1).shape == (10,)


@pytest.mark.parametrize("damage", ["cut", "flip"])
def test_read_idx_rejects_damaged_gzip(tmp_path, damage):
    data = gzip.compress(idx_bytes(np.arange(5000).reshape(50, 100).astype(np.uint8)))
    if damage == "cut":
        data = data[: len(data) // 2]
    else:
        # An altered byte in the stored CRC-32 leaves the deflate stream valid: only the check catches it.
        data = data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]
    path = write(tmp_path / "images.gz", data, compress=False)
    with pytest.raises(ValueError, match="corrupt or truncated gzip") as info:
        ds.read_idx(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- real MNIST (FASTNN_DATA)

@needs_mnist
def test_load_mnist_test_split_from_fastnn_data(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTNN_DATA", str(SHARED))
    X, y = ds.load_mnist(split="test", cache_dir=tmp_path, download=False)
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8
    assert y.shape == (10000,) and y.dtype == np.uint8
    assert np.bincount(y).tolist() == MNIST_TEST_COUNTS
    assert X.mean() == pytest.approx(33.79, abs=0.005)


@needs_mnist
def test_real_mnist_training_labels_parse():
    y = ds.read_idx(MNIST_T10K / "train-labels-idx1-ubyte.gz", ndim=1)
    assert np.bincount(y).tolist() == MNIST_TRAIN_COUNTS


@needs_mnist
def test_missing_training_images_say_where_to_put_them(monkeypatch, tmp_path):
    # A data folder of its own holding what mnist-t10k/ holds (the test set and the
    # training labels) but no training images, whatever FASTNN_DATA holds.
    data = tmp_path / "data"
    shutil.copytree(MNIST_T10K, data / "mnist-t10k", ignore=shutil.ignore_patterns("train-images*"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("FASTNN_DATA", str(data))
    with pytest.raises(FileNotFoundError) as info:
        ds.load_mnist(cache_dir=cache, download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "train-labels-idx1-ubyte.gz" not in message      # that one was found
    for folder in (data, data / "mnist", data / "mnist-t10k", cache / "mnist"):
        assert str(folder) in message
    assert "FASTNN_DATA" in message and "download=True" in message


@needs_mnist
def test_truncated_real_file_is_reported_not_half_loaded(tmp_path):
    shutil.copy(MNIST_T10K / "t10k-images-idx3-ubyte.gz", tmp_path)
    data = (MNIST_T10K / "t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = write(tmp_path / "t10k-labels-idx1-ubyte.gz", data[:-100], compress=False)
    with pytest.raises(ValueError, match="corrupt or truncated") as info:
        ds.load_mnist(tmp_path, split="test")
    assert str(bad) in str(info.value)


@needs_mnist
def test_uncompressed_copies_load_the_same(tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((MNIST_T10K / f"{name}.gz").read_bytes()))
    X_raw, y_raw = ds.load_mnist(tmp_path, split="test")
    X_gz, y_gz = ds.load_mnist(MNIST_T10K, split="test")
    np.testing.assert_array_equal(X_raw, X_gz)
    np.testing.assert_array_equal(y_raw, y_gz)


# --------------------------------------------------------------------------- look-up order and checks

def test_lookup_order_path_then_fastnn_data_then_cache(monkeypatch, tmp_path):
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", tmp_path / "cache"
    write_split(explicit, fill=1)
    write_split(env / "mnist", fill=2)
    write_split(cache / "mnist", fill=3)
    monkeypatch.setenv("FASTNN_DATA", str(env))

    def first_pixel(**kwargs):
        X, _ = ds.load_mnist(split="test", cache_dir=cache, download=False, **kwargs)
        return X[0, 0, 0]

    assert first_pixel(path=explicit) == 1
    assert first_pixel() == 2
    monkeypatch.delenv("FASTNN_DATA")
    assert first_pixel() == 3


def test_explicit_path_is_the_only_place_searched(monkeypatch, tmp_path):
    write_split(tmp_path / "env" / "mnist")
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz") as info:
        ds.load_mnist(tmp_path / "empty", split="test")
    assert str(tmp_path / "env") not in str(info.value)


def test_fashion_mnist_looks_in_its_own_subfolder(monkeypatch, tmp_path):
    write_split(tmp_path / "mnist", fill=1)
    write_split(tmp_path / "fashion-mnist", fill=2)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    X, _ = ds.load_fashion_mnist(split="test", cache_dir=tmp_path / "cache", download=False)
    assert X[0, 0, 0] == 2


def test_wrong_sized_idx_files_are_rejected(tmp_path):
    write(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 28, 28), np.uint8)), compress=True)
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(5, np.uint8)), compress=True)
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(10000, 28, 28\)"):
        ds.load_mnist(tmp_path, split="test")


def test_labels_out_of_range_are_rejected(tmp_path):
    write_split(tmp_path)
    labels = np.full(10000, 10, np.uint8)
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(labels), compress=True)
    with pytest.raises(ValueError, match="labels in 0..9"):
        ds.load_mnist(tmp_path, split="test")


def test_bad_split_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="split must be None, 'train' or 'test', got 'val'"):
        ds.load_mnist(tmp_path, split="val")


# --------------------------------------------------------------------------- downloads from 127.0.0.1

class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``: URL path -> (body, mode); mode 'drop' promises the body then stops halfway."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path not in self.server.files:
            self.send_error(404)
            return
        body, mode = self.server.files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "drop" else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/mnist/"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _serve_split(server, monkeypatch, tmp_path, mode="ok"):
    """Put a synthetic test split on the server and make its SHA-256 the expected one."""
    for name, path in write_split(tmp_path / "served").items():
        body = path.read_bytes()
        monkeypatch.setitem(ds.SHA256["mnist"], name, hashlib.sha256(body).hexdigest())
        if mode == "corrupt":
            i = len(body) // 2
            body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1:]
        server.files["/mnist/" + name] = (body, mode)


def test_download_verifies_and_caches(server, monkeypatch, tmp_path, capsys):
    _serve_split(server, monkeypatch, tmp_path)
    cache = tmp_path / "cache"
    X, y = ds.load_mnist(split="test", cache_dir=cache, mirrors=[server.url])
    assert X.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert "t10k-images-idx3-ubyte.gz" in capsys.readouterr().err   # the progress bar
    # The second call is served from the cache: no new request.
    n_requests = len(server.requests)
    X2, _ = ds.load_mnist(split="test", cache_dir=cache, mirrors=[server.url], progress=False)
    assert len(server.requests) == n_requests
    np.testing.assert_array_equal(X2, X)


def test_download_falls_back_to_the_next_mirror(server, monkeypatch, tmp_path):
    _serve_split(server, monkeypatch, tmp_path)
    missing = server.url.replace("/mnist/", "/nowhere/")      # answers 404
    X, _ = ds.load_mnist(split="test", cache_dir=tmp_path / "cache", mirrors=[missing, server.url],
                         progress=False)
    assert X.shape == (10000, 28, 28)
    assert server.requests == ["/nowhere/t10k-images-idx3-ubyte.gz", "/mnist/t10k-images-idx3-ubyte.gz",
                               "/nowhere/t10k-labels-idx1-ubyte.gz", "/mnist/t10k-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("mode, message", [
    ("corrupt", "SHA-256 mismatch"),
    ("drop", r"connection closed after \d+ of \d+ bytes"),
])
def test_failed_download_leaves_nothing_in_the_cache(server, monkeypatch, tmp_path, mode, message):
    _serve_split(server, monkeypatch, tmp_path, mode=mode)
    cache = tmp_path / "cache"
    with pytest.raises(ds.DownloadError, match=message) as info:
        ds.load_mnist(split="test", cache_dir=cache, mirrors=[server.url], progress=False)
    assert server.url in str(info.value)
    assert not cache.exists()     # no partial file, no temporary file, no empty folders


def test_offline_error_says_where_to_put_the_files(tmp_path):
    with socket.socket() as s:           # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with pytest.raises(ds.DownloadError) as info:
        ds.load_mnist(split="test", cache_dir=tmp_path, mirrors=[closed], progress=False)
    message = str(info.value)
    assert closed in message and "t10k-images-idx3-ubyte.gz not found" in message
    assert str(tmp_path / "mnist") in message and "FASTNN_DATA" in message
    assert list(tmp_path.iterdir()) == []  # the cache folder existed; its mnist/ was made and removed


def test_failed_download_keeps_folders_that_existed_or_hold_files(server, monkeypatch, tmp_path):
    _serve_split(server, monkeypatch, tmp_path)
    del server.files["/mnist/t10k-labels-idx1-ubyte.gz"]  # the images arrive, the labels are missing
    cache = tmp_path / "cache"
    with pytest.raises(ds.DownloadError, match="404"):
        ds.load_mnist(split="test", cache_dir=cache, mirrors=[server.url], progress=False)
    assert [p.name for p in (cache / "mnist").iterdir()] == ["t10k-images-idx3-ubyte.gz"]  # kept: verified
    empty = tmp_path / "empty"
    (empty / "mnist").mkdir(parents=True)
    with pytest.raises(ds.DownloadError):
        ds.load_mnist(split="test", cache_dir=empty, mirrors=[server.url.replace("/mnist/", "/none/")],
                      progress=False)
    assert list((empty / "mnist").iterdir()) == []  # existed before: left alone


# --------------------------------------------------------------------------- Fashion-MNIST (Debian)

@needs_debian_fashion
def test_fashion_mnist_from_the_debian_package(tmp_path):
    (X_train, y_train), (X_test, y_test) = ds.load_fashion_mnist(cache_dir=tmp_path, download=False)
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert X_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


# --------------------------------------------------------------------------- to_float

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_float_scales_and_flattens(dtype):
    X = np.array([[[0, 255], [51, 1]]] * 3, np.uint8)           # (3, 2, 2)
    out = ds.to_float(X, dtype=dtype)
    assert out.shape == (3, 4) and out.dtype == dtype
    np.testing.assert_array_equal(out[0], np.array([0, 1, 0.2, 1 / 255], dtype))


@pytest.mark.parametrize("X, dtype, message", [
    (np.zeros((2, 3), np.float32), "float32", "X must be a uint8 array"),
    (np.zeros(4, np.uint8), "float32", "X must be a uint8 array"),
    (np.zeros((2, 3), np.uint8), "int32", "dtype must be 'float32' or 'float64', got 'int32'"),
])
def test_to_float_rejects_bad_input(X, dtype, message):
    with pytest.raises(ValueError, match=message):
        ds.to_float(X, dtype=dtype)


# --------------------------------------------------------------------------- Boston

@needs_boston
@pytest.mark.parametrize("how", ["env", "file", "folder"])
def test_load_boston_real_file(monkeypatch, tmp_path, how):
    if how == "env":
        monkeypatch.setenv("FASTNN_DATA", str(SHARED))
        X, y = ds.load_boston(cache_dir=tmp_path)
    else:
        X, y = ds.load_boston(BOSTON_CSV if how == "file" else BOSTON_CSV.parent)
    assert X.shape == (506, 13) and y.shape == (506, 1)
    assert X.dtype == y.dtype == np.float32
    # Published statistics of the Boston housing data set.
    assert y.mean() == pytest.approx(22.5328, abs=1e-4)
    assert X[:, ds.BOSTON_COLUMNS.index("RM")].mean() == pytest.approx(6.2846, abs=1e-4)
    assert X[:, 0].max() == pytest.approx(88.9762, abs=1e-4)


@needs_boston
def test_load_boston_float64_and_lowercase_header(tmp_path):
    lines = BOSTON_CSV.read_text().splitlines()
    path = tmp_path / "housing.csv"
    path.write_text("\n".join([lines[0].lower()] + lines[1:]) + "\n")
    X, y = ds.load_boston(path, dtype="float64")
    assert X.dtype == y.dtype == np.float64
    assert y.mean() == pytest.approx(22.532806, abs=1e-6)


@needs_boston
def test_load_boston_reads_a_byte_order_mark_and_bytes_paths(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark: the header still reads; a folder
    or a file given as bytes works as a str does."""
    path = tmp_path / "boston_housing.csv"
    path.write_bytes(b"\xef\xbb\xbf" + BOSTON_CSV.read_bytes())
    X, y = ds.load_boston(path)
    np.testing.assert_array_equal(X, ds.load_boston(BOSTON_CSV)[0])
    for given in (os.fsencode(path), os.fsencode(tmp_path)):
        np.testing.assert_array_equal(ds.load_boston(given)[0], X)
    np.testing.assert_array_equal(ds.load_boston(cache_dir=os.fsencode(tmp_path / "cache"), path=tmp_path)[0], X)


def test_load_boston_says_a_binary_file_is_not_a_text_csv(tmp_path):
    path = tmp_path / "boston.csv"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)))
    with pytest.raises(ValueError, match=re.escape(repr(str(path))) + ": not a UTF-8 text CSV file"):
        ds.load_boston(path)


def _csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("header, rows, message", [
    (ds.BOSTON_COLUMNS[:-1] + ("PRICE",), [[0] * 14] * 506, "header must be CRIM,ZN"),
    (ds.BOSTON_COLUMNS, [[0] * 14] * 505, "expected 506 data rows, got 505"),
    (ds.BOSTON_COLUMNS, [[0] * 13] * 506, "every row needs 14 numbers"),
    (ds.BOSTON_COLUMNS, [[0] * 13 + ["nan"]] * 506, "non-finite"),
    (ds.BOSTON_COLUMNS, [[0, 0, 0, 2] + [0] * 10] * 506, "CHAS must be 0 or 1"),
    (ds.BOSTON_COLUMNS, [[0] * 14] * 506, "mean CRIM is 0"),
])
def test_load_boston_rejects_files_that_are_not_the_data_set(tmp_path, header, rows, message):
    path = _csv(tmp_path / "boston.csv", header, rows)
    with pytest.raises(ValueError, match=message) as info:
        ds.load_boston(path)
    assert str(path) in str(info.value)


def test_load_boston_missing_file_lists_the_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match="boston_housing.csv not found") as info:
        ds.load_boston(cache_dir=tmp_path / "cache")
    for folder in (tmp_path / "data", tmp_path / "data" / "boston", tmp_path / "cache" / "boston"):
        assert str(folder) in str(info.value)


# --------------------------------------------------------------------------- digits, wine

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_digits(dtype):
    X, y = ds.load_digits(dtype=dtype)
    assert X.shape == (1797, 64) and X.dtype == dtype
    assert y.shape == (1797,) and y.dtype == np.int64 and set(y) == set(range(10))
    assert X.min() == 0 and X.max() == 1
    np.testing.assert_array_equal(X, (sklearn.datasets.load_digits().data / 16).astype(dtype))


def test_load_wine_all_binary_and_selected_features():
    ref = sklearn.datasets.load_wine()
    X, y = ds.load_wine()
    assert X.shape == (178, 13) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, ref.target)

    X, y = ds.load_wine(binary=True, features=["proline", "alcohol"], dtype="float64")
    keep = ref.target < 2
    assert X.shape == (130, 2) and set(y) == {0, 1}
    np.testing.assert_array_equal(X[:, 0], ref.data[keep, ref.feature_names.index("proline")])
    np.testing.assert_array_equal(X[:, 1], ref.data[keep, ref.feature_names.index("alcohol")])


def test_load_wine_takes_features_as_an_array():
    X, _ = ds.load_wine(features=np.array(["proline", "alcohol"]))
    np.testing.assert_array_equal(X, ds.load_wine(features=["proline", "alcohol"])[0])


@pytest.mark.parametrize("features", [["alcohol", "colour"], [], "alcohol", {"alcohol", "proline"},
                                      np.array([], dtype=str)])
def test_load_wine_rejects_bad_features(features):
    with pytest.raises(ValueError, match="features must be"):
        ds.load_wine(features=features)


# --------------------------------------------------------------------------- make_function_data

def test_make_function_data_without_noise_is_the_function():
    X, y = ds.make_function_data(np.sin, 500, -3.0, 3.0, seed=0, dtype="float64")
    assert X.shape == y.shape == (500, 1) and X.dtype == np.float64
    assert X.min() >= -3.0 and X.max() < 3.0
    np.testing.assert_array_equal(y, np.sin(X))


def test_make_function_data_noise_and_seed():
    def square(x):
        return x ** 2

    X, y = ds.make_function_data(square, 20000, 0.0, 1.0, noise=0.1, seed=42)
    assert X.dtype == y.dtype == np.float32
    residual = y.astype(np.float64) - X.astype(np.float64) ** 2
    assert residual.std() == pytest.approx(0.1, rel=0.03)
    assert abs(residual.mean()) < 0.005
    X2, y2 = ds.make_function_data(square, 20000, 0.0, 1.0, noise=0.1, seed=42)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(f=None), "f must be callable"),
    (dict(n=0), "n must be a positive integer, got 0"),
    (dict(n=2.5), "n must be a positive integer"),
    (dict(low=1.0, high=1.0), "low must be less than high"),
    (dict(noise=-0.1), "noise must be >= 0"),
    (dict(f=lambda x: x[:3]), r"f\(x\) must return shape \(10,\) or \(10, 1\)"),
    (dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
])
def test_make_function_data_rejects_bad_arguments(kwargs, message):
    args = dict(f=np.sin, n=10, low=0.0, high=1.0) | kwargs
    with pytest.raises(ValueError, match=message):
        ds.make_function_data(args.pop("f"), args.pop("n"), args.pop("low"), args.pop("high"), **args)

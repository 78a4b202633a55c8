"""Crafted, damaged and hostile files: ``load_model``, the atomic writer and the
IDX reader reject them with a ValueError naming the file and what is wrong,
without allocating more than the file itself justifies."""
import gzip
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastnn as fn
import fastnn.datasets as ds
from fastnn import _archive
from fastnn.datasets import _idx

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def saved_model(tmp_path, optimizer="adam", name="m.fastnn"):
    model = fn.Sequential([fn.Dense(5, activation="relu", input_dim=3), fn.Dense(2, activation="softmax")],
                          backend="numpy", seed=0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((20, 3)), rng.integers(0, 2, 20), epochs=1, batch_size=5, verbose=0)
    path = tmp_path / name
    model.save(path)
    return path


def contents(path):
    with np.load(path) as data:
        entries = {key: data[key] for key in data.files}
    return json.loads(entries.pop("config").tobytes()), entries


def write_model(path, config, entries):
    raw = config if isinstance(config, bytes) else json.dumps(config).encode()
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, config=np.frombuffer(raw, np.uint8), **entries)
    return path


def tampered(tmp_path, edit=None, optimizer="adam", **arrays):
    """A saved model with its config changed by ``edit`` and entries replaced (None: removed)."""
    config, entries = contents(saved_model(tmp_path, optimizer))
    if edit is not None:
        edit(config)
    entries.update(arrays)
    return write_model(tmp_path / "bad.fastnn", config, {k: v for k, v in entries.items() if v is not None})


def load_error(path):
    with pytest.raises(ValueError) as info:
        fn.load_model(path)
    assert str(path) in str(info.value)
    return str(info.value)


def layer(config, i=0):
    return config["model"]["layers"][i]["config"]


# ------------------------------------------------------------------ config schema
CONFIG_EDITS = {
    "version is a bool": (lambda c: c.update(version=True),
                          rf"version: expected an integer in \[1, {_archive.VERSION}\], got bool True"),
    "version is a string": (lambda c: c.update(version="1"), r"version: expected an integer.*got str '1'"),
    "version 0": (lambda c: c.update(version=0), rf"version: expected an integer in \[1, {_archive.VERSION}\], got 0"),
    "newer version": (lambda c: c.update(version=_archive.VERSION + 1),
                      rf"version {_archive.VERSION + 1}; this fastnn reads versions up to {_archive.VERSION}"),
    "normalization axis": (lambda c: c["model"].update(input_normalization={"axis": 0, "statistics_shape": None}),
                           r"model.input_normalization.axis: expected one of \[-1, None\], got 0"),
    "normalization shape": (lambda c: c["model"].update(input_normalization={"axis": -1, "statistics_shape": [4]}),
                            r"model.input_normalization.statistics_shape: expected null or one of \[\[\], \[3\]\]"),
    "target normalization key": (lambda c: c["model"].update(target_normalization={"axis": -1}),
                                 r"model.target_normalization: missing key 'statistics_shape'"),
    "normalization count": (
        lambda c: c["model"].update(input_normalization={"axis": -1, "statistics_shape": [3], "count": "x"}),
        r"model.input_normalization.count: expected an integer >= 0"),
    "normalization statistics missing": (
        lambda c: c["model"].update(input_normalization={"axis": -1, "statistics_shape": [3]}),
        r"input_mean, input_variance missing"),
    "no format": (lambda c: c.pop("format"), r"format"),
    "unknown top-level key": (lambda c: c.update(extra=1), r"unexpected key 'extra'"),
    "model not a dict": (lambda c: c.update(model=[]), r"model: expected a dict, got list"),
    "layers a string": (lambda c: c["model"].update(layers="xx"), r"model\.layers: expected a non-empty list.*'xx'"),
    "no layers": (lambda c: c["model"].update(layers=[]), r"model\.layers: expected a non-empty list"),
    "layer not a dict": (lambda c: c["model"]["layers"].__setitem__(0, 1), r"model\.layers\[0\]: expected a dict"),
    "unknown layer class": (lambda c: c["model"]["layers"][0].update(class_name="Conv2D"),
                            r"model\.layers\[0\]\.class_name: expected one of \['Dense', 'Maxout'\], got str 'Conv2D'"),
    "class_name not a string": (lambda c: c["model"]["layers"][1].update(class_name=3),
                                r"model\.layers\[1\]\.class_name: expected one of"),
    "float units": (lambda c: layer(c).update(units=1e12),
                    r"model\.layers\[0\]\.config\.units: expected an integer in \[1, 2147483648\], got float 1000000000000\.0"),
    "huge units": (lambda c: layer(c).update(units=10 ** 12), r"units: expected an integer in \[1, 2147483648\]"),
    "too many parameters": (lambda c: layer(c).update(units=10 ** 9),
                            r"model\.layers: layers 0 to 0 need 4,000,000,000 parameters; .* at most 2,147,483,648"),
    "bool units": (lambda c: layer(c, 1).update(units=True), r"units: expected an integer.*got bool True"),
    "string input_dim": (lambda c: layer(c).update(input_dim="3"), r"input_dim: expected an integer"),
    "first layer without input_dim": (lambda c: layer(c).update(input_dim=None),
                                      r"model\.layers\[0\]\.config\.input_dim: expected an integer"),
    "mismatched input_dim": (lambda c: layer(c, 1).update(input_dim=4),
                             r"model\.layers\[1\]\.config\.input_dim: expected 5 .*, got 4"),
    "use_bias a string": (lambda c: layer(c).update(use_bias="yes"), r"use_bias: expected a bool, got str 'yes'"),
    "unknown activation": (lambda c: layer(c).update(activation="relux"), r"activation.*'relux'"),
    "activation class_name not a string": (lambda c: layer(c).update(activation={"class_name": 3}),
                                           r"activation\.class_name: expected a name"),
    "bad initializer config": (lambda c: layer(c).update(kernel_initializer={"class_name": "constant",
                                                                            "config": {"value": "x"}}),
                               r"kernel_initializer"),
    "initializer range too wide": (lambda c: layer(c).update(kernel_initializer={
        "class_name": "random_uniform", "config": {"minval": -1e308, "maxval": 1e308}}),
        r"kernel_initializer: minval, maxval: expected a range of finite width, got \[-1e\+308, 1e\+308\]"),
    "negative initializer stddev": (lambda c: layer(c).update(kernel_initializer={
        "class_name": "random_normal", "config": {"stddev": -1}}),
        r"kernel_initializer: stddev: expected a finite number >= 0, got -1.0"),
    "initializer overflowing float32": (lambda c: layer(c).update(bias_initializer={
        "class_name": "constant", "config": {"value": 1e39}}),
        r"ValueError: value: initial weights up to 1e\+39 overflow float32"),
    "unknown layer argument": (lambda c: layer(c).update(filters=3), r"unexpected key 'filters'"),
    "dtype float16": (lambda c: c["model"].update(dtype="float16"), r"model\.dtype: expected one of"),
    "negative seed": (lambda c: c["model"].update(seed=-1), r"model\.seed: expected an integer"),
    "backend not a string": (lambda c: c["model"].update(backend=3), r"model\.backend: expected a string"),
    "compile a string": (lambda c: c.update(compile="xx"), r"compile: expected a dict or null, got str 'xx'"),
    "unknown optimizer": (lambda c: c["compile"]["optimizer"].update(class_name="adamw"), r"adamw"),
    "NaN learning rate": (lambda c: c["compile"]["optimizer"]["config"].update(learning_rate=float("nan")),
                          r"NaN"),
    "unknown loss": (lambda c: c["compile"].update(loss="crossentropy"), r"compile\.loss.*'crossentropy'"),
    "metrics not pairs": (lambda c: c["compile"].update(metrics="accuracy"), r"compile\.metrics: expected a list"),
    "negative iterations": (lambda c: c.update(optimizer_iterations=-100),
                            r"optimizer_iterations: expected an integer in \[0, 9007199254740992\], got -100"),
    "float iterations": (lambda c: c.update(optimizer_iterations=1e308), r"optimizer_iterations: .*got float 1e\+308"),
    "too many iterations": (lambda c: c.update(optimizer_iterations=2 ** 53 + 1), r"optimizer_iterations"),
    "bool iterations": (lambda c: c.update(optimizer_iterations=True), r"optimizer_iterations"),
}


@pytest.mark.parametrize("edit, message", CONFIG_EDITS.values(), ids=CONFIG_EDITS.keys())
def test_config_schema_is_checked(tmp_path, edit, message):
    text = load_error(tampered(tmp_path, edit))
    assert re.search(message, text), text


@pytest.mark.parametrize("raw, message", [
    (b"[1, 2]", r"config: expected a dict"),
    (b"\xff\xfe", r"config is not UTF-8 JSON"),
    (b"[" * 100_000 + b"]" * 100_000, r"config is not UTF-8 JSON"),
    (b'{"format": "fastnn", "version": 1, "optimizer_iterations": 1' + b"0" * 5000 + b"}", r"config is not"),
])
def test_config_that_is_not_a_json_object(tmp_path, raw, message):
    _, entries = contents(saved_model(tmp_path))
    text = load_error(write_model(tmp_path / "bad.fastnn", raw, entries))
    assert re.search(message, text), text


def test_a_huge_layer_is_rejected_before_anything_is_allocated(tmp_path):
    def huge(config):
        layer(config).update(units=2_000_000)
        layer(config, 1).update(input_dim=2_000_000)

    path = tampered(tmp_path, huge)
    tracemalloc.start()
    try:
        text = load_error(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "weight_0: expected shape (3, 2000000) float32, got shape (3, 5)" in text
    assert peak < 10 * 2 ** 20, f"loading a {path.stat().st_size}-byte file peaked at {peak} bytes"


# ------------------------------------------------------------------ arrays
ARRAY_EDITS = {
    "transposed weight": (dict(weight_0=np.zeros((5, 3), np.float32)),
                          r"weight_0: expected shape \(3, 5\) float32, got shape \(5, 3\) float32"),
    "float64 weight": (dict(weight_1=np.zeros(5)), r"weight_1: expected shape \(5,\) float32, got shape \(5,\) float64"),
    "integer weight": (dict(weight_1=np.zeros(5, np.int32)), r"weight_1: .*got shape \(5,\) int32"),
    "pickled weight": (dict(weight_1=np.array([None] * 5, dtype=object)), r"weight_1: .*got .*object"),
    "NaN weight": (dict(weight_2=np.full((5, 2), np.nan, np.float32)), r"weight_2: contains 10 NaN or infinite"),
    "missing weight": (dict(weight_3=None), r"entries: expected .*weight_3.*missing"),
    "extra weight": (dict(weight_4=np.zeros(2, np.float32)), r"unexpected entries \['weight_4'\]"),
    "missing optimizer state": (dict(optimizer_7=None), r"optimizer state: expected 8 entries.*got 7"),
    "state of the wrong shape": (dict(optimizer_1=np.zeros((3, 4), np.float32)),
                                 r"optimizer_1: expected shape \(3, 5\) float32, got shape \(3, 4\)"),
    "infinite state": (dict(optimizer_0=np.full((3, 5), np.inf, np.float32)), r"optimizer_0: contains 15 NaN"),
    "negative Adam v": (dict(optimizer_1=np.full((3, 5), -1, np.float32)),
                        r"optimizer_1: expected values >= 0 .*Adam.*, got -1"),
}


@pytest.mark.parametrize("arrays, message", ARRAY_EDITS.values(), ids=ARRAY_EDITS.keys())
def test_weights_and_state_are_checked_against_the_config(tmp_path, arrays, message):
    text = load_error(tampered(tmp_path, **arrays))
    assert re.search(message, text), text


def test_negative_rmsprop_accumulator_is_rejected(tmp_path):
    path = tampered(tmp_path, optimizer="rmsprop", optimizer_1=np.full(5, -0.5, np.float32))
    assert "optimizer_1: expected values >= 0 (RMSprop accumulates squared gradients here), got -0.5" \
        in load_error(path)


def test_a_compressed_entry_cannot_declare_a_huge_array(tmp_path):
    """A deflated member can expand far beyond the file: fastnn writes none and reads none."""
    config, entries = contents(saved_model(tmp_path))
    path = tmp_path / "bomb.fastnn"
    with open(path, "wb") as f:
        np.savez_compressed(f, config=np.frombuffer(json.dumps(config).encode(), np.uint8), **entries)
    assert "stored uncompressed" in load_error(path)


def test_text_files_and_plain_npy_files_are_not_models(tmp_path):
    text = tmp_path / "notes.fastnn"
    text.write_text("just some text\n" * 20)
    message = load_error(text)
    assert "not a fastnn model file" in message and "allow_pickle" not in message
    npy = tmp_path / "array.fastnn"
    with open(npy, "wb") as f:
        np.save(f, np.arange(3))
    assert "not a fastnn model file" in load_error(npy)


def test_every_single_byte_flip_gives_a_value_error_or_a_valid_model(tmp_path):
    path = saved_model(tmp_path, optimizer="sgd")  # no optimizer entries: a smaller file to flip
    data = path.read_bytes()
    values = set()  # array values (past each 128-byte .npy header): every 4th byte is enough
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.filename != "config.npy":
                start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128
                values.update(range(start, start + info.file_size - 128))
    bad = tmp_path / "flipped.fastnn"
    for i in range(len(data)):
        if i in values and i % 4:
            continue
        bad.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
        try:
            fn.load_model(bad)
        except ValueError as exc:
            assert str(bad) in str(exc)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"flipping byte {i} gave {type(exc).__name__}: {exc}")


def test_every_truncation_gives_a_value_error(tmp_path):
    path = saved_model(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "cut.fastnn"
    for n in range(0, len(data), 7):
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match="fastnn model file"):
            fn.load_model(bad)


def test_duplicate_entries_are_rejected(tmp_path):
    path = saved_model(tmp_path)
    with zipfile.ZipFile(path, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("weight_0.npy", zf.read("weight_0.npy"))
    assert "duplicate entry 'weight_0'" in load_error(path)


def test_a_valid_file_still_loads_and_resumes(tmp_path):
    path = saved_model(tmp_path, optimizer=fn.optimizers.SGD(0.1, momentum=0.9))
    model = fn.load_model(path)
    assert model.optimizer.iterations == 4 and len(model.optimizer.get_state()) == 4


def test_the_update_count_of_a_stateless_optimizer_survives_loading(tmp_path):
    schedule = fn.schedules.ExponentialDecay(0.1, decay_rate=0.5, decay_steps=1)
    model = fn.load_model(saved_model(tmp_path, optimizer=fn.optimizers.SGD(schedule)))
    assert model.optimizer.iterations == 4 and model.optimizer.current_learning_rate() == 0.1 * 0.5 ** 4


def test_a_metric_listed_twice_in_a_file_is_reported_once(tmp_path):
    path = tampered(tmp_path, edit=lambda c: c["compile"]["metrics"].append(["accuracy", "accuracy"]))
    model = fn.load_model(path)
    assert [name for name, _ in model.metrics] == ["accuracy"]
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    assert model.evaluate(X, y)["accuracy"] == pytest.approx(np.mean(model.predict(X).argmax(axis=1) == y))


# ------------------------------------------------------------------ the atomic writer
posix_only = pytest.mark.skipif(os.name != "posix", reason="umask, SIGKILL and flock are POSIX")


def tiny_model():
    return fn.Sequential([fn.Dense(2, input_dim=2)], backend="numpy", seed=0)


def temporaries(folder):
    return sorted(p.name for p in folder.glob(".fastnn-*.tmp"))


@posix_only
@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named"])
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_saved_files_get_the_mode_the_umask_gives_new_files(tmp_path, monkeypatch, anonymous, umask, mode):
    monkeypatch.setattr(_archive, "ANONYMOUS_TEMPORARIES", anonymous and _archive.ANONYMOUS_TEMPORARIES)
    path = tmp_path / "m.fastnn"
    path.write_bytes(b"old")
    path.chmod(0o600)  # replaced, not rewritten: the new file's mode is a new file's
    old = os.umask(umask)
    try:
        tiny_model().save(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert fn.load_model(path).get_config() == tiny_model().get_config()


_KILLED_WRITER = """
import sys, time
import numpy as np
import fastnn as fn
from fastnn import _archive
if sys.argv[2] == "named":
    _archive.ANONYMOUS_TEMPORARIES = False  # as on a file system without O_TMPFILE

def slow_savez(f, **arrays):
    f.write(b"PK half a model")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

np.savez = slow_savez
fn.Sequential([fn.Dense(2, input_dim=2)], backend="numpy").save(sys.argv[1])
"""


def kill_mid_save(path, how):
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path), how],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
    finally:
        child.kill()  # SIGKILL: no finally block, no atexit
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def o_tmpfile_works(folder):
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600))
        return os.path.isdir("/proc/self/fd")
    except (AttributeError, OSError):
        return False


@posix_only
def test_a_save_killed_with_sigkill_leaves_no_temporary_file(tmp_path):
    if not o_tmpfile_works(tmp_path):
        pytest.skip("no O_TMPFILE here: see the test of the named-temporary fallback")
    kill_mid_save(tmp_path / "m.fastnn", "anonymous")
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_stale_temporaries_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    kill_mid_save(tmp_path / "m.fastnn", "named")
    [left] = temporaries(tmp_path)
    tiny_model().save(tmp_path / "other.fastnn")
    assert temporaries(tmp_path) == [left]  # recent: it could be a save still running
    hour_ago = time.time() - 3700
    os.utime(tmp_path / left, (hour_ago, hour_ago))
    busy = tmp_path / ".fastnn-busy.tmp"  # old but still written (locked) by a live process
    busy.write_bytes(b"")
    os.utime(busy, (hour_ago, hour_ago))
    with open(busy, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        tiny_model().save(tmp_path / "other.fastnn")
        assert temporaries(tmp_path) == [busy.name]
    tiny_model().save(tmp_path / "other.fastnn")
    assert temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.fastnn"]


# ------------------------------------------------------------------ IDX files
def idx_header(type_code, *dims):
    return bytes([0, 0, type_code, len(dims)]) + np.array(dims, ">u4").tobytes()


def gzip_stream(path, header, zeros, chunk=2 ** 20):
    """``header`` then ``zeros`` zero bytes, gzip-compressed a chunk at a time (the test stays small)."""
    block = bytes(chunk)
    with gzip.GzipFile(path, "wb", compresslevel=1) as f:
        f.write(header)
        for start in range(0, zeros, chunk):
            f.write(block[: min(chunk, zeros - start)])
    return path


def peak_memory(call):
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_gzip_bomb_is_rejected_after_reading_one_byte_past_the_declared_size(tmp_path):
    bomb = gzip_stream(tmp_path / "train-images-idx3-ubyte.gz", idx_header(0x08, 10, 28, 28), 256 * 2 ** 20)
    assert bomb.stat().st_size < 2 * 2 ** 20

    def read():
        with pytest.raises(ValueError, match=r"longer than its header says: dimensions \(10, 28, 28\)") as info:
            ds.read_idx(bomb)
        assert str(bomb) in str(info.value)

    assert peak_memory(read) < 50 * 2 ** 20


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_a_header_declaring_more_than_the_file_can_hold_is_rejected_before_reading(tmp_path, compress):
    content = idx_header(0x0E, 60000, 1000, 100) + bytes(100)  # 48 GB declared
    path = tmp_path / "huge-idx"
    if compress:
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    peak = peak_memory(lambda: pytest.raises(ValueError, ds.read_idx, path))
    with pytest.raises(ValueError, match=r"truncated: dimensions \(60000, 1000, 100\) of float64 need 48000000016 bytes") \
            as info:
        ds.read_idx(path)
    assert str(path) in str(info.value) and peak < 2 ** 20


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_dimensions_whose_product_overflows_are_a_clear_error(tmp_path, compress):
    content = idx_header(0x0E, 65536, 65536, 65536, 65536)  # 2**64 items: 0 in int64 arithmetic
    path = tmp_path / "overflow-idx"
    path.write_bytes(gzip.compress(content) if compress else content)
    for call in (lambda: ds.read_idx(path), lambda: _idx.parse_idx(content, name=str(path))):
        with pytest.raises(ValueError, match=r"dimensions \(65536, 65536, 65536, 65536\) of float64 overflow") as info:
            call()
        assert str(path) in str(info.value)

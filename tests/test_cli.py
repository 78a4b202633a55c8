"""The ``fastnn`` command line."""
import re
import subprocess
import sys

import numpy as np
import pytest

from fastnn import cli
from fastnn.cli import main


def test_train_on_digits_by_default_reaches_95_percent(capsys, tmp_path):
    model_path = tmp_path / "digits.fastnn"
    assert main(["train", "--verbose", "2", "--save", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "digits 1347 train / 450 test rows" in out
    assert out.count("Epoch ") == 20 and "s/epoch" in out
    accuracy = float(re.search(r"test: loss [\d.]+, accuracy ([\d.]+)", out).group(1))
    assert accuracy >= 0.95
    assert main(["evaluate", str(model_path)]) == 0
    assert f"accuracy {accuracy:.4f}" in capsys.readouterr().out


def test_predict_from_npy_and_csv(tmp_path, capsys):
    model_path = tmp_path / "wine.fastnn"
    assert main(["train", "--dataset", "wine", "--epochs", "30", "--verbose", "0", "--save", str(model_path)]) == 0
    from sklearn.datasets import load_wine

    data = load_wine()
    rows = data.data[::20]
    np.save(tmp_path / "rows.npy", rows)
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",")
    capsys.readouterr()
    assert main(["predict", str(model_path), "--input", str(tmp_path / "rows.npy")]) == 0
    printed = np.array(capsys.readouterr().out.split(), dtype=int)
    assert np.mean(printed == data.target[::20]) >= 0.8  # raw, unstandardized rows work
    assert main(["predict", str(model_path), "--input", str(tmp_path / "rows.csv"), "--proba",
                 "--output", str(tmp_path / "p.npy")]) == 0
    proba = np.load(tmp_path / "p.npy")
    assert proba.shape == (len(rows), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_predict_gives_labels_of_sigmoid_outputs_and_predictions_of_a_regression(tmp_path, capsys):
    """One sigmoid output: labels 0/1 (output > 0.5), the output itself with --proba; a linear
    output is a regression's prediction with or without --proba (no argmax of its columns)."""
    import fastnn as fn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    rows = tmp_path / "rows.npy"
    np.save(rows, X[:6])
    for name, output, loss, y in (("binary", "sigmoid", "binary_crossentropy", (X[:, 0] > 0).astype(float)),
                                  ("regression", None, "mse", np.c_[X[:, 0], X[:, 1]])):
        model = fn.Sequential([fn.Dense(4, activation="tanh", input_dim=3),
                               fn.Dense(1 if y.ndim == 1 else 2, activation=output)], backend="numpy", seed=0)
        model.compile("adam", loss)
        model.fit(X, y, epochs=2, verbose=0)
        path = tmp_path / f"{name}.fastnn"
        model.save(path)
        capsys.readouterr()
        assert main(["predict", str(path), "--input", str(rows)]) == 0
        printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",", ndmin=2)
        assert main(["predict", str(path), "--input", str(rows), "--proba"]) == 0
        raw = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",", ndmin=2)
        outputs = model.predict(X[:6])
        np.testing.assert_allclose(raw.reshape(outputs.shape), outputs, rtol=1e-6)
        if name == "binary":
            np.testing.assert_array_equal(printed.ravel(), (outputs[:, 0] > 0.5).astype(int))
        else:
            np.testing.assert_allclose(printed, raw)


def test_boston_regression_reports_original_units(shared_data, capsys, tmp_path):
    model_path = tmp_path / "boston.fastnn"
    assert main(["train", "--dataset", "boston", "--data-dir", str(shared_data), "--epochs", "60",
                 "--batch-size", "16", "--verbose", "0", "--save", str(model_path)]) == 0
    out = capsys.readouterr().out
    mae = float(re.search(r"mae ([\d.]+) \(original units\)", out).group(1))
    assert mae < 4.0  # thousands of dollars; predicting the mean gives about 6.5
    assert main(["evaluate", str(model_path), "--dataset", "boston", "--data-dir", str(shared_data)]) == 0
    assert f"mae {mae:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["train", "--hidden", "12,x"], "argument --hidden: expected comma-separated positive integers"),
    (["train", "--hidden", ""], "argument --hidden: expected comma-separated positive integers like 128,64, got ''"),
    (["train", "--hidden", "128,,64"], "argument --hidden: expected comma-separated positive integers"),
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["train", "--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["train", "--lr", "-1"], "argument --lr: expected a positive number"),
    (["train", "--validation-split", "1.5"], "argument --validation-split: expected a fraction in [0, 1), got 1.5"),
    (["train", "--validation-split", "-0.1"], "argument --validation-split: expected a fraction in [0, 1), got -0.1"),
    (["train", "--validation-split", "half"], "argument --validation-split: expected a fraction in [0, 1), got 'half'"),
    (["train", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["train", "--seed", "-1"], "argument --seed: expected an integer in [0, 2**32), got '-1'"),
    (["evaluate", "m.fastnn", "--seed", str(2 ** 32)], "argument --seed: expected an integer in [0, 2**32)"),
    (["evaluate", "m.fastnn", "--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["predict", "m.fastnn"], "the following arguments are required: --input"),
])
def test_bad_arguments_give_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    # A subcommand's argument shows that subcommand's usage and names it in the error line.
    command = argv[0] if argv[0] in ("train", "evaluate", "predict") else None
    if command:
        assert err.startswith(f"usage: fastnn {command} ") and f"\nfastnn {command}: error: " in err
    else:
        assert err.startswith("usage: fastnn [-h]") and "\nfastnn: error: " in err


def test_missing_files_are_reported_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(tmp_path / "none.fastnn")])
    assert exc.value.code == 1
    assert "cannot load model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", "boston", "--data-dir", str(tmp_path)])
    assert exc.value.code == 1
    assert "cannot load data set 'boston'" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command():
    result = subprocess.run([sys.executable, "-m", "fastnn", "train", "--epochs", "1", "--verbose", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "test: loss" in result.stdout


@pytest.mark.parametrize("argv", [["bench", "--quick"], ["bench", "--help"]])
def test_bench_without_a_source_checkout_says_how_to_run_it(argv, monkeypatch, capsys):
    # An installed wheel has no benchmarks/ folder: one line, no traceback.
    monkeypatch.setattr(cli, "find_benchmarks", lambda: None)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("fastnn bench: needs a source checkout of fastnn (benchmarks/ is not installed with "
                            "the package); in the checkout run: python benchmarks/report.py --quick\n")


# --------------------------------------------------------------------------- checked before training

def test_plot_without_matplotlib_fails_before_training(monkeypatch, capsys, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "1", "--verbose", "0", "--plot", str(tmp_path / "curves.png")])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing trained
    assert captured.err == ('fastnn: --plot needs matplotlib, which is not installed: '
                            'pip install "fastnn[plot]" (or pip install matplotlib)\n')


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing" / "m.fastnn", "the folder {tmp}/missing does not exist"),
    (lambda tmp: (tmp / "file").write_text("") or tmp / "file" / "m.fastnn", "the folder {tmp}/file is not a folder"),
    (lambda tmp: tmp, "is a folder; give a file name"),
], ids=["missing-folder", "parent-is-a-file", "path-is-a-folder"])
def test_save_to_an_unwritable_place_fails_before_training(make, message, capsys, tmp_path):
    target = make(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "1", "--verbose", "0", "--save", str(target)])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing trained
    assert captured.err.startswith(f"fastnn: --save {target}: ") and captured.err.count("\n") == 1
    assert message.format(tmp=tmp_path) in captured.err
    assert not (tmp_path / "missing").exists()  # and nothing was created


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing" / "curves.png", "the folder {tmp}/missing does not exist"),
    (lambda tmp: (tmp / "file").write_text("") or tmp / "file" / "curves.png", "the folder {tmp}/file is not a folder"),
    (lambda tmp: tmp, "is a folder; give a file name, e.g. {tmp}/curves.png"),
    (lambda tmp: tmp / "curves", "expected an image file name ending in "),
    (lambda tmp: tmp / "curves.txt", "expected an image file name ending in "),
], ids=["missing-folder", "parent-is-a-file", "path-is-a-folder", "no-suffix", "not-an-image"])
def test_plot_to_an_unwritable_place_fails_before_training(make, message, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = make(tmp_path)
    err = _fails(["train", "--epochs", "1", "--verbose", "0", "--plot", str(target)], capsys, train=False)
    assert err.startswith(f"fastnn: --plot {target}: ") and message.format(tmp=tmp_path) in err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "curves.png").exists()  # nothing created


def _fails(argv, capsys, train=None):
    """The one line ``main(argv)`` writes on stderr as it exits with status 1
    (``train``: whether it trained first, judged by stdout)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("fastnn: ") and captured.err.count("\n") == 1, captured.err
    if train is not None:
        assert ("trained 1 epoch" in captured.out) == train
    return captured.err


def test_errors_after_training_are_one_line(monkeypatch, capsys, tmp_path):
    import errno

    import fastnn as fn

    def too_large(model, path):
        raise OSError(errno.EFBIG, "File too large")  # as under `ulimit -f`

    monkeypatch.setattr(fn.Sequential, "save", too_large)
    target = tmp_path / "m.fastnn"
    err = _fails(["train", "--epochs", "1", "--verbose", "0", "--save", str(target)], capsys, train=True)
    assert err == f"fastnn: --save {target}: cannot write it: File too large\n"


@pytest.mark.parametrize("argv, message", [
    (["--validation-split", "0.9999"], "fastnn: validation_split: 0.9999 of 1347 samples leaves 1347 for validation "
                                       "and 0 for training"),
    (["--hidden", "100000000"], "fastnn: units: a 64 x 100000000 weight matrix needs "),
], ids=["validation-split", "hidden"])
def test_train_errors_found_by_fastnn_are_one_line(argv, message, capsys):
    err = _fails(["train", "--epochs", "1", "--verbose", "0", *argv], capsys, train=False)
    assert err.startswith(message)


def test_predict_errors_are_one_line(capsys, tmp_path):
    model = str(_tiny_model(tmp_path / "m.fastnn"))
    np.save(tmp_path / "rows.npy", np.zeros((3, 1)))
    err = _fails(["predict", model, "--input", str(tmp_path / "rows.npy"), "--output",
                  str(tmp_path / "missing" / "p.csv")], capsys)
    assert err == f"fastnn: --output {tmp_path}/missing/p.csv: cannot write it: No such file or directory\n"
    # a header that declares 10**11 float64 (800 GB) in a file of a few bytes: no allocation attempted
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (10 ** 11, 1)
    with open(tmp_path / "bomb.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 8)
    err = _fails(["predict", model, "--input", str(tmp_path / "bomb.npy")], capsys)
    assert err == (f"fastnn: cannot read --input '{tmp_path}/bomb.npy': the file holds less data than its "
                   f"header declares (truncated or corrupt)\n")
    np.save(tmp_path / "wide.npy", np.zeros((3, 2)))
    err = _fails(["predict", model, "--input", str(tmp_path / "wide.npy")], capsys)
    assert err == "fastnn: X: expected 1 features (columns), got shape (3, 2)\n"


def test_other_exceptions_keep_their_traceback(monkeypatch, tmp_path):
    import fastnn as fn

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(fn.Sequential, "predict", bug)
    np.save(tmp_path / "rows.npy", np.zeros((3, 1)))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["predict", str(_tiny_model(tmp_path / "m.fastnn")), "--input", str(tmp_path / "rows.npy")])


def test_save_into_an_existing_folder_by_relative_name(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1", "--verbose", "0", "--save", "m.fastnn"]) == 0
    assert (tmp_path / "m.fastnn").is_file() and "saved m.fastnn" in capsys.readouterr().out


def _tiny_model(path, n_in=1, n_out=10):
    import fastnn as fn

    model = fn.Sequential([fn.Dense(n_out, activation="softmax", input_dim=n_in)], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(path)
    return path


def test_predict_into_a_closed_pipe_exits_quietly(tmp_path):
    # `fastnn predict ... | head -1`: megabytes of output, the reader leaves after one line.
    model = _tiny_model(tmp_path / "m.fastnn")
    np.save(tmp_path / "rows.npy", np.linspace(-1, 1, 20_000)[:, None])
    proc = subprocess.Popen([sys.executable, "-m", "fastnn", "predict", str(model), "--input",
                             str(tmp_path / "rows.npy"), "--proba"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().count(b",") == 9
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as for a command killed by SIGPIPE
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit


@pytest.mark.parametrize("argv, expected", [
    (["train", "--dataset", "boston"], "Or pass --data-dir PATH: the CSV file (any name) or its folder, "
                                       "with the 14 standard columns."),
    (["train", "--dataset", "boston", "--data-dir", "{tmp}/empty"], "--data-dir: no file '{tmp}/empty/boston_housing.csv'"),
    (["evaluate", "m.fastnn", "--dataset", "mnist", "--data-dir", "{tmp}/empty"],
     "Or leave out --data-dir to search the default folders and download."),
], ids=["boston", "boston-data-dir", "mnist-data-dir"])
def test_missing_data_set_messages_speak_command_line(argv, expected, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty cache
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    (tmp_path / "empty").mkdir()
    if argv[0] == "evaluate":
        _tiny_model(tmp_path / "m.fastnn", n_in=784)
        argv[1] = str(tmp_path / "m.fastnn")
    with pytest.raises(SystemExit) as exc:
        main([arg.format(tmp=tmp_path) for arg in argv])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastnn: cannot load data set '{argv[argv.index('--dataset') + 1]}': ")
    assert expected.format(tmp=tmp_path) in err
    assert "path=" not in err and "load_" not in err and "download=" not in err


def test_dataset_error_wording_falls_back_to_the_option_name():
    assert cli.cli_wording("load_mnist: give path=None or path='x'") == "give no --data-dir or --data-dir 'x'"


def test_counts_are_pluralised(capsys, tmp_path):
    assert main(["train", "--epochs", "1", "--verbose", "0", "--save", str(tmp_path / "m.fastnn")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^trained 1 epoch in [\d.]+ s \([\d.]+ s/epoch\)$", out, re.M), out
    assert "450 test rows" in out
    np.save(tmp_path / "one.npy", np.zeros((1, 64)))
    np.save(tmp_path / "two.npy", np.zeros((2, 64)))
    for rows, expected in (("one", "wrote 1 prediction to"), ("two", "wrote 2 predictions to")):
        assert main(["predict", str(tmp_path / "m.fastnn"), "--input", str(tmp_path / f"{rows}.npy"),
                     "--output", str(tmp_path / "p.csv")]) == 0
        assert capsys.readouterr().out.startswith(expected)
    assert [cli.plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]



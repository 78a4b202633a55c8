"""Every script in examples/ runs with --quick and reaches its outcome.

Each example is imported by path and its ``main(["--quick", "--out", DIR])``
called in this process (so compiled backends load once); the returned dict
is checked here as well as by the example itself.  Examples that read real
data files (Boston, MNIST) look in ``$FASTNN_DATA``, which defaults here to
the shared data folder beside the repository when it exists.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn as fn
from fastnn.datasets import load_boston

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

try:
    import matplotlib  # noqa: F401

    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False


@pytest.fixture(autouse=True)
def data_folder(monkeypatch):
    """$FASTNN_DATA, else the shared data folder beside the repository (if any)."""
    if not os.environ.get("FASTNN_DATA") and SHARED_DATA.is_dir():
        monkeypatch.setenv("FASTNN_DATA", str(SHARED_DATA))
    return os.environ.get("FASTNN_DATA")


def run_example(name, tmp_path, *extra):
    if str(EXAMPLES) not in sys.path:  # as when run as a script: helpers beside it import
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"fastnn_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outcome = module.main(["--quick", "--out", str(tmp_path), *extra])
    assert isinstance(outcome, dict)
    for path in outcome.get("plots", []):
        assert Path(path).parent == tmp_path, f"{path} was not written under --out"
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    if HAVE_MATPLOTLIB and "plots" in outcome:
        assert outcome["plots"], f"{name} made no plots although matplotlib is installed"
    return outcome


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")} - {"scaling_out"}
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    assert scripts <= tested, f"examples without a test: {sorted(scripts - tested)}"


def test_perceptron_worked_example(tmp_path):
    out = run_example("perceptron_worked_example", tmp_path)
    assert out["output"] == pytest.approx(1.84, abs=1e-9)
    assert out["error"] == pytest.approx(0.3528, abs=1e-9)
    np.testing.assert_allclose(out["W2"], [0.2816, 0.1488], atol=1e-9)
    np.testing.assert_allclose(out["W1"], [[0.979, 2.9706], [-2.0126, 3.98236]], atol=1e-9)


def test_perceptron_worked_example_plots(tmp_path, capsys):
    out = run_example("perceptron_worked_example", tmp_path, "--plots", "--backend", "numpy")
    printed = capsys.readouterr().out
    if not HAVE_MATPLOTLIB:
        assert "(no plots:" in printed
        return
    assert len(out["plots"]) == 4
    assert "lowest at W2[0] = 0.1775 (exactly 0.1769; now 0.5)" in printed
    assert out["best_W2_0"] == pytest.approx(0.1769, abs=0.003)
    assert out["outputs"][0] == pytest.approx(1.84)  # before training
    assert abs(out["outputs"][-1] - 1.0) < 0.05  # after 30 epochs, near the target
    assert out["losses"][0] == pytest.approx(0.3528)
    assert all(b < a for a, b in zip(out["losses"], out["losses"][1:]))


def test_perceptron_worked_example_runs_as_a_script():
    result = subprocess.run([sys.executable, str(EXAMPLES / "perceptron_worked_example.py"), "--backend", "numpy"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "O = 0.5*2.6 + 0.3*1.8 = 1.84" in result.stdout
    assert "OK:" in result.stdout


def test_xnor_logic_gates(tmp_path):
    out = run_example("xnor_logic_gates", tmp_path)
    assert out["gates"] == {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "NOT x1 AND NOT x2": [1, 0, 0, 0], "NOT": [1, 0]}
    assert out["hand_xnor"] == [1, 0, 0, 1]
    assert out["learned_xnor"] == [1, 0, 0, 1]


def test_wine_classifier(tmp_path):
    acc = run_example("wine_classifier", tmp_path)["accuracy"]
    assert acc["binary, with bias, standardized"] >= 0.9
    assert acc["binary, two hidden layers, standardized"] >= 0.9
    assert acc["3 classes, all 13 features"] >= 0.9
    # Without a bias the decision line passes through the origin, a corner of [0, 1]^2.
    assert acc["binary, no bias, scaled to [0, 1]"] <= acc["binary, with bias, scaled to [0, 1]"] - 0.15


def test_mnist_3b1b(tmp_path, data_folder):
    out = run_example("mnist_3b1b", tmp_path)
    if data_folder and (Path(data_folder) / "mnist-t10k").is_dir():
        assert out["dataset"] in ("MNIST", "MNIST test set")
    minimum = {"MNIST": 0.85, "MNIST test set": 0.85, "Fashion-MNIST": 0.72, "8x8 digits": 0.75}[out["dataset"]]
    assert out["accuracy"] >= minimum
    assert len(out["noise_answers"]) == 8 and all(0 <= k <= 9 for k in out["noise_answers"])


def test_mnist_mlp(tmp_path):
    out = run_example("mnist_mlp", tmp_path)
    (accuracies,) = out["accuracy"].values()  # --quick: 784-128-10 only
    assert sorted(accuracies) == sorted(fn.backends.available())
    minimum = {"MNIST": 0.88, "MNIST test set": 0.85, "Fashion-MNIST": 0.75, "8x8 digits": 0.8}[out["dataset"]]
    assert min(accuracies.values()) >= minimum
    # Same seed, same batches: the backends differ only by float32 rounding.
    assert max(accuracies.values()) - min(accuracies.values()) <= 0.02
    (seconds,) = out["seconds_per_epoch"].values()
    assert all(s > 0 for s in seconds.values())


def test_boston_regression(tmp_path):
    try:
        load_boston()
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"Boston housing CSV not available (set FASTNN_DATA): {str(exc).splitlines()[0]}")
    out = run_example("boston_regression", tmp_path)
    assert out["mae"] < 4.0  # $1000s, de-normalized
    assert out["mae"] < 0.6 * out["baseline_mae"]


def test_boston_regression_without_data_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="(?s)Boston housing CSV.*boston_housing.csv not found"):
        run_example("boston_regression", tmp_path, "--epochs", "1")


def test_function_approximation(tmp_path):
    results = run_example("function_approximation", tmp_path)["results"]
    assert results["2x + 5 | linear, 1 hidden"]["mse_wide_range"] < 1e-2
    assert results["2 sin(x) + 5 | linear, 1 hidden"]["mse_train_range"] > 0.2
    assert results["2 sin(x) + 5 | tanh, 1 hidden"]["mse_train_range"] < 0.05
    assert results["piecewise | relu, 1 hidden"]["mse_train_range"] < 0.05
    # Beyond the data ReLU networks continue in straight lines, tanh networks level off.
    relu_at_6, tanh_at_6 = results["piecewise | relu, 1 hidden"]["at_6"], results["piecewise | tanh, 1 hidden"]["at_6"]
    assert abs(relu_at_6 - 6) < abs(tanh_at_6 - 6)


def test_function_approximation_sweeps(tmp_path, capsys):
    out = run_example("function_approximation_sweeps", tmp_path)
    printed = capsys.readouterr().out
    by_width, by_epochs = out["by_width"], out["by_epochs"]
    widths, checkpoints = sorted(by_width), sorted(by_epochs)
    assert by_width[widths[-1]] < 0.5 * by_width[widths[0]]  # more neurons, better fit
    assert by_epochs[checkpoints[-1]] < 0.5 * by_epochs[checkpoints[0]]  # more epochs, better fit
    assert {"glorot_uniform", "glorot_normal", "he_normal"} <= set(out["by_init"])
    assert all(row["mse"] < 0.5 * out["variance"] for row in out["by_init"].values())
    assert f"{widths[-1]:>4} units   MSE {by_width[widths[-1]]:.4f}" in printed
    assert "glorot_normal   MSE" in printed and "he_normal       MSE" in printed


def test_optimizers_on_a_valley(tmp_path):
    out = run_example("optimizers_on_a_valley", tmp_path)
    assert set(out["final_loss"]) >= {"GD, lr 0.4", "momentum 0.9, lr 0.05", "AdaGrad, lr 1.0", "RMSprop, lr 0.3",
                                      "Adam, lr 0.5"}
    assert all(loss < 0.161 for loss in out["final_loss"].values())  # 1% of L(-9, 2) = 16.1
    assert out["diverged_loss"] > 16.1
    lrs = out["schedules"]
    assert lrs["exponential: x0.96 per epoch"][1] == pytest.approx(0.096)
    assert lrs["warmup 10, then cosine"][5] == pytest.approx(0.05)


def test_random_labels(tmp_path, capsys):
    out = run_example("random_labels", tmp_path)
    printed = capsys.readouterr().out
    true, shuffled = out["results"]["true"], out["results"]["shuffled"]
    assert true["train_accuracy"] >= 0.99 and true["test_accuracy"] >= 0.85
    # Shuffled labels are memorised: training accuracy far above chance (10%), test accuracy at chance.
    assert shuffled["train_accuracy"] >= 0.9
    assert abs(shuffled["test_accuracy"] - out["chance"]) <= 0.08
    # Memorising takes longer than learning the pattern.
    assert true["epochs_to_90"] < shuffled["epochs_to_90"]
    assert f"  shuffled       {shuffled['train_accuracy']:.3f}     {shuffled['test_accuracy']:.3f}" in printed
    assert "OK: on shuffled labels" in printed

"""fastnn.plot: every helper writes a valid PNG and draws what it says."""
import builtins
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn.datasets import load_wine

pytest.importorskip("matplotlib")

from fastnn import plot  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 1000, f"{path} is suspiciously small ({len(data)} bytes)"


@pytest.fixture
def fitted_model():
    X, y = load_wine(binary=True, features=["alcohol", "proline"])
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    model = fn.Sequential([fn.Dense(4, activation="relu", input_dim=2), fn.Dense(1, activation="sigmoid")],
                          seed=0, backend="numpy")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "mse"])
    history = model.fit(X, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
    return model, history, X, y


def test_plot_history_has_loss_and_metric_panels_with_validation_curves(fitted_model, tmp_path):
    _, history, _, _ = fitted_model
    path = tmp_path / "curves.png"
    fig = plot.plot_history(history, path=path)
    assert_png(path)
    assert len(fig.axes) == 3  # loss, accuracy, mse
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 2]  # train and val each
    assert fig.axes[0].get_ylabel() == "loss"
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), history.history["loss"])
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), [1, 2, 3])


def test_plot_history_selected_metrics_and_plain_dict(tmp_path):
    logs = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.8], "lr": [0.1, 0.1]}
    fig = plot.plot_history(logs, path=tmp_path / "a" / "b.png", metrics=["accuracy"])
    assert_png(tmp_path / "a" / "b.png")  # the folder is created
    assert len(fig.axes) == 2
    assert [len(ax.lines) for ax in fig.axes] == [1, 1]
    assert len(plot.plot_history(logs, path=tmp_path / "c.png", metrics=[]).axes) == 1


def test_plot_history_rejects_unknown_metric_and_empty_history(tmp_path):
    with pytest.raises(ValueError, match="'auc'.*logged"):
        plot.plot_history({"loss": [1.0]}, metrics=["auc"], path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one epoch"):
        plot.plot_history(fn.callbacks.History(), path=tmp_path / "x.png")


def test_plot_weights_as_images_one_axes_per_neuron(tmp_path):
    W = np.random.default_rng(0).normal(size=(784, 10))
    path = tmp_path / "w.png"
    fig = plot.plot_weights_as_images(W, path=path, ncols=4)
    assert_png(path)
    assert len(fig.axes) == 10  # the two unused cells of the 3x4 grid are removed
    image = fig.axes[3].images[0].get_array()
    np.testing.assert_allclose(image, W[:, 3].reshape(28, 28))  # column j is neuron j
    assert len(plot.plot_weights_as_images(W, path=tmp_path / "w5.png", max_images=5).axes) == 5


def test_plot_weights_as_images_takes_a_model_and_checks_the_shape(fitted_model, tmp_path):
    model = fitted_model[0]
    fig = plot.plot_weights_as_images(model, shape=(2, 1), path=tmp_path / "m.png")
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="n_in = 784"):
        plot.plot_weights_as_images(model, path=tmp_path / "bad.png")


def test_plot_images_with_titles(tmp_path):
    images = np.random.default_rng(0).random((3, 16))
    fig = plot.plot_images(images, shape=(4, 4), titles=["a", "b", "c"], path=tmp_path / "i.png")
    assert_png(tmp_path / "i.png")
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="titles"):
        plot.plot_images(images, shape=(4, 4), titles=["a"], path=tmp_path / "j.png")


def test_plot_function_fit_target_plus_one_line_per_prediction(fitted_model, tmp_path):
    x = np.linspace(-6, 6, 50)
    model = fn.Sequential([fn.Dense(3, activation="tanh", input_dim=1), fn.Dense(1)], seed=0)
    path = tmp_path / "fit.png"
    fig = plot.plot_function_fit(x, np.sin, {"zeros": np.zeros(50), "model": model}, path=path,
                                 train_range=(-3, 3), X_train=x[:10], y_train=np.sin(x[:10]))
    assert_png(path)
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.sin(x))
    with pytest.raises(ValueError, match="expected 50 values"):
        plot.plot_function_fit(x, None, {"short": np.zeros(3)}, path=tmp_path / "bad.png")


def test_plot_decision_boundary_one_panel_per_model(fitted_model, tmp_path):
    model, _, X, y = fitted_model
    path = tmp_path / "db.png"
    fig = plot.plot_decision_boundary({"a": model, "b": model}, X, y, path=path, resolution=30)
    assert_png(path)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    with pytest.raises(ValueError, match=r"\(n_samples, 2\)"):
        plot.plot_decision_boundary(model, np.zeros((4, 3)), np.zeros(4), path=tmp_path / "bad.png")


def test_plot_optimizer_paths_and_schedules(tmp_path):
    paths = {"gd": np.array([[-8.0, 2.0], [-7.0, 1.0], [-6.0, 0.5]]), "adam": np.array([[-8.0, 2.0], [-7.5, 1.5]])}
    fig = plot.plot_optimizer_paths(lambda a, b: 0.1 * a**2 + 2 * b**2, paths, minimum=(0, 0),
                                    path=tmp_path / "paths.png")
    assert_png(tmp_path / "paths.png")
    assert len(fig.axes[0].lines) == 2
    schedules = {"constant": fn.schedules.Constant(0.1), "step": fn.schedules.StepDecay(0.1, 0.5, 10),
                 "lambda": lambda t: 0.1 / (1 + t)}
    fig = plot.plot_schedules(schedules, 30, path=tmp_path / "lr.png")
    assert_png(tmp_path / "lr.png")
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[1].get_ydata()[[0, 9, 10, 29]], [0.1, 0.1, 0.05, 0.025])


def test_without_path_the_figure_is_not_saved_but_returned():
    import matplotlib.pyplot as plt

    fig = plot.plot_history({"loss": [1.0, 0.5]})
    try:
        assert len(fig.axes) == 1
    finally:
        plt.close(fig)


def test_missing_matplotlib_gives_an_install_hint(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r"pip install fastnn\[plot\]"):
        plot.plot_history({"loss": [1.0]})

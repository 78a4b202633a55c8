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


# ------------------------------------------------------- the worked example's plots
def worked_example_model():
    """The 2-2-1 ReLU network of examples/perceptron_worked_example.py, no biases."""
    model = fn.Sequential([fn.Dense(2, activation="relu", use_bias=False, input_dim=2),
                           fn.Dense(1, use_bias=False)], backend="numpy", dtype="float64")
    model.set_weights([np.array([[1.0, -2.0], [3.0, 4.0]]), np.array([[0.5], [0.3]])])
    model.compile(optimizer=fn.optimizers.SGD(learning_rate=0.1), loss="half_squared_error")
    return model, np.array([[0.5, 0.7]]), np.array([1.0])


def test_plot_loss_vs_weight_sweeps_one_weight_and_marks_the_current_value(tmp_path):
    model, X, y = worked_example_model()
    before = model.get_weights()
    path = tmp_path / "w2.png"
    fig = plot.plot_loss_vs_weight(model, X, y, layer=1, index=(0, 0), span=1.0, n=41, path=path)
    assert_png(path)
    (ax,) = fig.axes
    curve, marker = ax.lines[0], ax.lines[1]
    w = curve.get_xdata()
    np.testing.assert_allclose(w[[0, -1]], [-0.5, 1.5])  # 0.5 +- 1
    # h = (2.6, 1.8): E(w) = 1/2 (2.6 w + 0.3 * 1.8 - 1)^2
    np.testing.assert_allclose(curve.get_ydata(), 0.5 * (2.6 * w + 0.54 - 1.0) ** 2, rtol=1e-12)
    np.testing.assert_allclose(marker.get_xdata(), [0.5, 0.5])
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0.5, 0.3528]])
    assert ax.get_xlabel() == "W2[0, 0]"
    for old, new in zip(before, model.get_weights()):  # the model is left as it was
        np.testing.assert_array_equal(old, new)


def test_plot_loss_vs_weight_limits_and_errors(tmp_path):
    model, X, y = worked_example_model()
    fig = plot.plot_loss_vs_weight(model, X, y, layer=0, index=(1, 0), span=(2.0, 4.0), n=5,
                                   path=tmp_path / "w1.png")
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [2.0, 2.5, 3.0, 3.5, 4.0])
    with pytest.raises(ValueError, match="outside"):
        plot.plot_loss_vs_weight(model, X, y, layer=1, index=(5, 0), path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="layers"):
        plot.plot_loss_vs_weight(model, X, y, layer=7, path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="no bias"):
        plot.plot_loss_vs_weight(model, X, y, layer=1, index=0, bias=True, path=tmp_path / "x.png")


def test_output_recorder_and_plot_outputs_over_epochs(tmp_path):
    model, X, y = worked_example_model()
    recorder = fn.callbacks.OutputRecorder(X)
    model.fit(X, y, epochs=4, batch_size=1, verbose=0, callbacks=[recorder])
    assert recorder.epochs == [0, 1, 2, 3, 4]
    outputs = recorder.as_array()
    assert outputs.shape == (5, 1, 1)
    assert outputs[0, 0, 0] == pytest.approx(1.84)  # before training
    np.testing.assert_allclose(outputs[-1], model.predict(X))
    path = tmp_path / "outputs.png"
    fig = plot.plot_outputs_over_epochs(recorder, targets=y, labels=["x = (0.5, 0.7)"], path=path)
    assert_png(path)
    (ax,) = fig.axes
    assert len(ax.lines) == 2  # the output, its target
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0, 1, 2, 3, 4])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), outputs[:, 0, 0])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1.0, 1.0])


def test_plot_outputs_over_epochs_from_an_array(tmp_path):
    outputs = np.arange(24, dtype=float).reshape(4, 3, 2)  # 4 epochs, 3 inputs, 2 output units
    fig = plot.plot_outputs_over_epochs(outputs, path=tmp_path / "o.png")
    (ax,) = fig.axes
    assert len(ax.lines) == 6
    np.testing.assert_allclose(ax.lines[3].get_ydata(), outputs[:, 1, 1])  # input-major
    with pytest.raises(ValueError, match="labels"):
        plot.plot_outputs_over_epochs(outputs, labels=["a"], path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="targets"):
        plot.plot_outputs_over_epochs(outputs, targets=[1.0], path=tmp_path / "x.png")


def test_plot_history_log_scale_applies_to_the_loss_panel(tmp_path):
    logs = {"loss": [1.0, 0.1, 0.01], "accuracy": [0.5, 0.8, 0.9]}
    fig = plot.plot_history(logs, log_scale=True, path=tmp_path / "log.png")
    assert_png(tmp_path / "log.png")
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "linear"]
    assert plot.plot_history(logs, path=tmp_path / "lin.png").axes[0].get_yscale() == "linear"


def test_plot_loss_change_is_the_difference_between_epochs(fitted_model, tmp_path):
    _, history, _, _ = fitted_model
    path = tmp_path / "change.png"
    fig = plot.plot_loss_change(history, path=path)
    assert_png(path)
    (ax,) = fig.axes
    assert len(ax.lines) == 3  # loss, val_loss, and the zero line
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [2, 3])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.diff(history.history["loss"]))
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.diff(history.history["val_loss"]))
    assert ax.get_yscale() == "symlog"
    fig = plot.plot_loss_change({"loss": [2.0, 1.0, 0.5]}, relative=True, path=tmp_path / "rel.png")
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [-0.5, -0.5])
    with pytest.raises(ValueError, match="two epochs"):
        plot.plot_loss_change({"loss": [1.0]}, path=tmp_path / "x.png")

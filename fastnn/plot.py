"""Plots for training runs and for teaching: learning curves (also on a log
scale, and the change in loss between epochs), the loss as a function of one
weight, the network's outputs over epochs, weights as images, function fits,
decision boundaries, optimizer paths, schedules.

matplotlib is an optional dependency (``pip install fastnn[plot]``), imported
only when a function here is called.  Every function returns the matplotlib
``Figure``; with ``path`` it also writes the figure to that file (PNG, or the
format the extension names), creating the folder if needed.

A figure that is saved is built without pyplot (``matplotlib.figure.Figure``
renders with Agg), so saving works on a machine without a display and leaves
no open figure behind in a long script.  Without ``path`` the figure comes
from pyplot, so ``matplotlib.pyplot.show()`` displays it; in Jupyter the
returned figure displays itself.

>>> history = model.fit(X, y, epochs=10, validation_split=0.2)   # doctest: +SKIP
>>> fastnn.plot.plot_history(history, path="curves.png")         # doctest: +SKIP

Design note: one module of about a dozen independent functions, each a short
recipe over the same two helpers (``_new_figure`` and ``_finish``: the pyplot or
Agg choice and saving).  Users look for every plot in ``fastnn.plot``; split
by topic, each file would repeat those helpers' imports for a few functions.
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = [
    "plot_decision_boundary",
    "plot_function_fit",
    "plot_history",
    "plot_images",
    "plot_loss_change",
    "plot_loss_vs_weight",
    "plot_optimizer_paths",
    "plot_outputs_over_epochs",
    "plot_schedules",
    "plot_weights_as_images",
]

# Logged quantities that are not learning curves.
_NOT_METRICS = ("loss", "lr", "grad_norm", "weight_change")


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "fastnn.plot needs matplotlib, an optional dependency: pip install fastnn[plot] "
            "(or pip install matplotlib)"
        ) from exc


def _new_figure(path, figsize):
    _require_matplotlib()
    if path is not None:
        from matplotlib.figure import Figure

        return Figure(figsize=figsize, layout="constrained")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def _finish(fig, path, title=None):
    if title:
        fig.suptitle(title)
    if path is not None:
        path = os.fspath(path)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def _grid(fig, n, ncols):
    """``n`` axes in rows of ``ncols``; unused cells of the last row are removed."""
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    return list(axes[:n])


# ---------------------------------------------------------------- learning curves
def plot_history(history, path=None, metrics=None, title=None, log_scale=False):
    """Learning curves: one panel for the loss and one per metric, each with
    its validation curve (``val_*``) when there is one.

    Parameters
    ----------
    history : History, dict or Sequential
        What ``fit`` returns, its ``.history`` dict of per-epoch lists, or a
        model that has been fitted (its ``model.history`` is used).
    path : str or os.PathLike, optional
        Where to save the figure.
    metrics : list of str, optional
        Metrics to plot besides the loss (names as logged, e.g. ``"accuracy"``);
        default: every logged metric.
    title : str, optional
    log_scale : bool
        Draw the loss panel on a logarithmic y-axis, where a loss that keeps
        falling by the same factor per epoch is a straight line.

    Returns
    -------
    matplotlib.figure.Figure
        ``1 + len(metrics)`` axes.
    """
    history, logs, epochs = _history_logs(history)
    if metrics is None:
        metrics = [k for k in logs if not k.startswith("val_") and k not in _NOT_METRICS]
    else:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in logs]
        if unknown:
            raise ValueError(f"metrics: {unknown} not in the history; logged: {sorted(logs)}")

    names = ["loss"] + metrics
    fig = _new_figure(path, (4.2 * len(names), 3.4))
    for ax, name in zip(_grid(fig, len(names), len(names)), names):
        ax.plot(epochs[: len(logs[name])], logs[name], label=name)
        if f"val_{name}" in logs:
            ax.plot(epochs[: len(logs[f"val_{name}"])], logs[f"val_{name}"], label=f"val_{name}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        if log_scale and name == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both" if log_scale and name == "loss" else "major")
        ax.legend()
    return _finish(fig, path, title)


def _history_logs(history):
    """(history, logs dict, epoch numbers counted from 1) of a History, dict or fitted model."""
    if hasattr(history, "layers") and hasattr(history, "history"):  # a fitted model
        history = history.history
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs.get("loss"):
        raise ValueError("history: expected a History from fit() (or its .history dict) with at least one epoch")
    epoch_numbers = getattr(history, "epoch", None) or range(len(logs["loss"]))
    return history, logs, np.asarray(epoch_numbers) + 1


def plot_loss_change(history, path=None, relative=False, title=None):
    """The change in loss from one epoch to the next, ``loss[t] - loss[t-1]``.

    Below zero: the loss fell.  Large early drops that shrink towards zero
    show training settling; values that stay positive show divergence.  The
    y-axis is symmetric-logarithmic, so small late changes stay visible next
    to large early ones.

    Parameters
    ----------
    history : History, dict or Sequential
        As for `plot_history`; at least two epochs.
    path : str or os.PathLike, optional
    relative : bool
        Plot ``(loss[t] - loss[t-1]) / loss[t-1]`` instead.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes; a line for the loss change (one more for ``val_loss``),
        its x data the epochs 2..n.
    """
    _, logs, epochs = _history_logs(history)
    if len(logs["loss"]) < 2:
        raise ValueError("history: the change in loss needs at least two epochs")
    fig = _new_figure(path, (6.4, 4.0))
    ax = fig.add_subplot()
    smallest = np.inf
    for name in ("loss", "val_loss"):
        if name not in logs:
            continue
        values = np.asarray(logs[name], dtype=float)
        change = np.diff(values)
        if relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                change = change / values[:-1]
        ax.plot(epochs[1: len(values)], change, marker="o", markersize=3, label=f"change in {name}")
        nonzero = np.abs(change[np.isfinite(change) & (change != 0)])
        if nonzero.size:
            smallest = min(smallest, float(nonzero.min()))
    ax.axhline(0.0, color="k", linewidth=0.8)
    if np.isfinite(smallest):
        ax.set_yscale("symlog", linthresh=smallest)
    ax.set_xlabel("epoch")
    ax.set_ylabel("relative change in loss" if relative else "loss[t] - loss[t-1]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path, title)


# ------------------------------------------------------- one weight, outputs
def plot_loss_vs_weight(model, X, y, layer=0, index=(0, 0), span=1.0, n=201, path=None, bias=False,
                        sample_weight=None, title=None):
    """The loss as a function of one weight, every other weight held fixed.

    The curve is a slice through the loss surface along one axis; its slope
    at the marked current value is the gradient for that weight, and a step
    of gradient descent moves the marker downhill.  The model is left as it
    was.

    Parameters
    ----------
    model : Sequential
        Built and compiled (its loss is what is plotted).
    X, y : array-like
        The data the loss is measured on, as for ``model.evaluate``.
    layer : int
        Which layer, counted from 0: ``layer=1, index=(0, 0)`` sweeps the
        first weight of the second layer (``W2[0]`` of a one-output network).
    index : int or tuple of int
        Position in the layer's ``W`` (``(n_in, n_out)``), or in ``b`` with
        ``bias=True``.
    span : float or tuple (low, high)
        Half-width of the sweep around the current value, or its limits.
    n : int
        Number of values swept.
    path : str or os.PathLike, optional
    bias : bool
        Sweep a bias instead of a weight.
    sample_weight : array-like, optional
        Passed to ``model.evaluate``.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes: ``lines[0]`` the loss over the swept values, ``lines[1]``
        the current value (a vertical line); a dot marks its loss.
    """
    _require_matplotlib()  # before the sweep, which may take a while
    try:
        target = model.layers[layer]
    except (IndexError, TypeError):
        raise ValueError(f"layer: expected an index into the model's {len(model.layers)} layers, "
                         f"got {layer!r}") from None
    array = getattr(target, "b" if bias else "W", None)
    if array is None or (bias and not getattr(target, "use_bias", True)):
        raise ValueError(f"layer {layer} has no {'bias' if bias else 'weights'}"
                         f"{'' if model.built else ' (the model is not built)'}")
    index = (index,) if np.ndim(index) == 0 else tuple(int(i) for i in index)
    try:
        current = float(array[index])
    except (IndexError, ValueError):
        raise ValueError(f"index: {index} is outside layer {layer}'s {'b' if bias else 'W'} of shape "
                         f"{array.shape}") from None
    low, high = (current - span, current + span) if np.ndim(span) == 0 else map(float, span)
    if not low < high:
        raise ValueError(f"span: expected a positive half-width or (low, high) with low < high, got {span!r}")
    values = np.linspace(low, high, int(n))
    losses = np.empty(values.size)
    original = array[index].copy()
    try:
        for i, value in enumerate(values):
            array[index] = value
            losses[i] = model.evaluate(X, y, sample_weight=sample_weight)["loss"]
        array[index] = original
        current_loss = model.evaluate(X, y, sample_weight=sample_weight)["loss"]
    finally:
        array[index] = original

    name = f"{'b' if bias else 'W'}{layer + 1}[{', '.join(map(str, index))}]"
    fig = _new_figure(path, (6.4, 4.0))
    ax = fig.add_subplot()
    ax.plot(values, losses, label="loss")
    ax.axvline(current, color="C3", linestyle="--", linewidth=1, label=f"current {name} = {current:.4g}")
    ax.scatter([current], [current_loss], color="C3", zorder=5)
    ax.set_xlabel(name)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path, title)


def plot_outputs_over_epochs(outputs, path=None, epochs=None, labels=None, targets=None, title=None):
    """The network's outputs for a few fixed inputs, epoch by epoch.

    Parameters
    ----------
    outputs : OutputRecorder or array-like
        A ``fastnn.callbacks.OutputRecorder`` that watched ``fit``, or an array
        ``(n_epochs, n_inputs)`` / ``(n_epochs, n_inputs, n_outputs)``.
    path : str or os.PathLike, optional
    epochs : array-like, optional
        The x values, one per recorded epoch; default the recorder's epochs
        (0 = before training), or 0, 1, 2, ... for an array.
    labels : list of str, optional
        One per input (default ``"input 0"``, ...).
    targets : array-like, optional
        The wanted outputs, ``(n_inputs,)`` or ``(n_inputs, n_outputs)``,
        drawn as dotted lines in the matching colours.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes; one line per input and output unit (input-major), then one
        per target.
    """
    if hasattr(outputs, "outputs") and hasattr(outputs, "epochs"):  # an OutputRecorder
        if epochs is None:
            epochs = outputs.epochs
        outputs = outputs.as_array()
    outputs = np.asarray(outputs, dtype=float)
    if outputs.ndim == 2:
        outputs = outputs[:, :, None]
    if outputs.ndim != 3 or outputs.shape[0] == 0 or outputs.shape[1] == 0:
        raise ValueError(f"outputs: expected (n_epochs, n_inputs[, n_outputs]) with at least one epoch, "
                         f"got shape {outputs.shape}")
    n_epochs, n_inputs, n_outputs = outputs.shape
    epochs = np.arange(n_epochs) if epochs is None else np.asarray(epochs)
    if epochs.shape != (n_epochs,):
        raise ValueError(f"epochs: expected {n_epochs} values, got shape {epochs.shape}")
    if labels is None:
        labels = [f"input {i}" for i in range(n_inputs)]
    elif len(labels) != n_inputs:
        raise ValueError(f"labels: expected {n_inputs} labels, got {len(labels)}")
    if targets is not None:
        targets = np.asarray(targets, dtype=float)
        if targets.size != n_inputs * n_outputs:
            raise ValueError(f"targets: expected {n_inputs * n_outputs} values ({n_inputs} inputs x "
                             f"{n_outputs} outputs), got shape {targets.shape}")
        targets = targets.reshape(n_inputs, n_outputs)

    fig = _new_figure(path, (6.4, 4.0))
    ax = fig.add_subplot()
    colours = []
    for i in range(n_inputs):
        for k in range(n_outputs):
            label = labels[i] if n_outputs == 1 else f"{labels[i]}, output {k}"
            (line,) = ax.plot(epochs, outputs[:, i, k], marker="o" if n_epochs <= 30 else None, markersize=3,
                              label=label)
            colours.append(line.get_color())
    if targets is not None:
        for (i, k), colour in zip(np.ndindex(n_inputs, n_outputs), colours):
            ax.plot([epochs[0], epochs[-1]], [targets[i, k]] * 2, linestyle=":", color=colour,
                    label="target" if (i, k) == (0, 0) else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("output")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path, title)


# ------------------------------------------------------------------------ images
def _image_grid(images, path, ncols, titles, cmap, symmetric, title):
    n = len(images)
    ncols = max(1, min(int(ncols), n))
    fig = _new_figure(path, (1.4 * ncols, 1.55 * math.ceil(n / ncols) + (0.4 if title else 0)))
    for i, ax in enumerate(_grid(fig, n, ncols)):
        img = images[i]
        if symmetric:  # zero is the middle colour; each image uses its own range
            limit = float(np.max(np.abs(img))) or 1.0
            ax.imshow(img, cmap=cmap, vmin=-limit, vmax=limit)
        else:
            ax.imshow(img, cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    return _finish(fig, path, title)


def plot_images(images, shape=None, path=None, ncols=8, titles=None, cmap="gray", title=None):
    """A grid of images, e.g. input digits or white noise with the network's answers.

    Parameters
    ----------
    images : array-like, (n_images, height, width) or (n_images, n_pixels)
        Flat rows need ``shape``.
    shape : tuple (height, width), optional
    path : str or os.PathLike, optional
    ncols : int
        Images per row.
    titles : list of str, optional
        One per image.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per image.
    """
    images = np.asarray(images, dtype=float)
    if shape is not None:
        if images.ndim != 2 or images.shape[1] != int(np.prod(shape)):
            raise ValueError(f"images: expected rows of {int(np.prod(shape))} pixels for shape {tuple(shape)}, "
                             f"got an array of shape {images.shape}")
        images = images.reshape((len(images),) + tuple(shape))
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images: expected (n_images, height, width) or flat rows with shape=..., "
                         f"got an array of shape {images.shape}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles: expected {len(images)} titles, got {len(titles)}")
    return _image_grid(images, path, ncols, titles, cmap, False, title)


def plot_weights_as_images(W, shape=(28, 28), path=None, ncols=8, max_images=None, title=None):
    """Show what each first-layer neuron looks for: its incoming weights as an image.

    Red pixels push the neuron's input up, blue ones down (each image is
    scaled to its own largest weight).

    Parameters
    ----------
    W : array-like (n_in, n_units), or a Sequential / layer
        Weights in fastnn's ``(n_in, n_out)`` orientation: column ``j`` is
        neuron ``j``.  A model contributes its first layer's weights.
    shape : tuple (height, width)
        Image shape; ``height * width`` must equal ``n_in``.
    path : str or os.PathLike, optional
    ncols : int
        Images per row.
    max_images : int, optional
        Show only the first ``max_images`` neurons.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per neuron shown.
    """
    if hasattr(W, "layers"):  # a Sequential
        if not W.layers or W.layers[0].W is None:
            raise ValueError("W: the model has no weights yet")
        W = W.layers[0].W
    elif hasattr(W, "W") and not isinstance(W, np.ndarray):  # a layer
        W = W.W
    W = np.asarray(W, dtype=float)
    n_pixels = int(np.prod(shape))
    if W.ndim != 2 or W.shape[0] != n_pixels:
        raise ValueError(f"W: expected (n_in, n_units) with n_in = {n_pixels} for images of shape "
                         f"{tuple(shape)}, got {W.shape}")
    n = W.shape[1] if max_images is None else min(int(max_images), W.shape[1])
    images = W[:, :n].T.reshape((n,) + tuple(shape))
    titles = [f"neuron {j}" for j in range(n)]
    return _image_grid(images, path, ncols, titles, "RdBu_r", True, title)


# ----------------------------------------------------------------- 1-D functions
def _column(values, name, n):
    arr = np.asarray(values, dtype=float)
    if arr.size != n:
        raise ValueError(f"{name}: expected {n} values (one per x), got shape {arr.shape}")
    return arr.reshape(n)


def plot_function_fit(x, target, predictions, path=None, train_range=None, X_train=None, y_train=None,
                      title=None, ylim=None):
    """A 1-D function and what networks made of it.

    Parameters
    ----------
    x : array-like, (n,) or (n, 1)
        Where to draw the curves; may reach beyond the training range.
    target : array-like (n,), callable, or None
        The true function: its values at ``x``, or ``f`` with ``f(x)`` vectorized.
    predictions : dict
        Label -> values at ``x`` ((n,) or (n, 1)), or a model with ``predict``.
    train_range : tuple (low, high), optional
        Shaded: the interval the networks were trained on.
    X_train, y_train : array-like, optional
        Training points, drawn as dots.
    ylim : tuple, optional
        y-axis limits (useful when extrapolations run away).

    Returns
    -------
    matplotlib.figure.Figure
        One axes; one line for ``target`` and one per prediction.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    n = x.size
    order = np.argsort(x, kind="stable")
    fig = _new_figure(path, (8.0, 4.2))
    ax = fig.add_subplot()
    if train_range is not None:
        ax.axvspan(*train_range, color="0.92", zorder=0, label="training range")
    if X_train is not None and y_train is not None:
        ax.scatter(np.ravel(X_train), np.ravel(y_train), s=6, color="0.55", zorder=1, label="training data")
    if target is not None:
        values = target(x) if callable(target) else target
        ax.plot(x[order], _column(values, "target", n)[order], "k--", linewidth=2, label="target", zorder=3)
    for label, pred in predictions.items():
        if hasattr(pred, "predict"):
            pred = pred.predict(x.reshape(-1, 1).astype(pred.dtype))
        ax.plot(x[order], _column(pred, f"predictions[{label!r}]", n)[order], label=label, zorder=4)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _finish(fig, path, title)


# ----------------------------------------------------------- decision boundaries
def plot_decision_boundary(models, X, y, path=None, resolution=200, feature_names=None, title=None):
    """Decision regions of classifiers on two input features, with the data on top.

    Parameters
    ----------
    models : Sequential or dict
        A model, or label -> model for one panel each.  One sigmoid output
        is split at 0.5; several outputs by argmax.
    X : array-like, (n_samples, 2)
        Inputs as the models see them (e.g. standardized).
    y : array-like, (n_samples,)
        Integer class labels.
    resolution : int
        Grid points per axis.
    feature_names : tuple of 2 str, optional
        Axis labels.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X: expected (n_samples, 2) inputs, got shape {X.shape}")
    if not isinstance(models, dict):
        models = {"": models}
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 1e-9
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([g1.ravel(), g2.ravel()])
    n_classes = int(max(y.max(initial=0) + 1, 2))

    fig = _new_figure(path, (4.4 * len(models), 4.0))
    for ax, (label, model) in zip(_grid(fig, len(models), len(models)), models.items()):
        out = model.predict(grid.astype(model.dtype))
        classes = (out[:, 0] > 0.5).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
        n_levels = max(n_classes, out.shape[1])
        ax.contourf(g1, g2, classes.reshape(g1.shape), levels=np.arange(n_levels + 1) - 0.5,
                    cmap="coolwarm" if n_levels == 2 else "viridis", alpha=0.3)
        ax.scatter(X[:, 0], X[:, 1], c=y, s=60 if len(X) < 50 else 14, edgecolors="k", linewidths=0.3,
                   cmap="coolwarm" if n_levels == 2 else "viridis", vmin=0, vmax=n_levels - 1)
        if feature_names is not None:
            ax.set_xlabel(feature_names[0])
            ax.set_ylabel(feature_names[1])
        if label:
            ax.set_title(label, fontsize=10)
    return _finish(fig, path, title)


# ------------------------------------------------------------------- optimizers
def plot_optimizer_paths(loss, paths, path=None, minimum=None, xlim=None, ylim=None, levels=25, title=None):
    """Contours of a loss of two weights, and the paths optimizers took on it.

    Parameters
    ----------
    loss : callable
        ``loss(w1, w2)`` vectorized over arrays of the same shape.
    paths : dict
        Label -> (n_steps + 1, 2) array of the weights after each step.
    minimum : tuple (w1, w2), optional
        Marked with a star.
    xlim, ylim : tuple, optional
        Plotted range; default: every path, with a margin.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; one line per path.
    """
    arrays = {label: np.asarray(p, dtype=float).reshape(-1, 2) for label, p in paths.items()}
    points = np.concatenate(list(arrays.values()))
    points = points[np.isfinite(points).all(axis=1)]
    span = np.maximum(points.max(axis=0) - points.min(axis=0), 1e-3)
    if xlim is None:
        xlim = (points[:, 0].min() - 0.1 * span[0], points[:, 0].max() + 0.1 * span[0])
    if ylim is None:
        ylim = (points[:, 1].min() - 0.1 * span[1], points[:, 1].max() + 0.1 * span[1])
    g1, g2 = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    fig = _new_figure(path, (7.0, 4.6))
    ax = fig.add_subplot()
    ax.contour(g1, g2, loss(g1, g2), levels=levels, cmap="Greys", linewidths=0.6)
    for label, p in arrays.items():
        ax.plot(p[:, 0], p[:, 1], marker="o", markersize=2.5, linewidth=1.2, label=label)
    if minimum is not None:
        ax.scatter([minimum[0]], [minimum[1]], marker="*", s=120, color="k", zorder=5, label="minimum")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")
    ax.legend(fontsize=8)
    return _finish(fig, path, title)


def plot_schedules(schedules, steps, path=None, xlabel="epoch", title=None):
    """Learning rate over time for several schedules.

    Parameters
    ----------
    schedules : dict
        Label -> schedule (``fastnn.schedules``) or any callable ``step -> lr``.
    steps : int or sequence of int
        Steps at which to evaluate (``range(steps)`` for an int).

    Returns
    -------
    matplotlib.figure.Figure
        One axes; one line per schedule.
    """
    steps = np.arange(steps) if np.ndim(steps) == 0 else np.asarray(steps)
    fig = _new_figure(path, (6.4, 4.0))
    ax = fig.add_subplot()
    for label, schedule in schedules.items():
        ax.plot(steps, [schedule(int(s)) for s in steps], drawstyle="steps-post", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path, title)

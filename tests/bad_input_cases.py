"""Bad input tried, and what fastnn does: the cases behind the README's table.

Each case is a description, a call, and what it must raise (or warn).  The tests
(``test_bad_input_table.py``) run every case and check that the README shows exactly
the table rendered from the messages fastnn gives today.  After changing a message
or adding a case, rewrite the table with::

    python tests/bad_input_cases.py --write
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import fastnn as fn

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bad-input-table:start -->", "<!-- bad-input-table:end -->"

X = np.random.default_rng(0).standard_normal((10, 4))
LABELS = np.arange(10) % 3


def classifier():
    m = fn.Sequential([fn.Dense(6, activation="relu", input_dim=4), fn.Dense(3, activation="softmax")],
                      backend="numpy", seed=0)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def regressor(units=1):
    m = fn.Sequential([fn.Dense(units, input_dim=4)], backend="numpy", seed=0)
    m.compile(optimizer="sgd", loss="mse")
    return m


TMP = tempfile.mkdtemp(prefix="fastnn-bad-input-")
atexit.register(shutil.rmtree, TMP, True)


def text_file():
    path = os.path.join(TMP, "notes.fastnn")
    with open(path, "w") as f:
        f.write("this is not a model\n")
    return path


def with_value(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


@dataclass
class Case:
    tried: str
    call: Callable[[], object]
    raises: type  # an exception type, or a Warning subclass that must be warned
    match: str  # regular expression the message must contain


CASES = [
    Case("`X` with 3 features for a 4-input model", lambda: classifier().fit(X[:, :3], LABELS, verbose=0),
         ValueError, r"X: expected 4 features"),
    Case("`y` shorter than `X`", lambda: classifier().fit(X, LABELS[:9], verbose=0),
         ValueError, r"y: expected 10 targets to match X, got 9"),
    Case("`sample_weight` of the wrong length",
         lambda: classifier().fit(X, LABELS, sample_weight=np.ones(3), verbose=0),
         ValueError, r"sample_weight: expected shape \(10,\)"),
    Case("a NaN in `X`", lambda: classifier().fit(with_value(X, (3, 2), np.nan), LABELS, verbose=0),
         ValueError, r"X: contains 1 NaN or infinite"),
    Case("an infinity in `X` given to `predict`", lambda: classifier().predict(with_value(X, (0, 0), np.inf)),
         ValueError, r"X: contains 1 NaN or infinite"),
    Case("a float64 value too large for a float32 model",
         lambda: classifier().fit(with_value(X, (2, 1), 1e39), LABELS, verbose=0),
         ValueError, r"X: 1 value\(s\) overflow float32"),
    Case("a masked array with masked entries",
         lambda: classifier().fit(np.ma.masked_array(X, mask=X > 0.5), LABELS, verbose=0),
         ValueError, r"X: .*masked"),
    Case("a text file given to `load_model`", lambda: fn.load_model(text_file()),
         ValueError, r"not a fastnn model file"),
    Case("a model file that does not exist", lambda: fn.load_model("no-such-model.fastnn"),
         FileNotFoundError, r"no such file"),
    Case("strings in `X`", lambda: classifier().fit(np.full((10, 4), "a"), LABELS, verbose=0),
         TypeError, r"X: expected numeric data"),
    Case("empty `X`", lambda: classifier().fit(np.empty((0, 4)), np.empty(0), verbose=0),
         ValueError, r"X: expected at least 1 sample"),
    Case("class labels outside `[0, k)`", lambda: classifier().fit(X, np.arange(10) % 6, verbose=0),
         ValueError, r"y: labels must be integers in \[0, 3\)"),
    Case("non-integer class labels", lambda: classifier().fit(X, LABELS + 0.5, verbose=0),
         ValueError, r"non-integer"),
    Case("one-hot `y` with sparse categorical cross-entropy",
         lambda: classifier().fit(X, np.eye(3)[LABELS], verbose=0),
         ValueError, r"use 'categorical_crossentropy'"),
    Case("`y` of shape `(n,)` for a 2-unit output", lambda: regressor(2).fit(X, np.ones(10), verbose=0),
         ValueError, r"y: expected shape \(10, 2\) for a 2-unit output layer, got shape \(10,\)"),
    Case("binary targets outside `[0, 1]`", lambda: (lambda m: (m.compile("sgd", "binary_crossentropy"),
                                                                 m.fit(X, np.arange(10), verbose=0)))(
         fn.Sequential([fn.Dense(1, activation="sigmoid", input_dim=4)], backend="numpy")),
         ValueError, r"y: binary_crossentropy expects targets in \[0, 1\]"),
    Case("`metrics=['mae']` with class labels",
         lambda: classifier().compile("adam", "sparse_categorical_crossentropy", metrics=["mae"]),
         ValueError, r"metrics: 'mae' compares the outputs with targets of the same shape"),
    Case("softmax output with MSE on one unit",
         lambda: fn.Sequential([fn.Dense(1, activation="softmax", input_dim=4)]).compile("sgd", "mse"),
         ValueError, r"softmax"),
    Case("a layer too large to allocate (`Dense(10**12)`)", lambda: fn.Sequential([fn.Dense(10**12, input_dim=784)]),
         ValueError, r"units: a 784 x 1000000000000 weight matrix needs .* bytes, more than can be allocated"),
    Case("an unknown activation name", lambda: fn.Dense(3, activation="relux"),
         ValueError, r"activation: unknown activation 'relux'; expected one of"),
    Case("an unknown optimizer name", lambda: classifier().compile("adamw", "mse"),
         ValueError, r"optimizer: unknown optimizer 'adamw'; expected one of"),
    Case("a negative learning rate", lambda: fn.optimizers.SGD(-1),
         ValueError, r"learning_rate: expected a value in \(0.0, inf\], got -1.0"),
    Case("`batch_size=0`", lambda: classifier().fit(X, LABELS, batch_size=0, verbose=0),
         ValueError, r"batch_size: expected a positive integer or None"),
    Case("`validation_split=1.5`", lambda: classifier().fit(X, LABELS, validation_split=1.5, verbose=0),
         ValueError, r"validation_split: expected a float in \[0, 1\), got 1.5"),
    Case("`dtype='float16'`", lambda: fn.Sequential(dtype="float16"),
         ValueError, r"dtype: expected 'float32' or 'float64', got 'float16'"),
    Case("`predict` before the model has weights", lambda: fn.Sequential([fn.Dense(3)]).predict(X),
         fn.NotBuiltError, r"predict: the model has no weights yet"),
    Case("`fit` before `compile`", lambda: fn.Sequential([fn.Dense(3, input_dim=4)]).fit(X, X, verbose=0),
         ValueError, r"fit: the model is not compiled"),
    Case("a `Normalization` layer after a `Dense` layer",
         lambda: fn.Sequential([fn.Dense(3, input_dim=4), fn.Normalization()]),
         ValueError, r"layer: a Normalization layer standardizes the model's inputs, so it must come first"),
    Case("`fit` with a `Normalization` layer that was never adapted",
         lambda: (lambda m: (m.compile("sgd", "mse"), m.fit(X, X[:, 0], verbose=0)))(
             fn.Sequential([fn.Normalization(), fn.Dense(1, input_dim=4)])),
         ValueError, r"input_normalizer: the Normalization layer has no statistics yet; call adapt\(X\)"),
    Case("`Normalization().adapt(X)` where a feature holds only NaN",
         lambda: fn.Normalization().adapt(with_value(X, (slice(None), 2), np.nan)),
         ValueError, r"data: feature\(s\) \[2\] hold only NaN"),
    Case("`target_normalization=True` with a classification loss",
         lambda: fn.Sequential([fn.Dense(3, activation="softmax", input_dim=4)], target_normalization=True)
         .compile("adam", "sparse_categorical_crossentropy"),
         ValueError, r"loss: target_normalization standardizes regression targets"),
    Case("a learning rate that makes the loss diverge",
         lambda: (lambda m: (m.compile(fn.optimizers.SGD(1e6, momentum=0.9), "sparse_categorical_crossentropy"),
                             m.fit(X * 100, LABELS, epochs=3, verbose=0)))(
             fn.Sequential([fn.Dense(16, activation="relu", input_dim=4), fn.Dense(3, activation="softmax")],
                           backend="numpy", seed=0)),
         RuntimeWarning, r"training stopped and the weights were restored to the start of this epoch"),
]


def run(case) -> str:
    """Run ``case``; return the message it gave, or raise AssertionError."""
    if issubclass(case.raises, Warning):
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always")
            case.call()
        found = [w for w in caught if issubclass(w.category, case.raises)]
        assert found, f"{case.tried}: no {case.raises.__name__}"
        message = str(found[0].message)
    else:
        try:
            case.call()
        except case.raises as exc:
            message = str(exc)
        else:
            raise AssertionError(f"{case.tried}: no {case.raises.__name__}")
    assert re.search(case.match, message), f"{case.tried}: {message!r} does not match {case.match!r}"
    return message


def render() -> str:
    rows = ["| bad input tried | what fastnn does |", "|---|---|"]
    for case in CASES:
        what = "warns" if issubclass(case.raises, Warning) else "raises"
        message = run(case).replace(TMP + os.sep, "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {case.tried} | {what} `{case.raises.__name__}`: {message} |")
    return "\n".join(rows)


def readme_table(text: str) -> str:
    return text.split(START, 1)[1].split(END, 1)[0].strip()


if __name__ == "__main__":
    table = render()
    if "--write" in sys.argv:
        text = README.read_text()
        head, rest = text.split(START, 1)
        README.write_text(head + START + "\n" + table + "\n" + END + rest.split(END, 1)[1])
    else:
        print(table)

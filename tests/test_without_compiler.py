"""fastnn without its Cython kernels (installed where there was no C compiler).

Each case runs a fresh interpreter in which importing ``fastnn._kernels.cython``
(and, in one case, ``numba``) raises ImportError, as it does when setup.py
could not build the extensions.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import importlib.abc, json, sys, warnings

BLOCKED = sys.argv[1:]


class Unbuilt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None


sys.meta_path.insert(0, Unbuilt())

import numpy as np

import fastnn
from fastnn import _kernels

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 4))
y = (X[:, 0] > 0).astype(np.int64)
model = fastnn.Sequential([fastnn.Dense(8, activation="relu", input_dim=4),
                           fastnn.Dense(2, activation="softmax")], backend="numpy", seed=0)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(X, y, epochs=3, batch_size=16, verbose=0)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    auto = [fastnn.Sequential([fastnn.Dense(2, input_dim=4)], backend="auto").backend for _ in range(3)]
    _kernels.resolve("auto")
print(json.dumps({
    "losses": history.history["loss"],
    "auto": auto,
    "warnings": [str(w.message) for w in caught if "fastnn" in str(w.message)],
    "categories": [w.category.__name__ for w in caught if "fastnn" in str(w.message)],
    "available": fastnn.backends.available(),
}))
"""


def run(*blocked):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *blocked], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("blocked,expected", [
    (("fastnn._kernels.cython",), "numba"),
    (("fastnn._kernels.cython", "numba"), "numpy"),
], ids=["no-cython", "no-cython-no-numba"])
def test_fastnn_works_without_the_cython_kernels(blocked, expected):
    if expected == "numba":
        pytest.importorskip("numba")
    out = run(*blocked)
    assert len(out["losses"]) == 3 and all(loss == loss for loss in out["losses"])  # trained, finite
    assert out["auto"] == [expected] * 3
    assert "cython" not in out["available"] and expected in out["available"]
    assert len(out["warnings"]) == 1, out["warnings"]  # once per process
    message = out["warnings"][0]
    assert f"uses the {expected} backend" in message and "the cython backend" in message
    assert "blocked by the test" in message  # why: the import error
    assert out["categories"] == ["RuntimeWarning"]

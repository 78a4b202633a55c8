"""Every ```python and ```bash block of README.md runs.

Each block runs in a fresh process in a temporary folder, as a reader would
paste it, with this checkout's fastnn.  Where a snippet uses data it does not
make (``X``, ``y``, ``X_train``, ``rows.npy``, ...), tiny random data of the
right shape is defined or written first (``PRELUDES``); blocks that need the
network are skipped with the reason (``SKIPS``); ``SUBSTITUTIONS`` lists the
few edits made before a block runs, each with its reason.  A new block runs as
written unless an entry here says otherwise.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Each key is a string found in exactly one block.
SKIPS = {
    'pip install . && fastnn train': "installs fastnn and its build requirements from the package index (network)",
}

PRELUDES = {
    'model.save("m.fastnn"); fn.load_model("m.fastnn")': """
import numpy as np
rng = np.random.default_rng(0)
X, y = rng.random((256, 784), dtype=np.float32), rng.integers(0, 10, 256)
X_test, y_test = X[:32], y[:32]
""",
    "clf.fit(X_train, y_train)": """
import numpy as np
rng = np.random.default_rng(0)
X_train, y_train = rng.random((200, 20)), rng.integers(0, 3, 200)
X_test = X_train[:10]
""",
    'np.load("X_train.npy", mmap_mode="r")': """
import numpy as np
rng = np.random.default_rng(0)
np.save("X_train.npy", rng.random((2_500, 20), dtype=np.float32))
y_train = rng.integers(0, 10, 2_500)
""",
    "skl2onnx.to_onnx(pipeline, X[:1]": """
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
import fastnn as fn
X = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
pipeline = make_pipeline(StandardScaler(), fn.MLPClassifier(max_iter=5, random_state=0)).fit(X, X[:, 0] > 0)
""",
    "fastnn predict m.fastnn --input rows.npy": """
"$PYTHON" -c 'import numpy as np; np.save("rows.npy", np.random.default_rng(0).random((5, 784), dtype=np.float32))'
""",
}

# (block key, old, new, reason)
SUBSTITUTIONS = [
    ("fastnn bench --quick", "--epochs 5", "--epochs 1", "one epoch shows the command works; five take longer"),
    ("fastnn bench --quick", "fastnn bench --quick", "fastnn bench --help",
     "the benchmark run takes minutes; tests/test_benchmarks_smoke.py runs it"),
]


def _here(dataset):
    """Whether ``dataset`` ("mnist" or "fashion-mnist") can be loaded without a download."""
    candidates = [Path("/usr/share/datasets/fashion-mnist")] if dataset == "fashion-mnist" else []
    for root in (os.environ.get("FASTNN_DATA"), SHARED_DATA, Path.home() / ".cache" / "fastnn"):
        if root:
            candidates += [Path(root) / dataset, Path(root) / dataset.replace("-", "_")]
    return any((c / f"{split}-images-idx3-ubyte.gz").is_file() for c in candidates for split in ("train", "t10k"))


def _blocks():
    text = README.read_text()
    for match in re.finditer(r"^```(python|bash)\n(.*?)^```$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        yield pytest.param(match.group(1), match.group(2), id=f"{match.group(1)}-line{line}")


BLOCKS = list(_blocks())


def test_the_readme_has_blocks_and_every_key_names_one():
    assert len(BLOCKS) >= 6
    codes = [param.values[1] for param in BLOCKS]
    for key in [*SKIPS, *PRELUDES, *(s[0] for s in SUBSTITUTIONS)]:
        assert sum(key in code for code in codes) == 1, f"{key!r} should be in exactly one README block"
    for key, old, _new, _reason in SUBSTITUTIONS:
        assert all(old in code for code in codes if key in code), f"{old!r} is no longer in the README"


def _env():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               PYTHON=sys.executable, MPLBACKEND="Agg")
    if not env.get("FASTNN_DATA") and SHARED_DATA.is_dir():
        env["FASTNN_DATA"] = str(SHARED_DATA)
    return env


@pytest.mark.parametrize("language, code", BLOCKS)
def test_readme_block_runs(language, code, tmp_path):
    for key, reason in SKIPS.items():
        if key in code:
            pytest.skip(reason)
    if "fashion-mnist" in code and not _here("fashion-mnist"):
        if not _here("mnist"):
            pytest.skip("needs Fashion-MNIST or MNIST, which are not here: they would be downloaded (network)")
        code = code.replace("fashion-mnist", "mnist")  # the same shapes; Fashion-MNIST is not here
    if "distributed" in code or "dask" in code:
        pytest.importorskip("distributed")
        pytest.importorskip("dask.array")
    for key, old, new, _reason in SUBSTITUTIONS:
        if key in code:
            code = code.replace(old, new)
    if "onnx" in code:  # fastnn[onnx]
        for module in ("onnx", "onnxruntime", "skl2onnx"):
            pytest.importorskip(module)
    prelude = next((p for key, p in PRELUDES.items() if key in code), "")
    if language == "python":
        script = tmp_path / "snippet.py"
        script.write_text(prelude + code)
        command = [sys.executable, str(script)]
    else:
        # `fastnn` and `python` are this interpreter's, whatever is on PATH.
        script = tmp_path / "snippet.sh"
        script.write_text('set -euo pipefail\nfastnn() { "$PYTHON" -m fastnn "$@"; }\n'
                          'python() { "$PYTHON" "$@"; }\n' + prelude + code)
        command = ["bash", str(script)]
    result = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{language} block failed:\n{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr


def test_stated_defaults_and_commands_in_the_text_are_true(tmp_path):
    text = " ".join(README.read_text().split())
    from fastnn import MLPRegressor

    stated = re.search(r"`MLPRegressor` adds `target_scaling` \(default `(\w+)`", text).group(1)
    assert stated == str(MLPRegressor().get_params()["target_scaling"])
    # The OpenMP check the install paragraph gives.
    command = re.search(r'`python -c "(from fastnn\._kernels\.cython import _blas; [^"]+)"`', text).group(1)
    pytest.importorskip("fastnn._kernels.cython")
    result = subprocess.run([sys.executable, "-c", command], cwd=tmp_path, env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("True", "False")

"""The second process that compiles the back half of a Numba training loop on an
empty cache (``fastnn._kernels.numba._compile_ahead``, ``_back_half``): it compiles only kernels
the loop compiles, with the loop's argument types, so the loop finds them in the
disk cache; it never changes what the model computes; and it never outlives the
loop's compilation."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from fastnn._kernels.numba import _compile_ahead, _training  # noqa: E402

# A fresh process, an empty cache: fit one model and print the weights' sum and, for
# each of fastnn's cached kernels, its compiled signatures and cache hits.
# argv: case ("dense" or "sparse"), "ahead" (wait for the second process to finish
# before the loop compiles) or "off" (no second process) or "back" (after the fit,
# compile _back_half for the loop's types and list the signatures again).
SCRIPT = r"""
import importlib, json, os, pkgutil, sys
import numpy as np
import scipy.sparse as sp
from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher
import fastnn as fn
import fastnn._kernels.numba as nb
from fastnn._kernels.numba import _back_half, _compile_ahead, _jit, _training

case, mode = sys.argv[1:3]

def kernels():
    out = {}
    for info in pkgutil.iter_modules(nb.__path__):
        mod = importlib.import_module(f"{nb.__name__}.{info.name}")
        for name, d in vars(mod).items():
            if (isinstance(d, CPUDispatcher) and d.py_func.__module__ == mod.__name__
                    and not isinstance(d._cache, NullCache)):
                out[name] = {"sigs": sorted(map(str, d.signatures)),
                             "hits": sum(d.stats.cache_hits.values()),
                             "misses": sum(d.stats.cache_misses.values())}
    return out

started = []
if mode == "ahead":
    start = _compile_ahead.start
    def start_and_finish(dispatcher, sig):
        proc = start(dispatcher, sig)
        started.append(None if proc is None else proc.wait())
        return proc
    _compile_ahead.start = start_and_finish
    # two free cores, whatever this machine has and whatever else runs on it
    _compile_ahead._runnable = lambda: 0.0
    _compile_ahead._cpu_quota = lambda: None
    _compile_ahead.os.sched_getaffinity = lambda pid: {0, 1}

rng = np.random.default_rng(0)
if case == "dense":  # float32, sample weights, integer labels, the first layer maybe split by features
    X = rng.random((256, 300), dtype=np.float32)
    X[:, ::4] = 0.0
    y = rng.integers(0, 10, 256)
    layers = [fn.Dense(64, activation="relu", input_dim=300), fn.Dense(10, activation="softmax")]
    model = fn.Sequential(layers, backend="numba", seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    fit = dict(sample_weight=rng.random(256).astype(np.float32) + 0.5, batch_size=32)
else:  # float64, CSR input, no bias, mixed hidden activations, one-hot regression targets
    X = sp.random(200, 40, density=0.2, format="csr", random_state=1, dtype=np.float64)
    y = rng.standard_normal((200, 2))
    layers = [fn.Dense(16, activation="tanh", use_bias=False, input_dim=40), fn.Dense(8, activation="elu"),
              fn.Dense(2)]
    model = fn.Sequential(layers, backend="numba", seed=0, dtype="float64")
    model.compile(optimizer=fn.optimizers.RMSprop(0.01), loss="mse")
    fit = dict(batch_size=16)
model.fit(X, y, epochs=2, verbose=0, **fit)
result = {"weights": float(sum(np.sum(w, dtype=np.float64) for w in model.get_weights())),
          "started": started, "kernels": kernels()}
(sig,) = _training._train_batches.signatures
result["wanted_again"] = _compile_ahead._wanted(_training._train_batches, sig)
result["files"] = sorted(os.path.relpath(os.path.join(d, f), os.environ["NUMBA_CACHE_DIR"])
                         for d, _, fs in os.walk(os.environ["NUMBA_CACHE_DIR"]) for f in fs)
result["stamp"] = _jit.sources_stamp()[:16]
if mode == "back":
    _back_half._back_half.compile(sig)
    result["after_back_half"] = kernels()
print(json.dumps(result))
"""

# The kernels of the back half: the update, weight gradients, output delta and loss.
BACK = {"dense": ["adam_update", "weight_grad_rows", "output_delta", "loss_sums", "_batch_statistics"],
        "sparse": ["rmsprop_update", "weight_grad_rows", "output_delta", "loss_sums", "_batch_statistics"]}


def _run(case, mode, tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / f"{case}-{mode}"), FASTNN_NUMBA_SPECIALIZE="1",
               NUMBA_NUM_THREADS="2",  # the dense case's first layer split by features on any machine
               FASTNN_NUMBA_COMPILE_AHEAD="0" if mode != "ahead" else "1")
    out = subprocess.run([sys.executable, "-c", SCRIPT, case, mode], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per case, a cold fit with the second process (run to its end before the loop
    compiles) and one without it, which then compiles ``_back_half`` itself."""
    tmp = tmp_path_factory.mktemp("numba-cache")
    return {case: {mode: _run(case, mode, tmp) for mode in ("ahead", "back")} for case in BACK}


@pytest.mark.parametrize("case", sorted(BACK))
def test_the_back_half_compiles_only_kernels_the_loop_compiles(runs, case):
    """After a fit, compiling ``_back_half`` for the loop's types adds no signature to
    any cached kernel: every kernel it compiles, the loop compiled with the same types."""
    run = runs[case]["back"]
    assert run["started"] == []
    assert run["after_back_half"] == run["kernels"]
    for name in BACK[case]:
        assert run["kernels"][name]["sigs"], name


@pytest.mark.parametrize("case", sorted(BACK))
def test_the_loop_loads_the_back_half_the_second_process_compiled(runs, case):
    """With the second process run to its end first, the loop's back-half kernels all
    come from the disk cache; the model trains exactly as without the second process,
    and once the loop is cached no second process is wanted."""
    ahead, alone = runs[case]["ahead"], runs[case]["back"]
    assert ahead["started"] == [0]  # it started and finished without error
    assert alone["started"] == []
    for name in BACK[case]:
        kernel = ahead["kernels"][name]
        assert kernel["hits"] >= 1 and kernel["misses"] == 0, (name, kernel)
        assert kernel["sigs"] == alone["kernels"][name]["sigs"], name
    assert alone["kernels"]["adam_update" if case == "dense" else "rmsprop_update"]["hits"] == 0
    assert ahead["weights"] == alone["weights"]
    assert ahead["wanted_again"] is False and alone["wanted_again"] is False


@pytest.mark.parametrize("case", sorted(BACK))
def test_the_two_processes_write_data_files_of_their_own_names_in_a_folder_per_stamp(runs, case):
    """The second process's data files are ``*-ahead.nbc`` (two processes saving one
    function's new signatures at once never pick one file), and fastnn's cache is in a
    folder of the sources' stamp (an index never names a file an older stamp left)."""
    ahead = runs[case]["ahead"]
    folders = {os.path.dirname(f) for f in ahead["files"]}
    assert folders and all(os.path.basename(d) == "fastnn-" + ahead["stamp"] for d in folders), folders
    names = [os.path.basename(f) for f in ahead["files"]]
    assert any(n.endswith("-ahead.nbc") for n in names) and any(n.endswith(".1.nbc") for n in names), names
    assert not any(n.endswith("-ahead.nbc") for n in map(os.path.basename, runs[case]["back"]["files"]))


def test_no_second_process_where_asked_not_to_or_no_core_is_free(monkeypatch):
    import numba

    sig = (numba.types.float64,)  # a signature not in the cache: wanted where a core is free
    wanted = lambda: _compile_ahead._wanted(_training._train_batches, sig)  # noqa: E731
    monkeypatch.setenv(_compile_ahead.ENV, "1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_compile_ahead, "_cpu_quota", lambda: None)
    monkeypatch.setattr(_compile_ahead, "_runnable", lambda: 1.0)  # this thread alone
    assert wanted() is True
    monkeypatch.setenv(_compile_ahead.ENV, " 0 ")
    assert wanted() is False and _compile_ahead.start(_training._train_batches, sig) is None
    monkeypatch.setenv(_compile_ahead.ENV, "1")
    monkeypatch.setattr(_compile_ahead, "_runnable", lambda: 2.0)  # this thread and another process's
    assert wanted() is False
    monkeypatch.setattr(_compile_ahead, "_runnable", lambda: 1.0)
    monkeypatch.setattr(_compile_ahead, "_cpu_quota", lambda: 1.5)  # a container's --cpus=1.5
    assert wanted() is False
    monkeypatch.setattr(_compile_ahead, "_cpu_quota", lambda: None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert wanted() is False
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert wanted() is True
    assert _compile_ahead._wanted(_training._train_batches, [sig]) is False  # no key of that kind: not tried


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("150000 100000\n", 1.5), ("200000 100000", 2.0),
                                        ("garbage", None)])
def test_a_cgroup_cpu_quota_is_read(monkeypatch, tmp_path, text, cpus):
    import builtins

    (tmp_path / "cpu.max").write_text(text)
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if str(path) == "/sys/fs/cgroup/cpu.max":
            return real_open(tmp_path / "cpu.max", *args, **kwargs)
        if str(path).startswith("/sys/fs/cgroup/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert _compile_ahead._cpu_quota() == cpus


@pytest.mark.parametrize("executable", [os.path.join(os.sep, "nonexistent", "python3"),  # does not start
                                        os.path.join(os.sep, "usr", "bin", "uwsgi"),  # not Python: not tried
                                        ""])
def test_a_second_process_that_cannot_start_leaves_the_loop_to_compile_alone(monkeypatch, executable):
    monkeypatch.setattr(_compile_ahead, "_wanted", lambda dispatcher, sig: True)
    monkeypatch.setattr(sys, "executable", executable)
    assert _compile_ahead.start(_training._train_batches, ()) is None
    _compile_ahead.stop(None)


def test_the_second_process_imports_this_fastnn_from_any_folder(tmp_path, monkeypatch):
    """Started from a folder holding another ``fastnn``, it still runs this one's helper."""
    (tmp_path / "fastnn").mkdir()
    (tmp_path / "fastnn" / "__init__.py").write_text("raise SystemExit(7)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_compile_ahead, "_wanted", lambda dispatcher, sig: True)
    monkeypatch.setattr(_compile_ahead, "HELPER", "fastnn._kernels.numba._sync")  # imports, compiles nothing
    proc = _compile_ahead.start(_training._train_batches, ())
    assert proc is not None and proc.wait(timeout=120) == 0


def test_the_second_process_ends_when_the_loops_compilation_is_interrupted(monkeypatch):
    """Ctrl+C while the loop compiles: the KeyboardInterrupt reaches the caller and the
    second process is ended, not left compiling."""
    import fastnn as fn
    from fastnn._kernels.numba import _jit

    procs = []

    def start(dispatcher, sig):
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return procs[-1]

    def compile_interrupted(sig):
        raise KeyboardInterrupt

    monkeypatch.setattr(_jit, "SPECIALIZE", True)
    monkeypatch.setattr(_compile_ahead, "start", start)
    monkeypatch.setattr(_training, "_ENTRIES", {})
    monkeypatch.setattr(_training._train_batches, "compile", compile_interrupted)
    model = fn.Sequential([fn.Dense(3, activation="softmax", input_dim=4)], backend="numba", seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=1, verbose=0)
    assert len(procs) == 1 and procs[0].poll() is not None

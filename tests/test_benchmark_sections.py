"""The report's optional sections: the peers table, the busy-machine check and their options.

Rendering is checked on made-up timings (no peer needs to be installed); the busy-machine
check's spinning processes must be gone after it, also when a measurement fails or is
interrupted.
"""
import contextlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import busy, cases, report, sparse, versus  # noqa: E402

from fastnn import cli  # noqa: E402


def _suite_json(times):
    """pytest-benchmark JSON holding float32 training epochs: ``{(workload, backend): seconds}``."""
    benchmarks = []
    for (name, backend), seconds in times.items():
        w = cases.WORKLOADS[name]
        info = {"kind": "train", "case": f"{name}-float32", "label": f"{name}: {w.label}", "dtype": "float32",
                "backend": backend, "flops": None, "rows": 2048, "quick": True,
                "epoch_seconds": [seconds, seconds * 1.1, seconds * 0.9]}
        benchmarks.append({"extra_info": info, "stats": {"median": seconds, "min": seconds, "iqr": 0.0,
                                                         "rounds": 3}})
    return {"benchmarks": benchmarks}


def _peer(seconds, **extra):
    return {"status": "ok", "version": "9.9", "threads": 2, "optax": "0.2",
            "workloads": {name: {"warm_up": 1.5, "epoch_seconds": [s, s * 2, s * 0.5]} for name, s in seconds.items()},
            **extra}


def test_peers_table_from_fake_timings():
    results = report.Results(_suite_json({
        ("mnist128", "numpy"): 0.40, ("mnist128", "cython"): 0.20,
        ("tiny", "numpy"): 0.19, ("tiny", "cython"): 0.05,
        ("wide", "numpy"): 2.0, ("wide", "cython"): 1.5,
    }))
    measured = {"torch": _peer({"mnist128": 0.25, "tiny": 0.30, "wide": 1.0}),
                "jax": {"status": "not installed"}}
    measured["torch"]["workloads"]["wide"] = {"error": "RuntimeError: out of memory"}
    text = "\n".join(versus.render(results, measured, "cython"))

    assert text.startswith("## fastnn against PyTorch and JAX")
    assert ("| workload | fastnn numpy | fastnn cython | torch | jax | fastnn cython ÷ fastest peer | needed | met |"
            in text)
    # The median of the peer's rounds; the fastest of each row in bold; cython over the fastest peer.
    assert ("| mnist128: 784-128-10 relu, adam, batch 128 | 400 ms | **200 ms** | 250 ms | not installed "
            "| 0.80× | ≤ 0.77× | **no** |") in text
    assert ("| tiny: 784-16-16-10 sigmoid, sgd, batch 100 | 190 ms | **50.0 ms** | 300 ms | not installed "
            "| 0.17× | ≤ 0.77× | yes |") in text
    assert ("| wide: 784-512-512-10 relu, adam, batch 256 | 2.00 s | **1.50 s** | failed | not installed | — "
            "| ≤ 0.87× | — |") in text
    assert versus.short_rows(results, measured, "cython") == ["mnist128"]
    assert "- jax: not installed (`pip install -e '.[peers]'`)." in text
    assert "- torch 9.9: eager, `torch.set_num_threads(2)`" in text


def test_peers_table_bolds_a_peer_that_is_fastest():
    results = report.Results(_suite_json({("mnist128", "numpy"): 0.40, ("mnist128", "numba"): 0.30}))
    text = "\n".join(versus.render(results, {"jax": _peer({"mnist128": 0.10})}, "numba"))
    assert "| 400 ms | 300 ms | **100 ms** | 3.00× | ≤ 0.77× | **no** |" in text
    assert "`jax.jit` of a whole epoch" in text and "optax 0.2" in text


def test_peers_table_from_runners_taking_turns():
    """With fastnn's backends timed in turns with the peers, their columns come from those rounds
    (not the suite's), and the last column is the ratio of the medians shown."""
    results = report.Results(_suite_json({("mnist128", "numpy"): 9.0, ("mnist128", "cython"): 9.0}))
    rounds = {"fastnn-numpy": [0.40, 0.80, 0.42], "fastnn-cython": [0.20, 0.40, 0.30],
              "torch": [0.25, 0.50, 0.20]}
    measured = {name: {"status": "ok", "version": "9.9", "threads": 2,
                       "workloads": {"mnist128": {"warm_up": 1.0, "epoch_seconds": seconds}}}
                for name, seconds in rounds.items()}
    text = "\n".join(versus.render(results, measured, "cython"))
    assert "| workload | fastnn numpy | fastnn cython | torch | fastnn cython ÷ fastest peer |" in text
    # medians 420 / 300 / 250 ms (the suite's 9 s is not used)
    assert ("| mnist128: 784-128-10 relu, adam, batch 128 | 420 ms | 300 ms | **250 ms** | 1.20× | ≤ 0.77× "
            "| **no** |") in text
    assert "took turns, one epoch each" in text
    measured["fastnn-cython"] = {"status": "failed", "error": "RuntimeError: boom"}
    text = "\n".join(versus.render(results, measured, "cython"))
    assert "| 420 ms | failed | **250 ms** | — | ≤ 0.77× | — |" in text
    assert versus.failures(measured) == ["fastnn's cython backend, in turns with the peers, failed: RuntimeError: boom"]


def test_a_runner_serves_one_epoch_at_a_time():
    """``peers.serve`` (what each runner's process runs): ready line, warm-up, epochs from the
    warm-up's state, an error for an unknown workload, and it goes on after one."""
    import io
    import json

    from harness import peers

    out = io.StringIO()
    peers.serve("fastnn-numpy", 256, 1, io.StringIO("prepare regression\nepoch regression\nepoch tiny\n"
                                                    "epoch regression\nquit\nepoch regression\n"), out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0]["ready"] and answers[0]["peer"] == "fastnn-numpy" and answers[0]["version"]
    assert answers[1]["warm_up"] > 0
    assert answers[2]["seconds"] > 0 and answers[4]["seconds"] > 0
    assert answers[3] == {"error": "KeyError: 'tiny'"}
    assert len(answers) == 5  # nothing after quit


def test_runners_take_turns_in_their_own_processes():
    """``run_peers`` with one of fastnn's backends and no peer: its process warms up, times its
    rounds and answers in JSON."""
    measured = versus.run_peers([], ["regression"], 256, True, 1, backends=["numpy"])
    run = measured["fastnn-numpy"]
    assert run["status"] == "ok" and run["threads"] == 1
    timing = run["workloads"]["regression"]
    assert timing["warm_up"] > 0 and len(timing["epoch_seconds"]) >= cases.TRAIN_MIN_ROUNDS[True]
    assert versus.failures(measured) == []


def test_a_runner_that_dies_is_reported(monkeypatch):
    monkeypatch.setattr(versus, "_Runner", _DyingRunner)
    measured = versus.run_peers([], ["regression", "tiny"], 256, True, 1, backends=["numpy"])
    assert measured["fastnn-numpy"]["status"] == "failed"
    assert versus.failures(measured)[0] == "fastnn's numpy backend, in turns with the peers, failed: Killed"


class _DyingRunner:
    """A runner whose process ends after its ready line."""

    def __init__(self, name, rows, threads, env):
        self.answers = [{"ready": True, "version": "1", "threads": threads}]

    def answer(self, timeout=None):
        if not self.answers:
            raise RuntimeError("Killed")
        return self.answers.pop(0)

    def ask(self, command):
        return self.answer()

    def close(self):
        pass


def test_where_the_time_goes_under_the_table():
    """The rows short of their target get where_time_goes.py's printout; a workload it has no
    case for says so without running anything."""
    assert versus.where_time_goes(["regression"], "cython") == {
        "regression": "(where_time_goes.py has no regression case)"}
    text = "\n".join(versus.render_where({"mnist128": "784-128-10 ...\n  measured epoch 300 ms"}))
    assert text.startswith("### Where the time goes in the rows short of the target")
    assert "mnist128:\n\n```\n784-128-10 ...\n  measured epoch 300 ms\n```" in text
    assert versus.render_where(None) == [] and versus.short_rows(None, None, "cython") == []


def test_no_peers_no_section():
    assert versus.render(report.Results(_suite_json({("tiny", "numpy"): 0.1})), None, "numpy") == []


def test_missing_peer_is_reported_not_run(monkeypatch):
    monkeypatch.setattr(versus, "installed", lambda peer: False)
    measured = versus.run_peers(["torch", "jax"], ["mnist128"], 2048, True, 1)
    assert measured == {"torch": {"status": "not installed"}, "jax": {"status": "not installed"}}
    assert versus.failures(measured) == []


def test_jax_gets_one_thread_through_xla_flags():
    assert "intra_op_parallelism_threads=1" in versus.peer_env("jax", 1)["XLA_FLAGS"]
    assert "XLA_FLAGS" not in versus.peer_env("jax", 2)
    assert versus.peer_env("torch", 1, {"OMP_NUM_THREADS": "1"}) == {"OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("value", ["bogus", "torch,bogus", ","])
def test_bogus_peer_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exc:
        report.main(["--peers", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --peers: expected a comma-separated list of peers among ['torch', 'jax'], got {value!r}" in err


def test_bench_subcommand_takes_peers_and_busy(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    help_text = capsys.readouterr().out
    assert "--peers" in help_text and "--busy" in help_text


def test_parse_peers_keeps_order_once():
    assert versus.parse_peers("jax, torch,jax") == ["jax", "torch"]


# ------------------------------------------------------------------ busy machine
def _epochs(default, one):
    return {"default": {"epoch_seconds": [default] * 3, "threads": 2},
            "one_thread": {"epoch_seconds": [one] * 3, "threads": 1}}


def test_busy_section_from_fake_timings():
    rows = [dict(load=1, workload="mnist128", backend="cython", **_epochs(0.33, 0.30)),
            dict(load=3, workload="small-batch-32", backend="numba", **_epochs(1.24, 0.40)),
            dict(load=3, workload="small-batch-32", backend="numpy", error="RuntimeError: boom")]
    text = "\n".join(busy.render(rows, 60_000))
    assert text.startswith("## Busy machine")
    assert "60,000 float32 rows" in text
    assert "| mnist128 | 1 | cython | 330 ms (2 threads) | 300 ms | 1.10 | ≤ 1.15 | yes |" in text
    assert "| small-batch-32 | 3 | numba | 1.24 s (2 threads) | 400 ms | 3.10 | ≤ 1.15 | **no** |" in text
    assert "| small-batch-32 | 3 | numpy | failed | failed | — | ≤ 1.15 | — |" in text
    assert busy.failures(rows) == ["the busy-machine check of numpy on small-batch-32 (3 busy) failed: "
                                   "RuntimeError: boom"]
    assert busy.render(None, 2048) == []


def _spying_load(seen):
    @contextlib.contextmanager
    def load(n):
        with busy.cpu_load(n) as procs:
            assert len(procs) == n and all(p.poll() is None for p in procs)  # spinning
            seen.extend(procs)
            yield procs
    return load


def test_busy_processes_are_gone_after_a_run():
    seen = []
    rows = busy.measure(["numpy"], 64, loads=(1, 3), workloads=("mnist128",),
                        epochs=lambda *args: {"epoch_seconds": [0.1], "threads": 2}, load=_spying_load(seen))
    assert [r["load"] for r in rows] == [1, 3] and "error" not in rows[0]
    assert len(seen) == 4 and all(p.returncode is not None for p in seen)


def test_busy_processes_are_gone_when_the_measuring_process_fails():
    seen = []
    # A real measuring process that fails: the backend does not exist.
    rows = busy.measure(["no-such-backend"], 64, loads=(1,), workloads=("mnist128",), load=_spying_load(seen))
    assert "no-such-backend" in rows[0]["error"] or "failed" in rows[0]["error"]
    assert len(seen) == 1 and all(p.returncode is not None for p in seen)


def test_busy_processes_are_gone_after_ctrl_c():
    seen = []

    def interrupted(*args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        busy.measure(["numpy"], 64, loads=(3,), workloads=("mnist128",), epochs=interrupted,
                     load=_spying_load(seen))
    assert len(seen) == 3 and all(p.returncode is not None for p in seen)


# ------------------------------------------------------------------ sparse text and memory
def test_sparse_sections_from_fake_measurements():
    text = {"shape": (10_000, 2 ** 18), "density": 0.0003, "epochs": 3,
            "sklearn": {"seconds": 13.0, "accuracy": 1.0},
            "fastnn": {"cython": {"seconds": 1.25, "accuracy": 1.0}, "numba": {"error": "RuntimeError: boom"}}}
    memory = {"cython": {"csr_bytes": 2_100_000_000, "before": 2_300_000_000, "peak": 2_370_000_000,
                         "seconds": 40.0}}
    out = "\n".join(sparse.render(text, memory))
    assert out.startswith("## Sparse text: fastnn against scikit-learn")
    assert "10,000 generated two-topic documents hashed into 262,144 features" in out
    assert "| scikit-learn `MLPClassifier` | 13.0 s | 1.0000 | 1.00× |" in out
    assert "| fastnn `MLPClassifier` (cython) | 1.25 s | 1.0000 | 10.4× |" in out
    assert "| fastnn `MLPClassifier` (numba) | failed | — | — |" in out
    assert "## Memory: training on a 1,000,000 × 262,144 CSR matrix" in out
    assert "| cython | 2,003 MiB | 2,193 MiB | 2,260 MiB | 67 MiB |" in out
    assert sparse.failures(text, memory) == ["the sparse text case of numba failed: RuntimeError: boom"]
    assert sparse.render(None, None) == [] and sparse.failures(None, None) == []


def test_sparse_text_case_runs_small():
    out = sparse.text_case(["numpy"], n_documents=300, epochs=1)
    assert out["shape"] == (300, sparse.TEXT_FEATURES) and 0 < out["density"] < 0.01
    for r in (out["sklearn"], out["fastnn"]["numpy"]):
        assert r["seconds"] > 0 and 0 <= r["accuracy"] <= 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_case_runs_small():
    out = sparse.memory_case(["numpy"], rows=3_000, per_row=5)
    r = out["numpy"]
    assert "error" not in r, r
    assert r["csr_bytes"] >= 3_000 * 5 * 8 and r["peak"] >= r["before"] > 0  # float32 values, int32 columns


def test_report_takes_sparse(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "--sparse" in capsys.readouterr().out

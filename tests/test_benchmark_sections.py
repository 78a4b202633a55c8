"""The report's optional sections: the peers table and its option.

Rendering is checked on made-up timings (no peer needs to be installed).
"""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import cases, report, versus  # noqa: E402

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
    assert "| workload | fastnn numpy | fastnn cython | torch | jax | fastnn cython ÷ fastest peer |" in text
    # The median of the peer's rounds; the fastest of each row in bold; cython over the fastest peer.
    assert ("| mnist128: 784-128-10 relu, adam, batch 128 | 400 ms | **200 ms** | 250 ms | not installed "
            "| 0.80× |") in text
    assert ("| tiny: 784-16-16-10 sigmoid, sgd, batch 100 | 190 ms | **50.0 ms** | 300 ms | not installed "
            "| 0.17× |") in text
    assert "| wide: 784-512-512-10 relu, adam, batch 256 | 2.00 s | **1.50 s** | failed | not installed | — |" in text
    assert "- jax: not installed (`pip install -e '.[peers]'`)." in text
    assert "- torch 9.9: eager, `torch.set_num_threads(2)`" in text


def test_peers_table_bolds_a_peer_that_is_fastest():
    results = report.Results(_suite_json({("mnist128", "numpy"): 0.40, ("mnist128", "numba"): 0.30}))
    text = "\n".join(versus.render(results, {"jax": _peer({"mnist128": 0.10})}, "numba"))
    assert "| 400 ms | 300 ms | **100 ms** | 3.00× |" in text
    assert "`jax.jit` of a whole epoch" in text and "optax 0.2" in text


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


def test_bench_subcommand_takes_peers(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "--peers" in capsys.readouterr().out


def test_parse_peers_keeps_order_once():
    assert versus.parse_peers("jax, torch,jax") == ["jax", "torch"]

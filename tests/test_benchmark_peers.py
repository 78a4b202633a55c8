"""The benchmark's peers (``benchmarks/harness/peers.py``) train the workloads as fastnn does.

PyTorch and JAX are optional (``pip install -e '.[peers]'``) and never needed to test fastnn:
every test here is skipped when its peer is not installed.  Each peer starts from fastnn's
initial weights, so its outputs and loss before training equal fastnn's; on one batch the
row order does not matter, so its steps equal fastnn's too.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn as fn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import cases, peers, probes, versus  # noqa: E402

PEERS = [pytest.param(peer, marks=pytest.mark.skipif(not versus.installed(peer), reason=f"{peer} not installed"))
         for peer in peers.PEERS]
# The workload of each optimizer and loss: SGD + sigmoid, Adam + softmax cross-entropy, RMSprop + MSE.
WORKLOADS = ["tiny", "mnist128", "regression"]


def _data(workload, rows):
    X, y = peers.workload_data(workload, rows)
    return X[:rows], y[:rows]


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("peer", PEERS)
def test_peer_starts_from_fastnn_and_trains(peer, workload):
    w = cases.WORKLOADS[workload]
    X, y = _data(w, 300)
    model = w.build("numpy", "float32", seed=0)
    run = peers.RUNS[peer](w, X, y, model.get_weights(), threads=1)

    out = run.predict(X)
    assert out.shape == (len(X), w.widths[-1]) and out.dtype == np.float32
    np.testing.assert_allclose(out, model.predict(X, output="logits"), rtol=1e-4, atol=1e-5)
    before = run.loss()
    assert before == pytest.approx(model.evaluate(X, y)["loss"], rel=1e-4)

    for _ in range(5):
        run.epoch()
    assert run.loss() < before
    assert [a.shape for a in run.weights()] == [a.shape for a in model.get_weights()]

    run.snapshot()
    saved = run.weights()
    run.epoch()
    run.reset()
    for a, b in zip(run.weights(), saved):
        np.testing.assert_array_equal(a, b)


def _optimizer(name):
    # Adam: PyTorch and optax add epsilon to the bias-corrected sqrt(v), fastnn (as Keras) to sqrt(v);
    # the steps differ where a gradient is as small as epsilon, which MNIST's near-empty border
    # pixels give.  With a far smaller epsilon both are the same rule.
    return fn.optimizers.Adam(epsilon=1e-12) if name == "adam" else fn.optimizers.get(name)


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("peer", PEERS)
def test_peer_steps_equal_fastnn_on_one_batch(peer, workload):
    # With as many rows as the batch size, every epoch is one step on all rows, whatever the order.
    w = cases.WORKLOADS[workload]
    X, y = _data(w, w.batch_size)
    model = w.build("numpy", "float32", seed=0)
    run = peers.RUNS[peer](w, X, y, model.get_weights(), threads=1, optimizer=_optimizer(w.optimizer))
    for _ in range(3):
        run.epoch()
    model.compile(optimizer=_optimizer(w.optimizer), loss=model.loss)
    model.fit(X, y, epochs=3, batch_size=w.batch_size, shuffle=False, verbose=0)
    for got, expected in zip(run.weights(), model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-6)


def test_peers_accept_only_the_rules_they_implement():
    w = cases.WORKLOADS["mnist128"]
    assert peers.optimizer_spec(w)[0] == "adam"
    assert peers.optimizer_spec(w)[1].learning_rate == fn.optimizers.Adam().learning_rate
    decaying = fn.schedules.ExponentialDecay(0.01, decay_rate=0.9, decay_steps=100)
    bad_ones = ("adagrad", fn.optimizers.SGD(momentum=0.9), fn.optimizers.Adam(epsilon_inside_sqrt=True),
                fn.optimizers.RMSprop(learning_rate=decaying))
    for bad in bad_ones:
        with pytest.raises(ValueError, match="optimizer: the peers implement SGD without momentum"):
            peers.optimizer_spec(w, bad)


@pytest.mark.skipif(not versus.installed("jax"), reason="jax not installed")
@pytest.mark.parametrize("workload", WORKLOADS)
def test_jax_optimizers_without_optax_step_as_fastnn(workload, monkeypatch):
    monkeypatch.setitem(sys.modules, "optax", None)  # import optax now raises ImportError
    w = cases.WORKLOADS[workload]
    X, y = _data(w, w.batch_size)
    model = w.build("numpy", "float32", seed=0)
    run = peers.JaxRun(w, X, y, model.get_weights())
    for _ in range(3):
        run.epoch()
    model.fit(X, y, epochs=3, batch_size=w.batch_size, shuffle=False, verbose=0)
    for got, expected in zip(run.weights(), model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("peer", PEERS)
def test_peer_process_prints_its_timings(peer):
    env = probes.child_env(versus.peer_env(peer, 1))
    proc = subprocess.run([sys.executable, "-m", "harness.peers", peer, "--workloads", "regression",
                           "--threads", "1", "--quick"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["peer"] == peer and out["threads"] == 1 and out["version"]
    timing = out["workloads"]["regression"]
    assert timing["warm_up"] > 0
    assert len(timing["epoch_seconds"]) >= cases.TRAIN_MIN_ROUNDS[True]
    assert all(t > 0 for t in timing["epoch_seconds"])

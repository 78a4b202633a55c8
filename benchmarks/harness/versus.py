"""fastnn against PyTorch and JAX: the peers' runs and the report's table.

``python benchmarks/report.py --peers torch,jax`` times the training workloads
the suite timed (float32) in each peer (``peers.py``), in a fresh process per
peer so that its thread pools never share a process with fastnn's, and
``render`` sets them beside fastnn's backends.  A peer that is not installed
is reported as such (``pip install -e '.[peers]'`` installs both).

Threads: PyTorch gets ``torch.set_num_threads(T)``; JAX (XLA) has no thread
count to set beyond "one", so at ``T = 1`` it runs with Eigen's pool off and
one intra-op thread (``XLA_FLAGS``), otherwise with XLA's default (every
core).  ``T`` is the report's ``--threads``, else fastnn's default thread count.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys

from . import peers, probes
from .tables import fmt_seconds, table

MODULES = {"torch": ("torch",), "jax": ("jax", "jaxlib")}  # what must import for each peer
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PEER_TIMEOUT = 3600  # seconds for one peer's process, every workload included


def parse_peers(text: str) -> list[str]:
    """``--peers``'s argparse ``type``: a comma-separated list of names among ``peers.PEERS``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in peers.PEERS for name in names):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of peers among {list(peers.PEERS)}, got {text!r}")
    return list(dict.fromkeys(names))


def installed(peer: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in MODULES[peer])


def peer_env(peer: str, threads: int, env: dict | None = None) -> dict:
    """Environment variables for ``peer``'s process: ``env`` plus the peer's own thread settings."""
    env = dict(env or {})
    if peer == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        if threads == 1:
            env["XLA_FLAGS"] = " ".join(filter(None, (env.get("XLA_FLAGS"), XLA_ONE_THREAD)))
    return env


def run_peers(names, workloads, rows: int, quick: bool, threads: int, env: dict | None = None) -> dict:
    """Time each peer of ``names`` on ``workloads`` (names in ``cases.WORKLOADS``), one process per peer.

    ``{peer: {"status": "ok", "version": ..., "threads": T, "workloads": {name: {"epoch_seconds": [...],
    "warm_up": s} or {"error": message}}}}``; status "not installed" or "failed" (with ``error``) otherwise.
    """
    out = {}
    for peer in names:
        if not installed(peer):
            out[peer] = {"status": "not installed"}
            continue
        print(f"peer {peer}: {', '.join(workloads)} ...", flush=True)
        cmd = [sys.executable, "-m", "harness.peers", peer, "--workloads", ",".join(workloads),
               "--rows", str(rows), "--threads", str(threads)] + ["--quick"] * quick
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PEER_TIMEOUT,
                                  env=probes.child_env(peer_env(peer, threads, env)))
        except subprocess.TimeoutExpired:
            out[peer] = {"status": "failed", "error": f"no result within {PEER_TIMEOUT} s"}
            continue
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            out[peer] = {"status": "failed", "error": lines[-1]}
            continue
        out[peer] = dict(json.loads(proc.stdout.strip().splitlines()[-1]), status="ok")
    return out


def failures(measured: dict) -> list[str]:
    """One message per peer that failed and per workload that failed in a peer ("not installed" is none)."""
    out = []
    for peer, run in measured.items():
        if run["status"] == "failed":
            out.append(f"the {peer} peer failed: {run['error']}")
        for name, timing in run.get("workloads", {}).items():
            if "error" in timing:
                out.append(f"the {peer} peer failed on {name}: {timing['error']}")
    return out


def _peer_note(peer: str, run: dict) -> str:
    if run["status"] == "not installed":
        return f"- {peer}: not installed (`pip install -e '.[peers]'`)."
    if run["status"] == "failed":
        return f"- {peer}: failed ({run['error']})."
    if peer == "torch":
        how = (f"eager, `torch.set_num_threads({run['threads']})`, index slicing of preloaded tensors, "
               "fused Adam/SGD, foreach RMSprop")
    else:
        optax = f", optax {run['optax']}" if run.get("optax") else ", hand-written optimizers (optax not installed)"
        threads = "one thread (XLA_FLAGS)" if run["threads"] == 1 else "XLA's default threads"
        how = f"`jax.jit` of a whole epoch, `lax.scan` over the batches{optax}, {threads}"
    warm = ", ".join(f"{name} {fmt_seconds(t['warm_up'])}" for name, t in run["workloads"].items() if "warm_up" in t)
    return f"- {peer} {run['version']}: {how}. Warm-up epoch (compilation included): {warm}."


def render(results, measured: dict | None, default_backend: str) -> list[str]:
    """The "fastnn against PyTorch and JAX" section: one row per float32 training workload in ``results``
    (``report.Results``) and the peers' times from ``run_peers``; [] without peers."""
    if not measured:
        return []
    backends, names = results.backends, list(measured)
    headers = ["workload"] + [f"fastnn {b}" for b in backends] + names + [
        f"fastnn {default_backend} ÷ fastest peer"]
    rows = []
    for case, per in results.of_kind("train", "float32"):
        workload = case.rsplit("-", 1)[0]  # case ids are "<workload>-<dtype>"
        times = {f"fastnn {b}": per[b]["seconds"] for b in backends if b in per}
        cells = {}
        for peer in names:
            run = measured[peer]
            timing = run.get("workloads", {}).get(workload)
            if run["status"] != "ok":
                cells[peer] = run["status"]
            elif timing is None:
                cells[peer] = "—"
            elif "error" in timing:
                cells[peer] = "failed"
            else:
                times[peer] = statistics.median(timing["epoch_seconds"])
        fastest = min(times.values()) if times else None
        for column, seconds in times.items():
            text = fmt_seconds(seconds)
            cells[column] = f"**{text}**" if seconds == fastest else text
        peer_times = [times[p] for p in names if p in times]
        ratio = "—"
        if peer_times and f"fastnn {default_backend}" in times:
            ratio = f"{times[f'fastnn {default_backend}'] / min(peer_times):.2f}×"
        label = next(iter(per.values()))["label"]
        rows.append([label] + [cells.get(column, "—") for column in headers[1:-1]] + [ratio])
    intro = ("Seconds per epoch (median over rounds, float32) of the training workloads above, on the same "
             "rows and from the same initial weights, with the same loss, batch size and optimizer "
             "hyper-parameters; each peer ran in its own process, with a warm-up epoch first and every round "
             "starting from the state it left. The fastest of each row is in bold; the last column is "
             f"fastnn's default backend ({default_backend}) over the fastest peer (below 1: fastnn is faster). "
             "How each peer's loop is written: `benchmarks/harness/peers.py`.")
    return (["## fastnn against PyTorch and JAX", "", intro, ""] + table(headers, rows)
            + [_peer_note(peer, measured[peer]) for peer in names] + [""])

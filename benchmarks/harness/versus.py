"""fastnn against PyTorch and JAX: the peers' runs and the report's table.

``python benchmarks/report.py --peers torch,jax`` times the training workloads
the suite timed (float32) in each peer (``peers.py``) and again in each of
fastnn's backends, every one in a process of its own so that no thread pools
share a process, and ``render`` sets them side by side.  A peer that is not
installed is reported as such (``pip install -e '.[peers]'`` installs both).

Turns: the processes stay up and take turns, one epoch each (``peers.serve``):
for each workload every runner first times a warm-up epoch, then each round
runs one epoch of every runner, in an order rotated from round to round, with
``PAUSE`` seconds between two epochs so that a thread pool still spinning after
its work (OpenBLAS's spins about 0.1 s) does not run into the next runner's
epoch.  A machine whose speed drifts (a shared machine's often moves by 30 %
within minutes) then slows every runner of a round alike, where timing the
peers minutes after the suite compared two different machines.  The table's
last column is the ratio of the medians it shows.  A workload gets at least
``TURN_MIN_ROUNDS`` rounds: with few, one slow epoch moves a median.

Threads: PyTorch gets ``torch.set_num_threads(T)``; JAX (XLA) has no thread
count to set beyond "one", so at ``T = 1`` it runs with Eigen's pool off and
one intra-op thread (``XLA_FLAGS``), otherwise with XLA's default (every
core).  ``T`` is the report's ``--threads``, else fastnn's default thread count.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from . import cases, peers, probes
from .tables import fmt_seconds, table

MODULES = {"torch": ("torch",), "jax": ("jax", "jaxlib")}  # what must import for each peer
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PEER_TIMEOUT = 1800  # seconds for one answer of a runner's process (a warm-up epoch, compiling included)
PAUSE = 0.2  # seconds between two runners' epochs
MAX_ROUNDS = 20
TURN_MIN_ROUNDS = {False: 5, True: 1}
# How much faster than the fastest peer fastnn's default backend is to be (issue 12's targets).
MARGIN = 1.3
MARGINS = {"wide": 1.15}
WHERE_TIMEOUT = 900  # seconds for one where_time_goes.py run


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


class _Runner:
    """One runner's process (``python -m harness.peers NAME --serve``), answering a line at a time."""

    def __init__(self, name: str, rows: int, threads: int, env: dict):
        self.name = name
        self.stderr = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, "-m", "harness.peers", name, "--serve", "--rows", str(rows),
               "--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, bufsize=1, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the process ended

    def answer(self, timeout: float = PEER_TIMEOUT) -> dict:
        """The next JSON line; RuntimeError (with the end of its standard error) if none comes."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer within {timeout:.0f} s") from None
        if line is None:
            self.stderr.seek(0)
            lines = self.stderr.read().strip().splitlines() or [f"exit status {self.proc.wait()}"]
            raise RuntimeError(lines[-1])
        return json.loads(line)

    def ask(self, command: str) -> dict:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # the process ended: answer() says why
        return self.answer()

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _enough(rounds: int, totals: list[float], quick: bool) -> bool:
    """Whether a workload has had its rounds: at least ``TURN_MIN_ROUNDS`` and, below
    ``MAX_ROUNDS``, until its fastest runner has run ``cases.TRAIN_SECONDS``."""
    if rounds < TURN_MIN_ROUNDS[quick]:
        return False
    return rounds >= MAX_ROUNDS or min(totals) >= cases.TRAIN_SECONDS[quick]


def run_peers(names, workloads, rows: int, quick: bool, threads: int, env: dict | None = None,
              backends=()) -> dict:
    """Time each peer of ``names`` and each fastnn backend of ``backends`` on ``workloads`` (names in
    ``cases.WORKLOADS``), a process each, taking turns an epoch at a time (see the top).

    ``{runner: {"status": "ok", "version": ..., "threads": T, "workloads": {name: {"epoch_seconds": [...],
    "warm_up": s} or {"error": message}}}}`` with runners ``names`` and ``"fastnn-<backend>"``; a
    workload's ``epoch_seconds`` of all runners hold the same rounds; status "not installed" or
    "failed" (with ``error``) otherwise.
    """
    out, runners = {}, {}
    todo = [(peer, peer_env(peer, threads, env)) for peer in names if installed(peer)]
    todo += [(peers.FASTNN_PREFIX + backend, dict(env or {})) for backend in backends]
    out.update({peer: {"status": "not installed"} for peer in names if not installed(peer)})
    try:
        for name, extra in todo:
            print(f"starting {name} ...", flush=True)
            runner = runners[name] = _Runner(name, rows, threads, probes.child_env(extra))
            try:
                ready = runner.answer()
                out[name] = {key: ready[key] for key in ready if key not in ("ready", "peer", "rows")}
                out[name].update(status="ok", workloads={})
            except RuntimeError as exc:
                out[name] = {"status": "failed", "error": str(exc)}
        for workload in workloads:
            live = [name for name in runners if out[name]["status"] == "ok"]
            for name in live:
                print(f"{name}: warm-up epoch of {workload} ...", flush=True)
                out[name]["workloads"][workload] = _ask(runners[name], f"prepare {workload}", out[name])
            live = [name for name in live if "warm_up" in out[name]["workloads"].get(workload, {})]
            for name in live:
                out[name]["workloads"][workload]["epoch_seconds"] = []
            rounds = 0
            print(f"{workload}: rounds of {', '.join(live)} ...", flush=True)
            while live and not _enough(rounds, [sum(out[name]["workloads"][workload]["epoch_seconds"])
                                                for name in live], quick):
                turn = rounds % len(live)
                for name in live[turn:] + live[:turn]:
                    time.sleep(PAUSE)
                    answer = _ask(runners[name], f"epoch {workload}", out[name])
                    if "seconds" in answer:
                        out[name]["workloads"][workload]["epoch_seconds"].append(answer["seconds"])
                    else:
                        out[name]["workloads"][workload] = answer
                live = [name for name in live if "error" not in out[name]["workloads"][workload]]
                rounds += 1
    finally:
        for runner in runners.values():
            runner.close()
    return out


def _ask(runner: _Runner, command: str, record: dict) -> dict:
    """The runner's answer to ``command``, or ``{"error": ...}``; a runner that ended is marked failed."""
    try:
        return runner.ask(command)
    except RuntimeError as exc:
        record.update(status="failed", error=str(exc))
        return {"error": str(exc)}


def failures(measured: dict) -> list[str]:
    """One message per peer that failed and per workload that failed in a peer ("not installed" is none)."""
    out = []
    for peer, run in measured.items():
        who = (f"fastnn's {peer[len(peers.FASTNN_PREFIX):]} backend, in turns with the peers,"
               if peer.startswith(peers.FASTNN_PREFIX) else f"the {peer} peer")
        if run["status"] == "failed":
            out.append(f"{who} failed: {run['error']}")
        for name, timing in run.get("workloads", {}).items():
            if "error" in timing:
                out.append(f"{who} failed on {name}: {timing['error']}")
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


def _timing(run: dict, workload: str):
    """``(cell, rounds)``: a runner's cell for ``workload`` (its status, "—" or "failed") and its epoch
    seconds, ``None`` where it has none."""
    timing = run.get("workloads", {}).get(workload)
    if run["status"] != "ok" and not timing:
        return run["status"], None
    if timing is None:
        return "—", None
    if "error" in timing or not timing.get("epoch_seconds"):
        return "failed", None
    return None, timing["epoch_seconds"]


def _workloads(results):
    """``(workload, per_backend)`` for each float32 training case of the suite's ``results``."""
    for case, per in results.of_kind("train", "float32"):
        yield case.rsplit("-", 1)[0], per  # case ids are "<workload>-<dtype>"


def _row(measured: dict, workload: str, per: dict, backends, names, in_turns: bool):
    """``(times, cells)`` of one row: the median epoch of each column that has one, and the text
    ("failed", "—", a status) of each that has none."""
    rounds, cells = {}, {}
    for b in backends:
        if in_turns:
            cell, seconds = _timing(measured.get(peers.FASTNN_PREFIX + b, {"status": "—"}), workload)
        else:
            cell, seconds = ("—", None) if b not in per else (None, [per[b]["seconds"]])
        if seconds is None:
            cells[f"fastnn {b}"] = cell
        else:
            rounds[f"fastnn {b}"] = seconds
    for peer in names:
        cell, seconds = _timing(measured[peer], workload)
        if seconds is None:
            cells[peer] = cell
        else:
            rounds[peer] = seconds
    return {column: statistics.median(seconds) for column, seconds in rounds.items()}, cells


def _versus_fastest_peer(times: dict, names, default: str) -> float | None:
    """The default backend's median over the fastest peer's, or None where either is missing."""
    peer_times = [times[p] for p in names if p in times]
    if not peer_times or default not in times:
        return None
    return times[default] / min(peer_times)


def render(results, measured: dict | None, default_backend: str) -> list[str]:
    """The "fastnn against PyTorch and JAX" section: one row per float32 training workload in ``results``
    (``report.Results``), with the times of ``run_peers`` (fastnn's backends from their turns there,
    or from the suite where ``measured`` has none); [] without peers."""
    if not measured:
        return []
    backends = results.backends
    names = [name for name in measured if not name.startswith(peers.FASTNN_PREFIX)]
    in_turns = any(peers.FASTNN_PREFIX + b in measured for b in backends)
    default = f"fastnn {default_backend}"
    headers = ["workload"] + [f"fastnn {b}" for b in backends] + names + [
        f"{default} ÷ fastest peer", "needed", "met"]
    rows = []
    for workload, per in _workloads(results):
        times, cells = _row(measured, workload, per, backends, names, in_turns)
        fastest = min(times.values()) if times else None
        for column, seconds in times.items():
            text = fmt_seconds(seconds)
            cells[column] = f"**{text}**" if seconds == fastest else text
        ratio, met = "—", "—"
        needed = 1 / MARGINS.get(workload, MARGIN)
        versus_peer = _versus_fastest_peer(times, names, default)
        if versus_peer is not None:
            ratio = f"{versus_peer:.2f}×"
            met = "yes" if versus_peer <= needed else "**no**"
        label = next(iter(per.values()))["label"]
        rows.append([label] + [cells.get(column, "—") for column in headers[1:-3]]
                    + [ratio, f"≤ {needed:.2f}×", met])
    if in_turns:
        how = ("fastnn's backends and each peer ran in processes of their own that took turns, one epoch each "
               f"(each round every one of them once, in an order rotated from round to round, {PAUSE} s apart), "
               "after a warm-up epoch, every round starting from the state the warm-up left, so that the "
               "machine's drift slows all of them alike. The last column is fastnn's default backend "
               f"({default_backend}) over the fastest peer (below 1: fastnn is faster).")
    else:
        how = ("each peer ran in its own process, with a warm-up epoch first and every round starting from the "
               "state it left; fastnn's columns are the suite's above. The last column is fastnn's default "
               f"backend ({default_backend}) over the fastest peer (below 1: fastnn is faster).")
    intro = ("Seconds per epoch (median over rounds, float32) of the training workloads above, on the same "
             "rows and from the same initial weights, with the same loss, batch size and optimizer "
             f"hyper-parameters; {how} The fastest of each row is in bold; *needed* is the target: "
             f"{MARGIN}× faster than the fastest peer ({', '.join(f'{w} {m}×' for w, m in MARGINS.items())}). "
             "How each peer's loop is written: `benchmarks/harness/peers.py`; how the turns are run: "
             "`benchmarks/harness/versus.py`.")
    notes = [_peer_note(peer, measured[peer]) for peer in names]
    return ["## fastnn against PyTorch and JAX", "", intro, ""] + table(headers, rows) + notes + [""]


def short_rows(results, measured: dict | None, default_backend: str) -> list[str]:
    """The workloads of ``render``'s table where fastnn's default backend misses its target."""
    if not measured:
        return []
    names = [name for name in measured if not name.startswith(peers.FASTNN_PREFIX)]
    in_turns = any(peers.FASTNN_PREFIX + b in measured for b in results.backends)
    out = []
    for workload, per in _workloads(results):
        times, _ = _row(measured, workload, per, results.backends, names, in_turns)
        versus_peer = _versus_fastest_peer(times, names, f"fastnn {default_backend}")
        if versus_peer is not None and versus_peer > 1 / MARGINS.get(workload, MARGIN):
            out.append(workload)
    return out


def where_time_goes(workloads, backend: str, env: dict | None = None) -> dict:
    """``{workload: text}``: ``benchmarks/where_time_goes.py WORKLOAD --backend B``'s printout for each
    workload it knows (else a sentence saying so), each in a fresh process."""
    from . import BENCHMARKS

    script = BENCHMARKS / "where_time_goes.py"
    out = {}
    for workload in workloads:
        if workload not in WHERE_WORKLOADS:
            out[workload] = f"(where_time_goes.py has no {workload} case)"
            continue
        print(f"where the time goes: {workload}, {backend} ...", flush=True)
        try:
            proc = subprocess.run([sys.executable, str(script), workload, "--backend", backend],
                                  capture_output=True, text=True, timeout=WHERE_TIMEOUT,
                                  env=probes.child_env(env))
        except subprocess.TimeoutExpired:
            out[workload] = f"(no result within {WHERE_TIMEOUT} s)"
            continue
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            out[workload] = f"(failed: {lines[-1]})"
        else:
            out[workload] = proc.stdout.strip()
    return out


WHERE_WORKLOADS = ("tiny", "mnist128", "wide", "small-batch", "small-batch-32")  # where_time_goes.py's


def render_where(where: dict | None) -> list[str]:
    """The section under the peers table: where the time of each row short of its target goes."""
    if not where:
        return []
    out = ["### Where the time goes in the rows short of the target", "",
           "`python benchmarks/where_time_goes.py WORKLOAD --backend B` for fastnn's default backend, run after "
           "the table in a fresh process: each part of one thread's share of an epoch timed alone (GEMMs at "
           "their exact shapes, the gather, the optimizer update) against a measured epoch and the GEMM-peak "
           "floor, and (Cython) the first thread's phases in place.", ""]
    for workload, text in where.items():
        out += [f"{workload}:", "", "```", text, "```", ""]
    return out

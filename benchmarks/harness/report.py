"""Run the benchmark suite and write ``RESULTS.md`` and a chart of speed-ups.

    python benchmarks/report.py             # full run (about 10 minutes on 2 cores)
    python benchmarks/report.py --quick     # CI-sized, under 2 minutes
    fastnn bench --quick                    # the same, from the command line of a source checkout
    python benchmarks/report.py --json run.json   # a saved pytest-benchmark JSON
    python benchmarks/report.py --peers torch,jax # also the training workloads in PyTorch and JAX
    python benchmarks/report.py --busy            # also the busy-machine check (1 and 3 busy processes)
    python benchmarks/report.py --sparse          # also the sparse text case and the big-CSR memory check

Every figure in the report comes from this run (or the JSON it reads): the
suite's medians, the float32 GEMM peak measured by the suite, and the
latency and memory subprocesses run here, and the peers (``versus.py``)
and the busy-machine check (``busy.py``) when asked for.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import BENCHMARKS, busy, cases, probes, sparse, versus
from .tables import fmt as _fmt, fmt_seconds, mib as _mib, table as _table

RESULTS_NAME = "RESULTS.md"
CHART_NAME = "speedups.png"
DEFAULT_MAX_TIME = {False: 0.3, True: 0.05}  # pytest-benchmark --benchmark-max-time per kernel case

# Issue 3's speed targets (float32): (kind, case id, what, minimum speed-up over numpy, maximum x floor).
TARGETS = [
    ("train", "tiny-float32", "784-16-16-10 sigmoid, SGD, batch 100", 3.0, 2.5),
    ("train", "mnist128-float32", "784-128-10 ReLU, Adam, batch 128", 1.8, 2.0),
    ("train", "wide-float32", "784-512-512-10 ReLU, Adam, batch 256", 1.3, 1.4),
    ("train", "regression-float32", "13-128-128-64-1 ReLU, RMSprop, MSE, batch 16, 404 rows", 5.0, None),
    ("optimizer", "adam-1e6-float32", "Adam update, 1,000,000 parameters", 4.0, None),
    ("predict", "mnist128-float32", "predict with 784-128-10 (10,000×784 in full mode)", 1.5, None),
]


# ---------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report's options (shared by ``benchmarks/report.py`` and ``fastnn bench``)."""
    parser.add_argument("--quick", action="store_true",
                        help="fewer and smaller cases, float32 only: a CI smoke run (under 2 minutes)")
    parser.add_argument("--json", metavar="PATH",
                        help="read this saved pytest-benchmark JSON instead of running the suite")
    parser.add_argument("--output", metavar="DIR",
                        help=f"folder for {RESULTS_NAME} and {CHART_NAME} (default: the suite's folder, benchmarks/)")
    parser.add_argument("--suite", metavar="DIR",
                        help="the pytest-benchmark suite (default: benchmarks/, the folder holding this harness)")
    parser.add_argument("--backends", metavar="LIST",
                        help="comma-separated backends to run (default: every available one)")
    parser.add_argument("-k", dest="keyword", metavar="EXPR",
                        help="only the benchmarks matching this pytest -k expression")
    parser.add_argument("--max-time", type=float, metavar="SECONDS",
                        help="seconds per kernel benchmark (pytest-benchmark --benchmark-max-time; "
                             f"default {DEFAULT_MAX_TIME[False]}, quick {DEFAULT_MAX_TIME[True]})")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for BLAS, OpenMP and Numba in every benchmark process (sets "
                             "OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMBA_NUM_THREADS; "
                             "default: the libraries' own choice)")
    parser.add_argument("--save-json", metavar="PATH", help="keep the suite's pytest-benchmark JSON at PATH")
    parser.add_argument("--no-latency", action="store_true", help="skip the first-call latency subprocesses")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--peers", type=versus.parse_peers, metavar="LIST",
                        help="also time the training workloads in these peers, a comma-separated list among "
                             "torch, jax (one process per peer; a peer that is not installed is reported as "
                             "such; pip install -e '.[peers]')")
    parser.add_argument("--busy", action="store_true",
                        help="also time mnist128 and small-batch-32 on every backend beside 1 and 3 CPU-bound "
                             "processes, with the default threads and with one thread (off unless given)")
    parser.add_argument("--sparse", action="store_true",
                        help="also the sparse text case against scikit-learn's MLPClassifier (2**18 hashed "
                             "features) and one epoch on a 1,000,000 x 2**18 CSR matrix with its peak memory "
                             "(a few minutes; off unless given)")


def main(argv=None, prog="python benchmarks/report.py") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, parser, prog)


def _command(prog, args) -> str:
    """The command line that reproduces this report."""
    # Environment variables that change what is measured come first, as in a shell.
    # The data folder is this machine's own: the command names its variable, the report says
    # which data it held ("MNIST-shaped data").
    env = ["FASTNN_DATA=<data folder>"] if "FASTNN_DATA" in os.environ else []
    env += [f"{key}={shlex.quote(os.environ[key])}" for key in probes.THREAD_VARIABLES if key in os.environ]
    parts = shlex.split(prog)
    flags = [("--json", args.json), ("--output", args.output), ("--suite", args.suite),
             ("--backends", args.backends), ("-k", args.keyword), ("--max-time", args.max_time),
             ("--threads", args.threads), ("--save-json", args.save_json),
             ("--peers", ",".join(args.peers) if args.peers else None)]
    parts += ["--quick"] * args.quick
    for flag, value in flags:
        if value is not None:
            parts += [flag, str(value)]
    parts += ["--no-latency"] * args.no_latency + ["--no-memory"] * args.no_memory + ["--busy"] * args.busy
    parts += ["--sparse"] * args.sparse
    return " ".join(env + [shlex.join(parts)])


def find_suite(explicit=None) -> Path | None:
    """The pytest-benchmark suite: ``explicit``, else ``benchmarks/``, the folder holding this harness;
    None if that folder holds no suite."""
    folder = Path(explicit) if explicit is not None else BENCHMARKS
    if (folder / "conftest.py").is_file() and any(folder.glob("test_*.py")):
        return folder.resolve()
    return None


def _parse_backends(text, parser):
    available = sorted(cases.K.available(), key=lambda name: name != "numpy")
    if text is None:
        return available
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in available]
    if not names or bad:
        parser.error(f"argument --backends: expected a comma-separated list of available backends "
                     f"{available}, got {text!r}")
    return names


def run(args, parser, prog="python benchmarks/report.py") -> int:
    """Run (or read) the suite, the latency and memory probes; write the report."""
    if args.max_time is not None and not args.max_time > 0:
        parser.error(f"argument --max-time: expected a positive number of seconds, got {args.max_time}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"argument --threads: expected a positive integer, got {args.threads}")
    if args.json is not None and not Path(args.json).is_file():
        parser.error(f"argument --json: no such file: {args.json!r}")
    backends = _parse_backends(args.backends, parser)
    suite = find_suite(args.suite)
    if suite is None and args.json is None:
        where = args.suite or str(BENCHMARKS)
        parser.error(f"cannot find the benchmark suite in {where}; pass --suite DIR, "
                     f"or --json a saved pytest-benchmark JSON")
    output = Path(args.output) if args.output else (suite or BENCHMARKS)
    output.mkdir(parents=True, exist_ok=True)

    # Environment of every benchmark subprocess (thread pools read it when they load).
    env = {} if args.threads is None else dict.fromkeys(probes.THREAD_VARIABLES, str(args.threads))
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = probes.load_average()
    failures = []
    if args.json is not None:
        try:
            with open(args.json) as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            parser.error(f"argument --json: cannot read {args.json!r} as a pytest-benchmark JSON: {exc}")
    else:
        if importlib.util.find_spec("pytest_benchmark") is None:
            parser.exit(1, "fastnn bench: needs pytest-benchmark (pip install pytest-benchmark, "
                           "or pip install -e '.[test]')\n")
        data, failure = run_suite(suite, args, backends, env)
        failures += [failure] if failure else []
    results = Results(data, backends if args.backends else None)
    if not results.entries:
        parser.exit(1, "fastnn bench: the suite produced no benchmark results\n")
    quick = args.quick or results.quick
    ran = [b for b in backends if b in results.backends] or backends
    facts = probes.machine_facts(ran)

    memory_rows = cases.QUICK_TRAIN_ROWS if quick else cases.TRAIN_ROWS
    default_backend = next(b for b in cases.K.BACKEND_MODULES if b in cases.K.available())
    peer_runs = where_runs = None
    if args.peers:
        import fastnn

        workloads = [case.rsplit("-", 1)[0] for case, _ in results.of_kind("train", "float32")]
        peer_runs = versus.run_peers(args.peers, workloads, memory_rows, quick,
                                     args.threads or fastnn.get_num_threads(), env, backends=ran)
        failures += versus.failures(peer_runs)
        short = versus.short_rows(results, peer_runs, default_backend)
        where_runs = None if quick or not short else versus.where_time_goes(short, default_backend, env)
    probe_runs = {"latency": (args.no_latency, "first-call latency",
                              lambda b: probes.first_call_latency(b, env=env)),
                  "memory": (args.no_memory, "peak memory of one epoch",
                             lambda b: probes.epoch_memory(b, memory_rows, env=env))}
    measured = {"latency": {}, "memory": {}}
    for name, (skip, what, probe) in probe_runs.items():
        for backend in ([] if skip else ran):
            print(f"{what}: {backend} ...", flush=True)
            try:
                measured[name][backend] = probe(backend)
            except (RuntimeError, subprocess.SubprocessError) as exc:
                failures.append(f"{what} of the {backend} backend failed: {str(exc).splitlines()[0]}")
    sparse_runs = (None, None)
    if args.sparse:
        print("sparse text case and 1,000,000-row CSR memory check ...", flush=True)
        sparse_runs = (sparse.text_case(ran, n_documents=2_000 if quick else 10_000, epochs=1 if quick else 3),
                       None if quick else sparse.memory_case(ran, env=env))
        failures += sparse.failures(*sparse_runs)
    load_end = probes.load_average()
    busy_runs = None
    if args.busy:  # last, after the load average is read: it loads the machine on purpose
        busy_runs = busy.measure(ran, memory_rows, env=env)
        failures += busy.failures(busy_runs)

    context = {
        "command": _command(prog, args), "started": started, "quick": quick, "facts": facts,
        "load": (load_start, load_end), "latency": measured["latency"], "memory": measured["memory"],
        "failures": failures, "json": args.json, "memory_rows": memory_rows,
        "peers": peer_runs, "where": where_runs, "busy": busy_runs, "default_backend": default_backend, "sparse": sparse_runs,
    }
    chart = output / CHART_NAME
    write_chart(chart, results)
    text = render(results, context, chart.name)
    (output / RESULTS_NAME).write_text(text, encoding="utf-8")
    print(f"wrote {output / RESULTS_NAME} and {chart}")
    for failure in failures:
        print(f"fastnn bench: {failure}", file=sys.stderr)
    return 1 if failures else 0


def run_suite(suite: Path, args, backends, env) -> tuple[dict, str | None]:
    """Run the pytest-benchmark suite in a subprocess; its JSON, and a failure message or None."""
    max_time = args.max_time if args.max_time is not None else DEFAULT_MAX_TIME[args.quick]
    with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as tmp:
        json_path = Path(args.save_json) if args.save_json else Path(tmp) / "benchmarks.json"
        cmd = [sys.executable, "-m", "pytest", str(suite), "--benchmark-only", f"--benchmark-json={json_path}",
               f"--benchmark-max-time={max_time}", "-p", "no:cacheprovider", "-q"]
        if args.keyword:
            cmd += ["-k", args.keyword]
        env = dict(os.environ, **env, **{cases.QUICK_ENV: "1" if args.quick else "0",
                                         cases.BACKENDS_ENV: ",".join(backends)})
        print("running:", shlex.join(cmd), flush=True)
        status = subprocess.run(cmd, cwd=suite.parent, env=env).returncode
        if not json_path.is_file():
            raise SystemExit(f"fastnn bench: the benchmark suite wrote no results (pytest exit status {status})")
        with open(json_path) as f:
            data = json.load(f)
    failure = None
    if status != 0:
        failure = (f"the benchmark suite exited with status {status} (failed or errored benchmarks are "
                   f"missing from the report; see the pytest output)")
    return data, failure


# -------------------------------------------------------------------- results
def _iqr(values) -> float:
    if len(values) < 2:
        return 0.0
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


class Results:
    """pytest-benchmark JSON (of ``backends`` only, if given), keyed by case and backend.

    ``entries[(kind, case)][backend]`` is a dict with the case's metadata
    (from ``extra_info``) and ``seconds`` (the median; for training the
    median epoch), ``iqr``, ``rounds`` and for training ``fit_seconds``.
    """

    def __init__(self, data: dict, backends=None):
        self.entries: dict[tuple, dict] = {}
        self.backends: list[str] = []
        for bench in data.get("benchmarks", []):
            info, stats = bench.get("extra_info") or {}, bench.get("stats") or {}
            if "kind" not in info or "median" not in stats:
                continue
            if backends is not None and info["kind"] != "peak" and info["backend"] not in backends:
                continue
            entry = dict(info, seconds=stats["median"], iqr=stats.get("iqr", 0.0), rounds=stats.get("rounds"),
                         min=stats.get("min"))
            epochs = info.get("epoch_seconds")
            if epochs:
                entry.update(seconds=float(np.median(epochs)), iqr=_iqr(epochs), fit_seconds=stats["median"])
            self.entries.setdefault((info["kind"], info["case"]), {})[info["backend"]] = entry
            if info["backend"] not in self.backends and info["kind"] != "peak":
                self.backends.append(info["backend"])
        order = list(cases.K.BACKEND_MODULES)[::-1]  # numpy first, then numba, cython
        self.backends.sort(key=lambda b: order.index(b) if b in order else len(order))
        self.run_info = data.get("fastnn", {})  # load, threads, data (benchmarks/conftest.py)
        self.quick = any(e.get("quick") for per in self.entries.values() for e in per.values())
        peak = [e for (kind, _), per in self.entries.items() if kind == "peak" for e in per.values()]
        self.peak = peak[0] if peak else None

    @property
    def peak_flops(self) -> float | None:
        """float32 GEMM throughput (FLOP/s): the peak case's FLOPs over its fastest round."""
        if self.peak is None:
            return None
        return self.peak["flops"] / self.peak["min"]

    def of_kind(self, kind, dtype=None):
        return [(case, per) for (k, case), per in self.entries.items()
                if k == kind and (dtype is None or next(iter(per.values()))["dtype"] == dtype)]

    def dtypes(self, kind):
        seen = []
        for _, per in self.of_kind(kind):
            dtype = next(iter(per.values()))["dtype"]
            if dtype not in seen:
                seen.append(dtype)
        return seen

    def metrics(self, per: dict, backend: str) -> dict:
        """seconds, speed-up over numpy, GFLOP/s and ratio to the GEMM-peak floor of one backend."""
        entry = per[backend]
        seconds = entry["seconds"]
        out = {"seconds": seconds, "speedup": None, "gflops": None, "floor": None}
        if "numpy" in per and seconds > 0:
            out["speedup"] = per["numpy"]["seconds"] / seconds
        flops = entry.get("flops")
        if flops and seconds > 0:
            out["gflops"] = flops / seconds / 1e9
            if self.peak_flops:
                out["floor"] = seconds / (flops / self.peak_flops)
        return out


# ------------------------------------------------------------------ formatting
SECTION_NOTES = {
    "train": ("One `model.fit(X, y, epochs=1)` per round, after a warm-up fit; every round starts from the "
              "weights and optimizer state the warm-up left (later epochs would time a different model: "
              "on the NumPy backend, Adam slots of dead ReLU units decay into slow denormals, which the "
              "compiled backends flush to zero). *epoch* is the epoch itself "
              "(`on_epoch_begin` to `on_epoch_end`), the median over rounds; *fit call* is the whole call, "
              "which adds fit's input checks (about 10 ms for 60,000×784). FLOPs count the forward and "
              "weight-gradient products of every layer and the input-gradient products of every layer but "
              "the first."),
    "predict": "`model.predict(X)` (input checks included) with an untrained model; FLOPs: the forward products.",
    "gemm": ("`dense_forward` with bias and ReLU (X·W), `dense_backward` without the input gradient "
             "(first layer: Xᵀ·δ) and with it (Xᵀ·δ and δ·Wᵀ); shapes are batch × inputs × outputs. "
             "Epilogue work (bias, activation, bias gradient) is not counted in FLOPs."),
    "activation": ("`dense_forward` with inner dimension 1 (the GEMM is an outer product, so the time is the "
                   "bias add and the activation) followed by `activation_backward`."),
    "loss": "`loss_output_delta` for softmax + sparse categorical cross-entropy (the fused `(A - Y) / n`).",
    "optimizer": "One in-place update of a (rows × columns) parameter with its gradient and optimizer state.",
    "gather": "`gather_rows` of a shuffled minibatch from the 60,000×784 training matrix.",
}


def _backend_rows(results, per, backends, first_cells, extra):
    rows = []
    for i, backend in enumerate(b for b in backends if b in per):
        entry, m = per[backend], results.metrics(per, backend)
        spread = f"±{100 * entry['iqr'] / (2 * entry['seconds']):.0f} %" if entry["seconds"] else "—"
        cells = [c if i == 0 else "" for c in first_cells] + [
            backend, fmt_seconds(m["seconds"]), spread, _fmt(m["speedup"], "{:.2f}×")] + extra(entry, m)
        rows.append(cells + [entry["rounds"] if entry["rounds"] is not None else "—"])
    return rows


def render(results: Results, ctx: dict, chart_name: str) -> str:
    facts, backends = ctx["facts"], results.backends
    report_start, report_end = ctx["load"]
    load_start = results.run_info.get("load_start", report_start)
    load_end = results.run_info.get("load_end", report_end)
    out = ["# fastnn benchmark results", ""]
    out += [f"Written by `{ctx['command']}` on {ctx['started']:%Y-%m-%d %H:%M} UTC. "
            "Every figure below comes from that run; regenerate this file with the command, "
            "never edit it by hand.", ""]
    out += [f"**Warning:** {failure}." for failure in ctx["failures"]] + [""] * bool(ctx["failures"])
    if ctx["json"]:
        out += [f"Benchmark timings read from `{ctx['json']}`; machine facts, latency and memory measured "
                "when this report was written.", ""]
    mode = ("**quick** (CI smoke size: fewer cases, float32 only, 2,048 training rows and 2,000 prediction "
            "rows; not comparable with full runs or the targets)" if ctx["quick"]
            else "**full** (every case, float32 and float64)")
    unavailable = "".join(f"; unavailable: {name} ({reason})" for name, reason in facts["unavailable"].items())
    cpus = facts["cpus_available"]

    def load_text(load):
        return "unknown" if load is None else " / ".join(f"{x:.2f}" for x in load)

    thread_env = (results.run_info if "thread_env" in results.run_info else facts)["thread_env"]
    threads = (", ".join(f"{k}={v}" for k, v in thread_env.items()) if thread_env
               else "the libraries' defaults (see the pools under Machine)")
    out += [f"- Mode: {mode}.",
            f"- Backends: {', '.join(backends)}{unavailable}.",
            f"- Threads: {threads}.",
            f"- MNIST-shaped data: {_data_source(results, 'train') or 'not used'}.",
            f"- Regression data: {_data_source(results, 'train', 'regression') or 'not used'}.",
            f"- Load average (1 / 5 / 15 min) when the suite started: {load_text(load_start)}; when it ended: "
            f"{load_text(load_end)}; at the end of this report: {load_text(report_end)}. With {cpus} CPUs, "
            f"a load above {cpus} means other processes competed for the CPU: treat the timings as noisy.",
            "", f"![Speed-up over the numpy backend]({chart_name})", ""]

    out += _render_machine(results, facts)
    out += _render_targets(results, ctx["quick"])
    for kind, title in cases.KINDS.items():
        if kind == "sparse":
            out += _render_sparse(results, title)
            continue
        if kind == "peak" or not results.of_kind(kind):
            continue
        out += [f"## {title}", "", SECTION_NOTES[kind], ""]
        has_flops = any(e.get("flops") for _, per in results.of_kind(kind) for e in per.values())
        for dtype in results.dtypes(kind):
            out += [f"### {dtype}", ""]
            headers = ["workload" if kind == "train" else "case", "backend",
                       "epoch (median)" if kind == "train" else "median", "spread (IQR)", "× numpy"]
            headers += ["GFLOP/s", "× floor"] * has_flops + ["fit call"] * (kind == "train")

            def extra(entry, m, train=(kind == "train")):
                cells = [_fmt(m["gflops"], "{:.1f}"), _fmt(m["floor"], "{:.2f}×")] * has_flops
                return cells + [fmt_seconds(entry.get("fit_seconds"))] * train

            rows = []
            for _, per in results.of_kind(kind, dtype):
                meta = next(iter(per.values()))
                label = meta["label"] + (f", {meta['rows']:,} rows" if kind == "train" else "")
                rows += _backend_rows(results, per, backends, [label], extra)
            out += _table(headers + ["rounds"], rows)

    out += versus.render(results, ctx.get("peers"), ctx.get("default_backend"))
    out += versus.render_where(ctx.get("where"))
    out += busy.render(ctx.get("busy"), ctx["memory_rows"])
    out += sparse.render(*ctx.get("sparse", (None, None)))
    out += _render_latency(ctx["latency"])
    out += _render_memory(ctx["memory"], ctx["memory_rows"])
    out += ["## How to reproduce", "", "```bash",
            "python benchmarks/report.py             # full run: suite + latency + memory -> this file",
            "python benchmarks/report.py --quick     # CI-sized, under 2 minutes (also: fastnn bench --quick)",
            "pytest benchmarks/ --benchmark-only     # the suite alone (pytest-benchmark tables)",
            "pytest benchmarks/ --benchmark-only --benchmark-autosave   # then --benchmark-compare to diff runs",
            "pytest benchmarks/ --benchmark-only --benchmark-json=run.json   # save a run ...",
            "python benchmarks/report.py --json run.json                    # ... and report on it",
            "python benchmarks/report.py --peers torch,jax   # also PyTorch and JAX (pip install -e '.[peers]')",
            "python benchmarks/report.py --busy              # also the busy-machine check",
            "python benchmarks/report.py --sparse            # also the sparse text case and big-CSR memory",
            "```", ""]
    return "\n".join(out)


def _data_source(results, kind, case_prefix=None):
    for case, per in results.of_kind(kind):
        is_regression = case.startswith("regression")
        if (case_prefix == "regression") == is_regression:
            data = next(iter(per.values())).get("data")
            if data:
                return data
    return None


def _render_machine(results, facts) -> list[str]:
    peak = results.peak
    if peak is not None:
        peak_text = (f"{results.peak_flops / 1e9:.1f} GFLOP/s ({peak['label']}, fastest of {peak['rounds']} "
                     f"rounds; median {peak['flops'] / peak['seconds'] / 1e9:.1f})")
    else:
        peak_text = "not measured in this run (the peak case was filtered out): no floor ratios"
    threads = results.run_info if "threadpools" in results.run_info else facts  # as the suite saw them
    pools = "; ".join(f"{p['api']} {p['version']} ({p['library']}, {p['threads']} threads"
                      + (f", {p['architecture']}" if p.get("architecture") else "") + ")"
                      for p in threads["threadpools"]) or "threadpoolctl not installed"
    versions = ", ".join(f"{k} {v}" for k, v in facts["versions"].items() if v)
    commit = f" (commit {facts['commit']})" if facts["commit"] else ""
    rows = [
        ("CPU", facts["cpu"] + (" (AVX-512)" if facts["avx512"] else "")),
        ("CPUs", f"{facts['physical_cores'] or '?'} cores, {facts['logical_cpus']} logical CPUs, "
                 f"{facts['cpus_available']} available to the benchmarks"),
        ("float32 GEMM peak (the floor's denominator)", peak_text),
        ("BLAS and OpenMP pools (threadpoolctl, in the benchmark process)", pools),
    ]
    if "numba_threads" in threads:
        rows.append(("Numba threads", threads["numba_threads"]))
    if "cython_openmp" in facts:
        rows.append(("Cython backend built with OpenMP", "yes" if facts["cython_openmp"] else "no"))
    rows.append(("Thread settings", ", ".join(f"{k}={v}" for k, v in threads["thread_env"].items())
                 or "none (the libraries' defaults)"))
    rows += [("Python, platform", f"{facts['python']}, {facts['platform']}"),
             ("Versions", f"fastnn {facts['fastnn']}{commit}, {versions}")]
    return ["## Machine", ""] + _table(["", ""], rows)


def _render_targets(results, quick) -> list[str]:
    rows = []
    for kind, case, what, min_speedup, max_floor in TARGETS:
        per = results.entries.get((kind, case))
        if not per or "numpy" not in per:
            continue
        for backend in (b for b in results.backends if b != "numpy" and b in per):
            m = results.metrics(per, backend)
            met = m["speedup"] is not None and m["speedup"] >= min_speedup
            if max_floor is not None:
                met = met and m["floor"] is not None and m["floor"] <= max_floor
            rows.append([what, backend, f"{m['speedup']:.2f}×", f"≥ {min_speedup}×",
                         _fmt(m["floor"], "{:.2f}×") if max_floor else "—",
                         f"≤ {max_floor}×" if max_floor else "—", "yes" if met else "**no**"])
    if not rows:
        return []
    note = ("Quick mode: smaller data and fewer rounds, so this is a smoke check, not a verdict. "
            if quick else "")
    return (["## Speed targets (issue 3, float32)", "",
             note + "Each compiled backend against the numpy backend in the same run; × floor is the time over "
             "FLOPs ÷ the float32 GEMM peak above.", ""]
            + _table(["target", "backend", "speed-up", "needed", "× floor", "needed", "met"], rows))


def _render_sparse(results, title) -> list[str]:
    """The sparse first layer's epoch against the dense path's (the training case of the
    same workload, this run) and the dense floor, per backend."""
    rows = []
    for case, per in results.of_kind("sparse"):
        dense_per = results.entries.get(("train", case.replace("-sparse", "")), {})
        meta = next(iter(per.values()))
        for i, backend in enumerate(b for b in results.backends if b in per):
            entry, m = per[backend], results.metrics(per, backend)
            dense = dense_per.get(backend, {}).get("seconds")
            spread = f"±{100 * entry['iqr'] / (2 * entry['seconds']):.0f} %" if entry["seconds"] else "—"
            rows.append([f"{meta['label']}, {meta['rows']:,} rows" if i == 0 else "", backend, fmt_seconds(dense),
                         fmt_seconds(m["seconds"]), spread,
                         _fmt(m["seconds"] / dense if dense else None, "{:.2f}×"),
                         _fmt(m["floor"], "{:.2f}×"), _fmt(m["speedup"], "{:.2f}×"),
                         entry["rounds"] if entry["rounds"] is not None else "—"])
    if not rows:
        return []
    data = next(iter(results.of_kind("sparse")[0][1].values())).get("data") or "unknown"
    note = ("`fit(X, y, first_layer=\"sparse\")` on the dense training rows of the mnist128 case: X converted "
            "once to CSR (before the timed epoch) and read by `sparse_dense_forward` / `sparse_dense_backward`, "
            "median epoch as in the training table. *dense epoch* is that table's mnist128 row (the dense "
            "path, same run); *× dense floor* is the sparse epoch over the dense epoch's FLOPs ÷ the float32 "
            "GEMM peak; *× numpy* compares the sparse epochs of the backends. `first_layer=\"auto\"` picks "
            "the sparse path only below the density where it measured faster (docs/performance.md, "
            f"\"Sparse input\"). Data: {data}.")
    return ([f"## {title}", "", note, ""]
            + _table(["workload", "backend", "dense epoch", "sparse epoch", "spread (IQR)", "sparse / dense",
                      "× dense floor", "× numpy", "rounds"], rows))


def _render_latency(latency) -> list[str]:
    if not latency:
        return []
    rows = []
    for backend, runs in latency.items():
        for which in ("cold", "warm"):
            r = runs[which]
            total = r["import"] + r["backend"] + r["first_step"]
            rows.append([backend if which == "cold" else "", which, fmt_seconds(r["import"]),
                         fmt_seconds(r["backend"]), fmt_seconds(r["first_step"]), fmt_seconds(total),
                         fmt_seconds(r["next_step"])])
    return (["## First-call latency", "",
             "A fresh Python process per row: `import fastnn`, loading the backend, then building the 784-128-10 "
             "Adam model and its first `fit` call on two batches of 128 (float32). *cold*: an empty Numba cache "
             "(a new `NUMBA_CACHE_DIR`), so Numba compiles, with a second process compiling the loop's back half "
             "where a core is free, as for a user (`FASTNN_NUMBA_COMPILE_AHEAD`); *warm*: the same cache again, "
             "filled by the cold run. "
             "The other backends have nothing to compile; their two rows differ by noise only.", ""]
            + _table(["backend", "cache", "import fastnn", "load backend", "first fit call", "total",
                      "second fit call"], rows))


def _render_memory(memory, rows_used) -> list[str]:
    if not memory:
        return []
    rows = []
    for backend, m in memory.items():
        def added(peak, before):
            return None if peak is None or before is None else peak - before

        rows.append([backend, _mib(m["rss_before"]), _mib(m["epoch_peak"]),
                     _mib(added(m["epoch_peak"], m["epoch_before"])), _mib(m["fit_peak"]),
                     _mib(added(m["fit_peak"], m["rss_before"])), _mib(m["process_peak"]),
                     fmt_seconds(m["epoch_seconds"])])
    return (["## Peak memory of one training epoch", "",
             f"A fresh process per backend loads {rows_used:,} MNIST-shaped float32 rows, builds the 784-128-10 "
             "Adam model, warms up, then calls `fit(epochs=1)` (batch 128). *before*: resident memory before "
             "that call; *epoch*: the epoch alone (`on_epoch_begin` to `on_epoch_end`); *fit call*: the whole "
             "call, fit's input checks included. Peaks are Linux's VmHWM, reset just before each; *process "
             "peak* is `resource.getrusage` for the whole process, data loading and compilation included.",
             ""]
            + _table(["backend", "before", "epoch peak", "added by the epoch", "fit call peak",
                      "added by the fit call", "process peak", "epoch time"], rows))


# ----------------------------------------------------------------------- chart
def write_chart(path: Path, results: Results) -> None:
    """Float32 speed-up of each compiled backend over numpy: bars from 1 (numpy) on a shared log axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    compiled = [b for b in results.backends if b != "numpy"]
    panels = []
    for kind, title in cases.KINDS.items():
        if kind == "sparse":  # reported as a ratio to the dense path, in its own table
            continue
        items = []
        for _, per in results.of_kind(kind, "float32"):
            if kind != "peak" and "numpy" in per and any(b in per for b in compiled):
                label = next(iter(per.values()))["label"]
                items.append((label.split(", ")[0] if kind == "train" else label, per))
        if items:
            panels.append((title, items))
    if not panels:
        fig = Figure(figsize=(8, 2))
        fig.text(0.5, 0.5, "Only the numpy backend ran: no speed-ups to show", ha="center", va="center")
        FigureCanvasAgg(fig).print_png(str(path))
        return
    speedups = {(title, i, b): results.metrics(per, b)["speedup"]
                for title, items in panels for i, (_, per) in enumerate(items) for b in compiled if b in per}
    values = [v for v in speedups.values() if v]
    low, high = min(values + [0.5]) / 1.3, max(values + [2.0]) * 1.5
    heights = [len(items) * 0.3 + 0.6 for _, items in panels]
    fig = Figure(figsize=(11, sum(heights) + 1.2), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    colors = {"numba": "#1f77b4", "cython": "#ff7f0e"}
    width = 0.8 / len(compiled)
    for ax, (title, items) in zip(axes, panels):
        for i in range(len(items)):
            for j, backend in enumerate(compiled):
                s = speedups.get((title, i, backend))
                if not s:
                    continue
                y = i - 0.4 + width * (j + 0.5)
                ax.barh(y, s - 1.0, left=1.0, height=width, color=colors.get(backend, f"C{j + 2}"))
                ax.text(s, y, f" {s:.2f}× ", va="center",
                        ha="left" if s >= 1 else "right", fontsize=7)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ax.set_ylim(len(items) - 0.5, -0.5)
        ax.set_yticks(range(len(items)), [label for label, _ in items], fontsize=8)
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(axis="x", which="major", linewidth=0.3)
    axes[-1].xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes[-1].xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
    axes[-1].xaxis.set_minor_formatter(NullFormatter())
    axes[-1].set_xlabel("speed-up over the numpy backend (median times, float32; log scale; left of 1 = slower)")
    handles = [Patch(color=colors.get(b, f"C{j + 2}"), label=b) for j, b in enumerate(compiled)]
    fig.legend(handles=handles, loc="outside upper right", ncols=len(compiled), fontsize=8)
    fig.suptitle("fastnn: speed-up of the compiled backends over the numpy backend", fontsize=10, x=0.01,
                 ha="left")
    FigureCanvasAgg(fig).print_png(str(path))

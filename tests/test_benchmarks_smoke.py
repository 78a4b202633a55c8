"""The benchmark harness must not rot: the suite runs (untimed) and the report keeps its shape.

Both run in subprocesses, as a user runs them: ``pytest benchmarks/ --benchmark-disable --quick``
calls every quick case once on every available backend, and ``benchmarks/report.py --quick`` on a
few cases and the backends with nothing to compile writes a RESULTS.md whose structure is checked.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn as fn
from fastnn import cli

pytest.importorskip("pytest_benchmark")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks"


# One thread per pool: on a shared machine two-thread BLAS pools can run many times slower,
# and a smoke run only needs every case to run, not to be fast.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def _run(cmd, timeout=300):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **ONE_THREAD))
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_suite_runs_every_quick_case_once_on_every_backend():
    out = _run([sys.executable, "-m", "pytest", str(SUITE), "--benchmark-disable", "--quick", "-q",
                "-p", "no:cacheprovider", "-rs"])
    passed = int(re.search(r"(\d+) passed", out).group(1))
    # Every kind of case is collected for every backend (kernels, training, inference) plus the peak.
    assert passed >= 8 * len(fn.backends.available()) + 1, out[-2000:]
    assert " failed" not in out and " error" not in out


def test_report_quick_writes_results_with_every_section(tmp_path):
    # A tiny configuration: backends that compile nothing, a handful of cases.
    backends = [b for b in ("numpy", "cython") if b in fn.backends.available()]
    _run([sys.executable, str(SUITE / "report.py"), "--quick", "--output", str(tmp_path),
          "--backends", ",".join(backends), "--max-time", "0.01",
          "-k", "peak or mnist128 or (dense_gemm and fwd) or (optimizer and adam)"])
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    png = (tmp_path / "speedups.png").read_bytes()
    assert png.startswith(b"\x89PNG")

    assert text.startswith("# fastnn benchmark results")
    # The command that produced it, with the environment variables that change what is measured.
    assert re.search(r"Written by `[^`]*OMP_NUM_THREADS=1 [^`]*python benchmarks/report.py --quick --output ", text)
    if os.environ.get("FASTNN_DATA"):  # named, not its machine's path
        written = re.search(r"Written by `([^`]*)`", text).group(1)
        assert "FASTNN_DATA=<data folder>" in written and os.environ["FASTNN_DATA"] not in written
    assert re.search(r"Load average \(1 / 5 / 15 min\) when the suite started: [\d.]+ / [\d.]+ / [\d.]+", text)
    assert "MNIST-shaped data: " in text
    for heading in ("## Machine", "## Training: one epoch", "## Inference: predict", "## MNIST sparse",
                    "## Dense-layer GEMM products", "## Optimizer update", "## First-call latency",
                    "## Peak memory of one training epoch", "## How to reproduce"):
        assert heading in text, heading
    assert re.search(r"\| float32 GEMM peak \(the floor's denominator\) \| [\d.]+ GFLOP/s", text)
    assert "| CPU |" in text and "threads" in text

    # Training: one row per backend, each with a time, a speed-up, GFLOP/s and a floor ratio.
    train = text.split("## Training: one epoch")[1].split("\n## ")[0]
    assert ("| workload | backend | epoch (median) | spread (IQR) | × numpy | GFLOP/s | × floor | fit call "
            "| rounds |") in train
    for backend in backends:
        row = rf"\| {backend} \| [\d.]+ (s|ms|µs) \| ±\d+ % \| [\d.]+× \| [\d.]+ \| [\d.]+× \|"
        assert re.search(row, train), backend
    assert "| mnist128: 784-128-10 relu, adam, batch 128, 2,048 rows | numpy | " in train
    assert "1.00×" in train  # numpy against itself

    # MNIST sparse: the mnist128 epoch through the sparse first layer against the dense one and the floor.
    sparse = text.split("## MNIST sparse: the sparse first layer")[1].split("\n## ")[0]
    assert "| workload | backend | dense epoch | sparse epoch | spread (IQR) | sparse / dense | × dense floor |" in sparse
    for backend in backends:
        row = rf"\| {backend} \| [\d.]+ (s|ms) \| [\d.]+ (s|ms) \| ±\d+ % \| [\d.]+× \| [\d.]+× \| [\d.]+× \|"
        assert re.search(row, sparse), backend
    assert "% of the values non-zero" in sparse

    latency = text.split("## First-call latency")[1].split("\n## ")[0]
    assert latency.count("| cold |") == len(backends) and latency.count("| warm |") == len(backends)
    memory = text.split("## Peak memory of one training epoch")[1].split("\n## ")[0]
    for backend in backends:
        assert re.search(rf"\| {backend} \| \d+ MiB \|", memory), backend
    if "cython" in backends:
        assert "## Speed targets (issue 3, float32)" in text


def test_bench_subcommand_shares_the_report_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--quick", "--json", "--output", "--backends", "--threads"):
        assert option in help_text


@pytest.mark.parametrize("argv, message", [
    (["bench", "--max-time", "0"], "--max-time: expected a positive number of seconds, got 0"),
    (["bench", "--threads", "0"], "--threads: expected a positive integer, got 0"),
    (["bench", "--backends", "fortran"], "--backends: expected a comma-separated list of available backends"),
    (["bench", "--json", "no-such-file.json"], "--json: no such file"),
])
def test_bench_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_where_time_goes_quick_reports_every_part():
    backend = "cython" if "cython" in fn.backends.available() else "numpy"
    out = _run([sys.executable, str(SUITE / "where_time_goes.py"), "--quick", "--backend", backend])
    assert f"784-128-10 relu, adam, batch 128, 2,048 rows, float32, {backend}" in out
    for part in ("GEMM-peak floor", "measured epoch", "GEMMs", "gather", "optimizer update", "the rest"):
        assert re.search(rf"{part}.*\d+\.\d ms", out), (part, out)


def test_where_time_goes_predict_quick():
    backend = "cython" if "cython" in fn.backends.available() else "numpy"
    out = _run([sys.executable, str(SUITE / "where_time_goes.py"), "--predict", "--quick", "--backend", backend])
    for part in ("GEMM-peak floor", "predict, numpy", f"predict, {backend}", "GEMMs of one thread's rows"):
        assert re.search(rf"{part}.*\d+\.\d\d ms", out), (part, out)


@pytest.mark.skipif("numba" not in fn.backends.available(), reason="needs numba")
def test_numba_threads_times_every_setting():
    out = _run([sys.executable, str(SUITE / "numba_threads.py"), "mnist128", "--quick"])
    assert "epoch of 2,000 float32 rows, median of 1 rounds" in out
    line = re.search(r"mnist128 \((\d) threads\): split \d+ ms, blas \d+ ms, one \d+ ms.*split / blas \d+\.\d\d", out)
    assert line, out


@pytest.mark.skipif(not {"numba", "cython"} <= set(fn.backends.available()), reason="needs both compiled backends")
def test_backend_grid_prints_its_table():
    out = _run([sys.executable, str(SUITE / "backend_grid.py"), "--quick"])
    assert "one-epoch fit calls of 1,024 float32 rows, fastest of 1 rounds" in out, out
    assert re.search(r"^\| 784-64-10 \| 64 \| \d+\.\d ms \| \d+\.\d ms \| \d+\.\d\d \|$", out, re.M), out


@pytest.mark.skipif("numba" not in fn.backends.available(), reason="needs numba")
def test_numba_compile_profile_lists_what_a_first_fit_compiled():
    out = _run([sys.executable, str(SUITE / "numba_compile_profile.py"), "--optimizer", "sgd", "--top", "5"])
    compiled = re.search(r"first fit [\d.]+ s \((\d+) functions compiled\), first predict [\d.]+ s \((\d+)\)", out)
    assert compiled and int(compiled[1]) > 0, out
    assert "_train_batches" in out, out
    assert len(re.findall(r"^ +\d+\.\d\d +\d+  \S", out, re.M)) == 5, out


def test_sparse_input_benchmark_prints_its_tables():
    out = _run([sys.executable, str(SUITE / "sparse_input.py"), "--epochs", "1", "--documents", "400",
                "--backends", "numpy"])
    assert re.search(r"^\| numpy \| \d+ \| \d+ \| [\d.]+ \| [\d.]+ \| 0\.\d{4} \| 0\.\d{4} \|$", out, re.M), out
    assert re.search(r"^\| scikit-learn MLPClassifier \| [\d.]+ \| [\d.]+ \| 1\.00 \|$", out, re.M), out
    assert re.search(r"^\| fastnn MLPClassifier \(numpy\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M), out


def test_sparse_input_crossover_prints_its_table():
    out = _run([sys.executable, str(SUITE / "sparse_input.py"), "--crossover", "--epochs", "1", "--rows", "512",
                "--densities", "0.02,0.08", "--backends", "numpy"])
    assert len(re.findall(r"^\| numpy \| [\d.]+% \| \d+ \| \d+ \| [\d.]+ \|$", out, re.M)) == 2, out
    assert re.search(r"^- numpy: sparse epoch ~ -?\d+ ms \+ -?[\d.]+ ms per 1 % density \(Theil-Sen line\); faster "
                     r"than the fastest dense epoch (never|below [\d.]+%)$", out, re.M), out


def test_crossover_is_where_the_sparse_line_meets_the_dense_epoch():
    sys.path.insert(0, str(SUITE))
    try:
        from harness.sparse import crossover
    finally:
        sys.path.remove(str(SUITE))
    densities = [0.01, 0.02, 0.03, 0.04, 0.05, 0.08]
    seconds = [0.1 + d for d in densities[:-1]] + [5.0]  # the last epoch ran beside another process
    density, intercept, slope = crossover(densities, seconds, 0.15)
    assert intercept == pytest.approx(0.1) and slope == pytest.approx(1.0)  # the outlier does not move the line
    assert density == pytest.approx(0.05)
    assert crossover([0.01, 0.02], [0.3, 0.4], 0.15)[0] is None  # slower even with nothing stored


def test_compare_builds_times_a_named_network_in_both_trees():
    """``benchmarks/compare_builds.py OLD NEW --network ...`` (here this tree against itself,
    one small round) prints a row per network and backend; a malformed network is refused."""
    out = _run([sys.executable, str(SUITE / "compare_builds.py"), str(ROOT), str(ROOT), "--network",
                "20-16-3/8/sgd", "--rows", "64", "--epochs", "1", "--rounds", "1", "--backends", "numpy"])
    row = [line for line in out.splitlines() if line.startswith("| 20-16-3/8/sgd | numpy |")]
    assert len(row) == 1, out
    bad = subprocess.run([sys.executable, str(SUITE / "compare_builds.py"), str(ROOT), str(ROOT),
                          "--network", "784x10/256"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "WIDTHS/BATCH" in bad.stderr and "784x10/256" in bad.stderr


def test_compare_builds_first_fit_times_both_trees_at_once():
    """``--first-fit`` runs one first ``fit`` per tree at the same time, each on an empty Numba
    cache, and prints each tree's median CPU seconds and the median difference; an unknown
    workload is refused by name."""
    out = _run([sys.executable, str(SUITE / "compare_builds.py"), str(ROOT), str(ROOT), "--first-fit",
                "--network", "20-16-3/8/sgd", "--rounds", "2", "--backends", "numpy"])
    row = [line for line in out.splitlines() if line.startswith("| 20-16-3/8/sgd | numpy |")]
    assert len(row) == 1, out
    old, new, diff = (cell.strip() for cell in row[0].strip("|").split("|")[2:])
    assert float(old) >= 0 and float(new) >= 0 and diff[0] in "+-"
    bad = subprocess.run([sys.executable, str(SUITE / "compare_builds.py"), str(ROOT), str(ROOT),
                          "--workloads", "mnist128,huge"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "huge" in bad.stderr and "mnist128" in bad.stderr

"""The pytest-benchmark suite: every case of ``harness.cases`` on every backend.

    pytest benchmarks/ --benchmark-only                     # full run (float32 and float64)
    pytest benchmarks/ --benchmark-only --quick             # fewer, smaller cases, float32 only
    pytest benchmarks/ --benchmark-disable --quick          # smoke run: each case once, untimed
    FASTNN_BENCH_BACKENDS=numpy,numba pytest benchmarks/ --benchmark-only
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 pytest benchmarks/ --benchmark-only   # one thread
    pytest benchmarks/ --benchmark-only --benchmark-json=out.json && python benchmarks/report.py --json out.json

Backends are whatever ``fastnn.backends.available()`` returns (a new backend is
picked up without editing anything here).  ``FASTNN_BENCH_QUICK=1`` is the same
as ``--quick``.  Each case is its own benchmark group, so the backends of one
case are compared side by side.
"""
import pytest

from harness import cases as bench
from harness import probes


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true", default=False,
                     help="fastnn benchmarks: fewer and smaller cases, float32 only (also FASTNN_BENCH_QUICK=1)")


def _quick(config):
    return config.getoption("--quick") or bench.quick_from_env()


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config):
    config.addinivalue_line("markers", "cases(kind): parametrize over the fastnn benchmark cases of one kind")
    given = [str(arg) for arg in config.invocation_params.args]
    if _quick(config) and not any(arg.startswith("--benchmark-max-time") for arg in given):
        config.option.benchmark_max_time = "0.05"


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("cases")
    if marker is not None:
        cases = bench.cases(marker.args[0], quick=_quick(metafunc.config))
        marks = [pytest.mark.benchmark(group=case.group, **dict(case.options)) for case in cases]
        metafunc.parametrize("case", [pytest.param(c, id=c.id, marks=m) for c, m in zip(cases, marks)])
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", bench.backends_to_run())


def pytest_report_header(config):
    mode = "quick" if _quick(config) else "full"
    return [f"fastnn benchmarks: {mode} mode, backends {bench.backends_to_run()}",
            f"fastnn benchmarks: MNIST-shaped data is {bench.image_source()}"]


def pytest_sessionstart(session):
    session.config._fastnn_load_start = probes.load_average()


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record what the report needs about this run: load, threads, data."""
    output_json["fastnn"] = {
        "quick": _quick(config),
        "backends": bench.backends_to_run(),
        "data": bench.image_source(),
        "load_start": getattr(config, "_fastnn_load_start", None),
        "load_end": probes.load_average(),
        **probes.thread_facts(),
    }

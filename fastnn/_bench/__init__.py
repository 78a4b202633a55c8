"""Benchmark harness: what is timed, how, and the report built from it.

``benchmarks/`` (a pytest-benchmark suite) is not installed with the package,
so the logic lives here and the suite is a set of thin tests over it:

- ``cases``  -- the reference workloads, the kernel cases, their data and
  ``measure``, the one function every benchmark test calls;
- ``probes`` -- facts about the machine, first-call latency and peak memory,
  each measured in a fresh subprocess;
- ``report`` -- runs the suite (or reads its saved JSON) and writes
  ``benchmarks/RESULTS.md`` and a chart; ``python benchmarks/report.py`` and
  ``fastnn bench`` both call ``report.main``.
"""

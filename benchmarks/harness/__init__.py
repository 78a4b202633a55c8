"""Benchmark harness: what is timed, how, and the report built from it.

It lives beside the pytest-benchmark suite in ``benchmarks/`` of fastnn's
source checkout and is not installed with the package; the suite's tests
are thin wrappers over it:

- ``cases``  -- the reference workloads, the kernel cases, their data and
  ``measure``, the one function every benchmark test calls;
- ``probes`` -- facts about the machine, first-call latency and peak memory,
  each measured in a fresh subprocess;
- ``sparse`` -- the sparse first layer's data and timing for ``sparse_input.py``
  (the MNIST table, ``--crossover``);
- ``report`` -- runs the suite (or reads its saved JSON) and writes
  ``benchmarks/RESULTS.md`` and a chart; ``python benchmarks/report.py`` and
  ``fastnn bench`` (from a source checkout) both call ``report.main``;
- ``peers``  -- the training workloads written in PyTorch and in JAX, and
  their timing, run in a process of its own per peer;
- ``versus`` -- runs the peers for ``report.py --peers`` and renders the
  "fastnn against PyTorch and JAX" table;
- ``busy``   -- the busy-machine check of ``report.py --busy``: epochs beside
  CPU-bound processes, default threads against one thread;
- ``tables`` -- the Markdown helpers the report's sections share.

``benchmarks/`` must be on ``sys.path`` to import it as ``harness``: pytest
puts it there for the suite's ``conftest.py``, Python for the scripts in it.
"""
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]  # benchmarks/: the suite, its scripts and this package

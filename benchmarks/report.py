"""Run the benchmark suite and write benchmarks/RESULTS.md and benchmarks/speedups.png.

    python benchmarks/report.py            # full run
    python benchmarks/report.py --quick    # CI-sized, under 2 minutes
    python benchmarks/report.py --help

The logic lives in ``fastnn._bench.report`` (also ``fastnn bench``).
"""
import sys
from pathlib import Path

# Prefer the fastnn of this checkout to another installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastnn._bench.report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

"""Run the benchmark suite and write benchmarks/RESULTS.md and benchmarks/speedups.png.

    python benchmarks/report.py            # full run
    python benchmarks/report.py --quick    # CI-sized, under 2 minutes
    python benchmarks/report.py --peers torch,jax   # also PyTorch and JAX (pip install -e '.[peers]')
    python benchmarks/report.py --busy     # also the busy-machine check (1 and 3 CPU-bound processes beside)
    python benchmarks/report.py --help

The logic lives in ``harness/report.py`` beside this script (also ``fastnn bench``,
from a source checkout).
"""
import sys
from pathlib import Path

# Prefer the fastnn of this checkout to another installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.report import main  # noqa: E402  (benchmarks/, this script's folder, is on sys.path)

if __name__ == "__main__":
    sys.exit(main())

"""The machine's float32 GEMM throughput, measured in the same run: the GEMM-peak floor's denominator."""
import pytest

from harness.cases import measure


@pytest.mark.cases("peak")
def test_gemm_peak(benchmark, case):
    measure(benchmark, "numpy", case)

"""Training and inference benchmarks: one epoch of each reference workload, and predict."""
import pytest

from harness.cases import measure


@pytest.mark.cases("train")
def test_train_epoch(benchmark, backend, case):
    measure(benchmark, backend, case)


@pytest.mark.cases("predict")
def test_predict(benchmark, backend, case):
    measure(benchmark, backend, case)

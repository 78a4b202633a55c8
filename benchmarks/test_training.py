"""Training and inference benchmarks: one epoch of each reference workload, predict, and the
mnist128 epoch through the sparse first layer."""
import pytest

from harness.cases import measure


@pytest.mark.cases("train")
def test_train_epoch(benchmark, backend, case):
    measure(benchmark, backend, case)


@pytest.mark.cases("predict")
def test_predict(benchmark, backend, case):
    measure(benchmark, backend, case)


@pytest.mark.cases("sparse")
def test_train_epoch_sparse_first_layer(benchmark, backend, case):
    measure(benchmark, backend, case)

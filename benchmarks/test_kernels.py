"""Kernel-level benchmarks: each kernel of the contract alone, inputs preallocated."""
import pytest

from harness.cases import measure


@pytest.mark.cases("gemm")
def test_dense_gemm(benchmark, backend, case):
    measure(benchmark, backend, case)


@pytest.mark.cases("activation")
def test_activation(benchmark, backend, case):
    measure(benchmark, backend, case)


@pytest.mark.cases("loss")
def test_softmax_cross_entropy_gradient(benchmark, backend, case):
    measure(benchmark, backend, case)


@pytest.mark.cases("optimizer")
def test_optimizer_update(benchmark, backend, case):
    measure(benchmark, backend, case)


@pytest.mark.cases("gather")
def test_gather_rows(benchmark, backend, case):
    measure(benchmark, backend, case)

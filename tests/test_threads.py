import pytest
from threadpoolctl import threadpool_info

import fastnn as fn


def test_set_num_threads_limits_every_pool():
    before = fn.get_num_threads()
    try:
        fn.set_num_threads(1)
        assert fn.get_num_threads() == 1
        pools = threadpool_info()
        assert pools and all(pool["num_threads"] == 1 for pool in pools), pools
    finally:
        fn.set_num_threads(before)
    assert fn.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match="n: expected a positive integer number of threads"):
        fn.set_num_threads(bad)


def test_warmup_compiles_the_training_kernel(backend):
    fn.backends.warmup(backend, dtypes=("float64",), depths=(2,))
    if backend == "numba":
        from fastnn._kernels.numba._training import _train_batches

        # sparse and one-hot targets, each with and without sample weights
        assert len(_train_batches.signatures) >= 4

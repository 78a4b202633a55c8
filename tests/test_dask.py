"""Scale-out on Dask: a search across a local cluster, out-of-core training over
Dask array blocks, and thread budgets inside workers (the ``fastnn[dask]`` extra)."""
import importlib.util
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from threadpoolctl import threadpool_limits

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import fastnn.sklearn as fsk  # noqa: E402
from fastnn import MLPClassifier  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on 127.0.0.1, closed after the module."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def test_grid_search_on_the_cluster_matches_the_serial_search(client, digits):
    X_train, _, y_train, _ = digits
    X, y = X_train[:600], y_train[:600]
    grid = {"alpha": [1e-4, 1.0], "hidden_layer_sizes": [(8,), (32,)]}
    estimator = MLPClassifier(max_iter=15, learning_rate_init=0.01, random_state=0)
    # The workers' budget is one thread; BLAS on more threads sums in another order.
    with threadpool_limits(limits=1):
        serial = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        on_cluster = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    assert tasks.data, "the search did not run on the cluster"
    workers = {task["worker"] for task in tasks.data}
    assert workers <= set(client.scheduler_info()["workers"])
    assert on_cluster.best_params_ == serial.best_params_
    np.testing.assert_allclose(on_cluster.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(on_cluster.cv_results_["split0_test_score"], serial.cv_results_["split0_test_score"])


def test_training_in_a_worker_keeps_to_its_thread_budget(client, digits):
    X_train, _, y_train, _ = digits

    def fit_and_read_thread_counts(X, y):
        from threadpoolctl import threadpool_info

        from fastnn import MLPClassifier

        MLPClassifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0).fit(X, y)
        return {f"{pool['internal_api']} ({pool['user_api']})": pool["num_threads"] for pool in threadpool_info()}

    for address in client.scheduler_info()["workers"]:
        counts = client.submit(fit_and_read_thread_counts, X_train, y_train, workers=[address], pure=False).result()
        assert counts, "no BLAS or OpenMP pool was loaded in the worker"
        assert all(n == 1 for n in counts.values()), counts  # threads_per_worker=1


def test_threaded_workers_without_thread_variables_still_use_one_thread(digits):
    """Workers that are threads of this process inherit no OMP_NUM_THREADS=1; fastnn
    still limits BLAS to the task's budget while it trains."""
    from threadpoolctl import threadpool_info

    X_train, _, y_train, _ = digits

    def blas_threads_while_training(X, y):
        from fastnn import MLPClassifier

        seen = []

        class Spy(MLPClassifier):
            def _end_epoch(self, *args):
                seen.append(max(pool["num_threads"] for pool in threadpool_info()))
                return super()._end_epoch(*args)

        Spy(hidden_layer_sizes=(8,), max_iter=2, random_state=0, backend="numpy").fit(X, y)
        return seen

    assert max(pool["num_threads"] for pool in threadpool_info()) >= 1
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        seen = client.submit(blas_threads_while_training, X_train, y_train, pure=False).result()
    assert seen == [1, 1]


def test_out_of_core_training_over_dask_blocks_matches_in_memory(digits):
    X_train, X_test, y_train, y_test = digits
    loads = []

    def load_rows(start, stop):
        loads.append(start)
        return X_train[start:stop]

    bounds = list(range(0, len(X_train), 300)) + [len(X_train)]
    X_blocks = [da.from_delayed(dask.delayed(load_rows)(a, b), shape=(b - a, X_train.shape[1]), dtype=X_train.dtype)
                for a, b in zip(bounds[:-1], bounds[1:])]
    X = da.concatenate(X_blocks)
    y = da.from_array(y_train, chunks=(tuple(np.diff(bounds)),))
    assert X.numblocks[0] == 5

    params = dict(hidden_layer_sizes=(64,), random_state=0, backend="numpy")
    epochs = 60
    with dask.config.set(scheduler="sync"):  # in this process, to count the block loads
        streamed = fsk.partial_fit_blocks(MLPClassifier(**params), X, y, epochs=epochs, classes=np.arange(10))
    # One block at a time, in order, once per epoch.
    assert loads == bounds[:-1] * epochs
    in_memory = MLPClassifier(**params, max_iter=epochs).fit(X_train, y_train)
    assert streamed.score(X_test, y_test) >= in_memory.score(X_test, y_test) - 0.01
    assert streamed.t_ == in_memory.t_


def test_partial_fit_blocks_rejects_column_chunks_and_mismatched_blocks():
    X = da.zeros((40, 6), chunks=(10, 3))
    with pytest.raises(ValueError, match="chunks along rows only"):
        fsk.partial_fit_blocks(MLPClassifier(), X, da.zeros(40, chunks=10), classes=[0, 1])
    with pytest.raises(ValueError, match="same number of row blocks"):
        fsk.partial_fit_blocks(MLPClassifier(), da.zeros((40, 6), chunks=(10, 6)), da.zeros(40, chunks=20),
                               classes=[0, 1])


def test_dask_ml_incremental_wrapper(digits):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X_train, X_test, y_train, y_test = digits
    X = da.from_array(X_train, chunks=(300, -1))
    y = da.from_array(y_train, chunks=300)
    inc = wrappers.Incremental(MLPClassifier(hidden_layer_sizes=(64,), random_state=0, backend="numpy"))
    for _ in range(20):
        inc.partial_fit(X, y, classes=np.arange(10))
    assert inc.score(X_test, y_test) > 0.9


def test_scaling_out_example_runs_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("fastnn_example_scaling_out", EXAMPLES / "scaling_out.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick", "--out", str(tmp_path)])
    assert out["search"]["same_best_params"] and out["search"]["same_scores"]
    ooc = out["out_of_core"]
    assert ooc["blocks"] >= 4
    assert ooc["accuracy_streamed"] >= ooc["accuracy_in_memory"] - 0.01

"""Scaling out on Dask: a hyperparameter search across a cluster, and
out-of-core training over the blocks of a Dask array.

1. ``GridSearchCV(fastnn.MLPClassifier(...))`` under
   ``joblib.parallel_backend("dask")``: every fit of the search runs on a
   worker; the result equals the serial search run on one worker's thread
   budget (same ``best_params_``, same scores).
2. Out-of-core: the training images are written to an ``.npy`` file and
   memory-mapped as a Dask array of row blocks, so no more than one block is
   read into memory at a time; ``partial_fit`` runs over the blocks for a
   number of epochs (``dask_ml.wrappers.Incremental`` does the same where
   dask-ml is installed; ``fastnn.sklearn.partial_fit_blocks`` needs only
   dask).  Test accuracy is compared with in-memory ``fit`` for the same
   epochs.

Data: Fashion-MNIST (``fastnn.datasets.load_fashion_mnist``, downloaded into
the cache when missing) or, with ``--quick`` or offline, scikit-learn's 8x8
digits.  The cluster is a ``distributed.LocalCluster`` on 127.0.0.1, or the
scheduler given by ``--scheduler``.

    pip install "fastnn[dask]"
    python examples/scaling_out.py [--quick] [--workers 2] [--scheduler tcp://HOST:8786] [--out DIR]
"""
import argparse
import os
import tempfile
import time
import warnings

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from threadpoolctl import threadpool_limits

import fastnn
from fastnn.datasets import load_fashion_mnist, to_float
from fastnn.sklearn import partial_fit_blocks

try:
    import dask.array as da
    import distributed
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise SystemExit(f"this example needs the dask extra: pip install 'fastnn[dask]' ({exc})") from None


def load_data(quick):
    """(name, X_train, y_train, X_test, y_test) with float32 features in [0, 1]."""
    if not quick:
        try:
            (X_train, y_train), (X_test, y_test) = load_fashion_mnist()
            return "Fashion-MNIST", to_float(X_train), y_train, to_float(X_test), y_test
        except (OSError, ValueError) as exc:
            print(f"(Fashion-MNIST not available: {str(exc).splitlines()[0]}; using 8x8 digits)")
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split((X / 16).astype(np.float32), y, test_size=0.25,
                                                        random_state=0, stratify=y)
    return "8x8 digits", X_train, y_train, X_test, y_test


def search(client, X, y, quick):
    """The same grid search serially and on the cluster; returns the comparison."""
    estimator = fastnn.MLPClassifier(max_iter=10 if quick else 20, learning_rate_init=0.01, random_state=0)
    grid = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(16,), (64,)] if quick else [(64,), (256,)]}
    # Float32 sums come out in a different order when BLAS splits them over more
    # threads, and training amplifies that: compare with a serial search on the
    # thread budget of one worker (1 thread) to get the very same numbers.
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        serial = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        on_cluster = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    cluster_s = time.perf_counter() - start
    same_scores = bool(np.allclose(serial.cv_results_["mean_test_score"], on_cluster.cv_results_["mean_test_score"],
                                   rtol=0, atol=1e-12))
    print(f"grid search, {len(serial.cv_results_['params'])} candidates x 3 folds on {len(X)} samples:")
    print(f"  serial, 1 thread {serial_s:6.1f} s  best {serial.best_params_}  score {serial.best_score_:.4f}")
    print(f"  on the cluster   {cluster_s:6.1f} s  best {on_cluster.best_params_}  score {on_cluster.best_score_:.4f}")
    return {"best_params": on_cluster.best_params_, "same_best_params": on_cluster.best_params_ == serial.best_params_,
            "same_scores": same_scores, "seconds": {"serial": serial_s, "cluster": cluster_s}}


def out_of_core(data, out, quick):
    """partial_fit over the blocks of a memory-mapped Dask array vs in-memory fit."""
    name, X_train, y_train, X_test, y_test = data
    path = os.path.join(out, "scaling_out_X_train.npy")
    np.save(path, X_train)
    n_blocks = 5 if quick else 6
    rows = -(-len(X_train) // n_blocks)
    X = da.from_array(np.load(path, mmap_mode="r"), chunks=(rows, -1))  # read block by block from disk
    y = da.from_array(y_train, chunks=rows)
    epochs = 40 if quick else 10
    hidden = (64,) if quick else (256,)
    params = dict(hidden_layer_sizes=hidden, random_state=0)
    classes = np.unique(y_train)

    start = time.perf_counter()
    try:
        from dask_ml.wrappers import Incremental

        how = "dask_ml.wrappers.Incremental"
        wrapper = Incremental(fastnn.MLPClassifier(**params))
        for _ in range(epochs):
            wrapper.partial_fit(X, y, classes=classes)
        streamed = wrapper.estimator_
    except ImportError:
        how = "fastnn.sklearn.partial_fit_blocks"
        streamed = partial_fit_blocks(fastnn.MLPClassifier(**params), X, y, epochs=epochs, classes=classes)
    streamed_s = time.perf_counter() - start
    start = time.perf_counter()
    in_memory = fastnn.MLPClassifier(**params, max_iter=epochs).fit(X_train, y_train)
    memory_s = time.perf_counter() - start
    acc_streamed, acc_memory = streamed.score(X_test, y_test), in_memory.score(X_test, y_test)
    print(f"out-of-core, {name}: {len(X_train)} rows in {X.numblocks[0]} blocks of {rows}, {epochs} epochs, "
          f"hidden {hidden}, via {how}:")
    print(f"  over blocks {streamed_s:6.1f} s  test accuracy {acc_streamed:.4f}")
    print(f"  in memory   {memory_s:6.1f} s  test accuracy {acc_memory:.4f}")
    os.remove(path)
    return {"dataset": name, "blocks": int(X.numblocks[0]), "epochs": epochs, "via": how,
            "accuracy_streamed": acc_streamed, "accuracy_in_memory": acc_memory,
            "seconds": {"blocks": streamed_s, "in_memory": memory_s}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8x8 digits and a small grid (CI)")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (1 thread each)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler instead")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "fastnn-examples"),
                        help="folder for the memory-mapped training data")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epoch budgets on purpose

    data = load_data(args.quick)
    name, X_train, y_train, _, _ = data
    search_rows = 600 if args.quick else 10_000
    if args.scheduler:
        client, cluster = distributed.Client(args.scheduler), None
    else:
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=":0")
        client = distributed.Client(cluster)
    try:
        print(f"cluster: {len(client.scheduler_info()['workers'])} workers ({client.scheduler.address})")
        outcome = {"search": search(client, X_train[:search_rows], y_train[:search_rows], args.quick)}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    outcome["out_of_core"] = out_of_core(data, args.out, args.quick)
    ok = (outcome["search"]["same_best_params"] and outcome["search"]["same_scores"]
          and outcome["out_of_core"]["accuracy_streamed"] >= outcome["out_of_core"]["accuracy_in_memory"] - 0.01)
    print("OK: the cluster search equals the serial one, and block-wise training is within 1 point"
          if ok else "MISMATCH: see above")
    return outcome


if __name__ == "__main__":
    main()

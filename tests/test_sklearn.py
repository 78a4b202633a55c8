"""fastnn.MLPClassifier / MLPRegressor as scikit-learn estimators."""
import inspect
import io
import json
import pickle
import re
import threading
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastnn
import fastnn.sklearn as fsk
from fastnn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# ----------------------------------------------------------------- estimator checks
# The numpy backend keeps the suite quick and free of compilation; every backend
# runs the same estimator code and is held to the numpy oracle by the kernel tests.
CHECKED = [
    MLPClassifier(hidden_layer_sizes=(32,), max_iter=100, random_state=0, backend="numpy"),
    MLPRegressor(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0,
                 backend="numpy"),
    MLPClassifier(hidden_layer_sizes=(32,), max_iter=100, random_state=0, backend="numpy", dtype="float64"),
    MLPRegressor(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0,
                 backend="numpy", dtype="float64"),
    MLPRegressor(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0,
                 backend="numpy", dtype="float64", target_scaling=True),
]

FLOAT32_ROUNDING = (
    "dtype='float32' (the default): the check compares outputs at rtol=1e-7, below float32's "
    "resolution (1.2e-7); it passes with dtype='float64'"
)


def expected_failed_checks(estimator):
    if estimator.dtype == "float32":
        return {
            # Weighted rows and repeated rows are summed in a different order.
            "check_sample_weight_equivalence_on_dense_data": FLOAT32_ROUNDING,
            "check_sample_weight_equivalence_on_sparse_data": FLOAT32_ROUNDING,
            # BLAS sums a 1-row and a 60-row product in different orders.
            "check_methods_subset_invariance": FLOAT32_ROUNDING,
        }
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------ helpers
def blobs(n=120, n_classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=n_classes, n_clusters_per_class=1, class_sep=2.0, random_state=seed)
    return X, y


def small(**params):
    base = dict(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.02, random_state=0, backend="numpy")
    base.update(params)
    return base


# --------------------------------------------------------------------- parameters
def test_parameters_are_named_as_in_scikit_learn():
    for ours, theirs in [(MLPClassifier, SkMLPClassifier), (MLPRegressor, SkMLPRegressor)]:
        our_params = set(ours().get_params())
        their_params = set(theirs().get_params())
        # MLPRegressor's loss="poisson" has no fastnn loss (max_fun is accepted, L-BFGS only).
        assert their_params - our_params <= {"loss"}
        ours().set_params(**{k: v for k, v in theirs().get_params().items() if k != "loss"})
        assert {"backend", "dtype", "lr_schedule"} <= our_params
        for name in their_params & our_params:
            if name in ("dtype",):
                continue
            assert ours().get_params()[name] == theirs().get_params()[name], name
    assert "target_scaling" in MLPRegressor().get_params()


def test_init_stores_parameters_and_fit_validates_them():
    clf = MLPClassifier(hidden_layer_sizes=(-3,), alpha=-1.0, solver="nope")  # no error yet
    assert clf.get_params()["solver"] == "nope"
    X, y = blobs()
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        MLPClassifier(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="lbfgs"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="softmax").fit(X, y)


@pytest.mark.parametrize("params", [{"n_iter_no_change": np.inf}, {"solver": "sgd", "momentum": 1.0},
                                    {"max_fun": 100}, {"validation_fraction": 0.0}])
def test_parameter_values_scikit_learn_accepts_are_accepted(params):
    X, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**small(max_iter=2, **params)).fit(X, y)


@pytest.mark.parametrize("params,match", [
    ({"validation_fraction": 1.5}, r"validation_fraction must be a number in \[0, 1\), got 1.5"),
    ({"max_fun": 0}, "max_fun must be an integer >= 1, got 0"),
    ({"momentum": 1.5}, "momentum must be a number >= 0 and <= 1, got 1.5"),
    ({"n_iter_no_change": 0.5}, r"n_iter_no_change must be an integer >= 1 or np.inf, got 0.5"),
])
def test_parameter_values_scikit_learn_refuses_are_refused(params, match):
    X, y = blobs()
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**small(max_iter=1, **params)).fit(X, y)


def test_set_params_and_clone():
    clf = MLPClassifier(hidden_layer_sizes=(8, 4), solver=fastnn.optimizers.SGD(0.1, momentum=0.5))
    clf.set_params(alpha=0.5, backend="numpy")
    twin = clone(clf)
    assert twin.get_params()["alpha"] == 0.5
    assert twin.hidden_layer_sizes == (8, 4)
    X, y = blobs()
    twin.fit(X, y)
    assert twin.solver.iterations == 0  # the template optimizer is copied, never trained


# ------------------------------------------------------------------ classification
@pytest.mark.parametrize("labels", [
    np.array(["cat", "dog", "emu"]),
    np.array([-1, 5, 10]),
    np.array([1.0, 2.0, 3.0]),
])
def test_multiclass_any_label_type(labels):
    X, y = blobs()
    y_labels = labels[y]
    clf = MLPClassifier(**small()).fit(X, y_labels)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    pred = clf.predict(X)
    assert pred.dtype == y_labels.dtype and set(pred) <= set(labels)
    assert clf.score(X, y_labels) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    scores = clf.decision_function(X)
    assert scores.shape == (len(X), 3)
    np.testing.assert_array_equal(clf.classes_[scores.argmax(axis=1)], pred)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))


@pytest.mark.parametrize("labels", [np.array([False, True]), np.array(["no", "yes"]), np.array([0, 1])])
def test_binary_uses_one_sigmoid_unit(labels):
    X, y = blobs(n_classes=2)
    clf = MLPClassifier(**small()).fit(X, labels[y])
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    assert clf.coefs_[-1].shape == (16, 1)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    scores = clf.decision_function(X)
    assert scores.shape == (len(X),)
    np.testing.assert_array_equal(clf.predict(X), labels[(scores > 0).astype(int)])
    assert clf.score(X, labels[y]) > 0.9


def test_multilabel_indicator_targets():
    X, Y = make_multilabel_classification(n_samples=150, n_features=8, n_classes=4, random_state=0)
    clf = MLPClassifier(**small(max_iter=150)).fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and np.all((proba >= 0) & (proba <= 1))
    assert clf.decision_function(X).shape == Y.shape
    assert (pred == Y).mean() > 0.8


def test_sparse_multilabel_indicator_targets_train_as_dense_ones():
    from sklearn.preprocessing import MultiLabelBinarizer

    X, Y = make_multilabel_classification(n_samples=60, n_features=5, n_classes=3, random_state=0)
    sparse_Y = MultiLabelBinarizer(sparse_output=True).fit_transform([np.flatnonzero(row) for row in Y])
    assert scipy_sparse().issparse(sparse_Y) and np.array_equal(sparse_Y.toarray(), Y)
    from_sparse = MLPClassifier(**small(max_iter=3)).fit(X, sparse_Y)
    from_dense = MLPClassifier(**small(max_iter=3)).fit(X, Y)
    np.testing.assert_array_equal(from_sparse.classes_, np.arange(3))
    np.testing.assert_array_equal(from_sparse.predict_proba(X), from_dense.predict_proba(X))
    from_sparse.partial_fit(X, scipy_sparse().csr_array(Y))  # later calls too
    assert from_sparse.predict(X).shape == Y.shape


def scipy_sparse():
    return pytest.importorskip("scipy.sparse")


def test_one_class_is_an_error_that_names_classes():
    X, _ = blobs()
    with pytest.raises(ValueError, match="1 class"):
        MLPClassifier(**small()).fit(X, np.zeros(len(X)))


# ---------------------------------------------------------------------- regression
def test_regression_one_and_two_targets():
    X, y = make_regression(n_samples=200, n_features=5, n_targets=2, noise=1.0, random_state=0)
    y = y / 100
    one = MLPRegressor(**small(max_iter=200)).fit(X, y[:, 0])
    assert one.predict(X).shape == (200,)
    assert one.score(X, y[:, 0]) > 0.9
    two = MLPRegressor(**small(max_iter=200)).fit(X, y)
    assert two.predict(X).shape == (200, 2) and two.n_outputs_ == 2
    assert two.score(X, y) > 0.9


def test_target_scaling_trains_in_standard_units_and_predicts_original_units():
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    y = 1000.0 * y + 50_000.0
    scaled = MLPRegressor(**small(max_iter=200), target_scaling=True).fit(X, y)
    assert abs(scaled.target_mean_[0] - y.mean()) < 1e-6 * abs(y.mean())
    pred = scaled.predict(X)
    assert abs(pred.mean() - y.mean()) < 0.05 * y.std()
    assert scaled.score(X, y) > 0.9
    unscaled = MLPRegressor(**small(max_iter=200)).fit(X, y)
    assert unscaled.score(X, y) < scaled.score(X, y)


# ----------------------------------------------------------------- sample weights
def test_zero_weights_train_exactly_like_removed_rows():
    X, y = blobs()
    w = np.ones(len(X))
    w[::4] = 0
    weighted = MLPClassifier(**small()).fit(X, y, sample_weight=w)
    removed = MLPClassifier(**small()).fit(X[w > 0], y[w > 0])
    np.testing.assert_array_equal(weighted.predict_proba(X), removed.predict_proba(X))


@pytest.mark.filterwarnings("ignore:Got `batch_size`")
def test_integer_weights_match_repeated_rows_in_full_batch_float64():
    X, y = blobs(n=60)
    w = np.random.default_rng(0).integers(1, 4, len(X))
    params = small(dtype="float64", batch_size=1000, shuffle=False)
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_weights_shift_the_decision():
    X, y = blobs(n=200, n_classes=2, seed=3)
    X = X + np.random.default_rng(0).normal(scale=3.0, size=X.shape)  # overlapping classes
    plain = MLPClassifier(**small()).fit(X, y)
    favour_one = MLPClassifier(**small()).fit(X, y, sample_weight=np.where(y == 1, 10.0, 1.0))
    assert (favour_one.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()


# -------------------------------------------------------- incremental training
def test_partial_fit_epochs_equal_fit_epochs_exactly():
    X, y = blobs()
    params = small(max_iter=5, shuffle=False, batch_size=32)
    full = MLPClassifier(**params).fit(X, y)
    inc = MLPClassifier(**params)
    for _ in range(5):
        inc.partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_array_equal(inc.predict_proba(X), full.predict_proba(X))
    assert inc.model_.optimizer.iterations == full.model_.optimizer.iterations == 5 * 4
    assert inc.n_iter_ == 1 and inc.t_ == full.t_ == 5 * len(X)
    np.testing.assert_allclose(inc.loss_curve_, full.loss_curve_)


def test_partial_fit_continues_optimizer_state_across_save_and_pickle(tmp_path):
    X, y = blobs()
    chunks = np.array_split(np.arange(len(X)), 4)
    reference = MLPClassifier(**small())
    for idx in chunks:
        reference.partial_fit(X[idx], y[idx], classes=[0, 1, 2])
    first_half = MLPClassifier(**small())
    for idx in chunks[:2]:
        first_half.partial_fit(X[idx], y[idx], classes=[0, 1, 2])
    first_half.save(tmp_path / "half.npz")
    for resumed in (fsk.load(tmp_path / "half.npz"), pickle.loads(pickle.dumps(first_half))):
        for idx in chunks[2:]:
            resumed.partial_fit(X[idx], y[idx])
        np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


def test_a_second_fit_of_one_estimator_raises_at_once_and_changes_nothing():
    X, y = blobs()
    clf = MLPClassifier(**small()).partial_fit(X, y, classes=[0, 1, 2])
    model, curve = clf.model_, list(clf.loss_curve_)
    holding, release, errors = threading.Event(), threading.Event(), []
    end_epoch = clf._end_epoch

    def held_end_epoch(*args):  # holds the first call's epoch until the test releases it
        if not holding.is_set():
            holding.set()
            assert release.wait(timeout=60), "the test never released the fit"
        return end_epoch(*args)

    def first():
        try:
            clf.partial_fit(X, y)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    clf._end_epoch = held_end_epoch
    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(timeout=60)
        l2 = [layer.l2 for layer in model.layers]
        for call in (lambda: clf.fit(X, y), lambda: clf.partial_fit(X[:10], y[:10])):
            with pytest.raises(RuntimeError, match=r"^partial_fit\(\) is already running on this MLPClassifier "
                                                   r"in another thread"):
                call()
        assert clf.model_ is model and [layer.l2 for layer in model.layers] == l2
        assert clf.predict(X).shape == y.shape  # prediction is not held
    finally:
        release.set()
        thread.join()
    del clf._end_epoch
    assert errors == []
    assert clf.loss_curve_[:-1] == curve and len(clf.loss_curve_) == 2 and clf.t_ == 2 * len(X)
    clf.partial_fit(X, y)  # the guard is released, and no part of the estimator's state
    assert pickle.loads(pickle.dumps(clf)).t_ == 3 * len(X)
    assert clone(clf).get_params() == clf.get_params()


def test_partial_fit_label_errors():
    X, y = blobs()
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier(**small()).partial_fit(X, y)
    clf = MLPClassifier(**small()).partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert clf.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="is not the same"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(**small(early_stopping=True)).partial_fit(X, y, classes=[0, 1, 2])


def test_regressor_partial_fit():
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    reg = MLPRegressor(**small())
    for _ in range(100):
        reg.partial_fit(X, y / 100)
    assert reg.score(X, y / 100) > 0.9


def test_warm_start_continues_from_the_fitted_weights():
    X, y = blobs()
    clf = MLPClassifier(**small(max_iter=5, warm_start=True)).fit(X, y)
    loss_after_first = clf.loss_curve_[-1]
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 10 and clf.n_iter_ == 5
    assert clf.loss_curve_[5] < clf.loss_curve_[0]
    assert clf.loss_curve_[5] <= loss_after_first * 1.1
    cold = MLPClassifier(**small(max_iter=5)).fit(X, y)
    cold.fit(X, y)
    assert len(cold.loss_curve_) == 5


@pytest.mark.parametrize("early_stopping", [True, False])
def test_warm_start_carries_the_stopping_state_over_as_scikit_learn(early_stopping):
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    X, y = blobs(n=300)
    # tol so large that no epoch counts as an improvement: when each fit stops depends only on the bookkeeping
    params = dict(hidden_layer_sizes=(8,), max_iter=50, tol=1e9, n_iter_no_change=2, warm_start=True,
                  early_stopping=early_stopping, random_state=0)
    ours, theirs = MLPClassifier(**params, backend="numpy"), SkMLPClassifier(**params)
    for _ in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours.fit(X, y)
            theirs.fit(X, y)
        assert ours.n_iter_ == theirs.n_iter_  # 4, then 1: a model that stopped stops again
        assert ours._no_improvement_count == theirs._no_improvement_count
        if early_stopping:
            assert len(ours.validation_scores_) == len(theirs.validation_scores_)
            assert ours.best_validation_score_ == max(ours.validation_scores_)
            assert ours.best_loss_ is None
        else:
            assert ours.validation_scores_ is None
            assert ours.best_loss_ == min(ours.loss_curve_)


def test_warm_start_with_early_stopping_switched_starts_the_stopping_state_afresh():
    X, y = blobs()
    clf = MLPClassifier(**small(max_iter=4, warm_start=True)).fit(X, y)
    clf.set_params(early_stopping=True, n_iter_no_change=100)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ == 4 and clf.best_loss_ is None
    clf.set_params(early_stopping=False)
    clf.fit(X, y)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.best_loss_ == min(clf.loss_curve_[-4:])


def test_warm_start_with_early_stopping_keeps_the_best_weights_of_all_fits():
    X, y = blobs(n=400)
    clf = MLPClassifier(**small(max_iter=30, warm_start=True, early_stopping=True, n_iter_no_change=100))
    clf.fit(X, y)
    assert clf.best_validation_score_ == 1.0  # no later epoch can beat it
    fitted = [w.copy() for w in clf.coefs_]
    clf.set_params(learning_rate_init=100.0)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == 60
    for a, b in zip(clf.coefs_, fitted):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change", [{"activation": "tanh"}, {"dtype": "float64"}, {"backend": "numpy"}])
def test_warm_start_refuses_parameters_the_fitted_model_does_not_have(change):
    """A warm start keeps the fitted model: a changed activation, dtype or backend would be
    silently ignored, so it is an error (as a changed hidden_layer_sizes is)."""
    X, y = blobs()
    compiled = [b for b in fastnn.backends.available() if b != "numpy"]
    if "backend" in change and not compiled:
        pytest.skip("needs a second backend")
    first = {"backend": compiled[0]} if "backend" in change else {}
    clf = MLPClassifier(**small(max_iter=2, warm_start=True, **first))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        name = next(iter(change))
        with pytest.raises(ValueError, match=f"warm_start keeps the fitted model, whose {name} is"):
            clf.set_params(**change).fit(X, y)


def test_warm_start_needs_every_class_again():
    X, y = blobs()
    clf = MLPClassifier(**small(max_iter=2, warm_start=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same classes"):
            clf.fit(X[y < 2], y[y < 2])


# --------------------------------------------------------------- stopping rules
def test_tol_stops_training_and_max_iter_warns():
    X, y = blobs()
    with pytest.warns(ConvergenceWarning):
        MLPClassifier(**small(max_iter=3)).fit(X, y)
    clf = MLPClassifier(**small(max_iter=500, tol=1e-2, n_iter_no_change=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.loss_curve_) == clf.n_iter_


def test_early_stopping_keeps_the_best_validation_weights():
    X, y = blobs(n=300)
    clf = MLPClassifier(**small(max_iter=200, early_stopping=True, n_iter_no_change=3)).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ < 200
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    reg = MLPRegressor(**small(max_iter=50, early_stopping=True)).fit(*make_regression(100, 4, random_state=0))
    assert len(reg.validation_scores_) == reg.n_iter_


def test_sgd_learning_rate_rules_and_schedules_run():
    X, y = blobs()
    for params in [dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5),
                   dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.1),
                   dict(solver="rmsprop"), dict(solver="adagrad", learning_rate_init=0.1),
                   dict(lr_schedule="cosine"), dict(lr_schedule="warmup"),
                   dict(solver=fastnn.optimizers.Adam(0.01))]:
        clf = MLPClassifier(**{**small(), **params}).fit(X, y)
        assert clf.score(X, y) > 0.8, params


def test_verbose_prints_sklearn_style_lines(capsys):
    X, y = blobs()
    MLPClassifier(**small(max_iter=2, verbose=True)).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


# ------------------------------------------------------------------- fitted state
def test_fitted_attributes():
    X, y = blobs()
    clf = MLPClassifier(**small(hidden_layer_sizes=(8, 5), max_iter=7)).fit(X, y)
    assert clf.n_features_in_ == 6 and clf.n_iter_ == 7 and len(clf.loss_curve_) == 7
    assert clf.validation_scores_ is None and clf.n_layers_ == 4
    assert [c.shape for c in clf.coefs_] == [(6, 8), (8, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (5,), (3,)]
    assert isinstance(clf.model_, fastnn.Sequential)
    np.testing.assert_array_equal(clf.model_.get_weights()[0], clf.coefs_[0])
    assert not hasattr(MLPClassifier(), "coefs_")
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)


def test_feature_names_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = blobs()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    clf = MLPClassifier(**small(max_iter=5)).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


@pytest.mark.parametrize("backend", fastnn.backends.available())
def test_same_random_state_gives_bit_identical_predictions(backend):
    X, y = blobs()
    params = small(backend=backend, max_iter=10)
    a = MLPClassifier(**params).fit(X, y).predict_proba(X)
    b = MLPClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = MLPClassifier(**{**params, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


def test_bad_input_messages():
    X, y = blobs()
    clf = MLPClassifier(**small(max_iter=2)).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but MLPClassifier is expecting 6"):
        clf.predict(X[:, :5])
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(**small()).fit(X_nan, y)
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(**small()).fit(scipy_sparse.csr_matrix(X_nan), y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(**small()).fit(X, np.linspace(0, 1, len(X)))
    for bad in (scipy_sparse.csc_matrix(X[:4]), scipy_sparse.coo_array(X[:4])):
        (bad.indices if bad.format == "csc" else bad.coords[0])[1] = 9  # row 9 of 4
        with pytest.raises(ValueError, match=r"X: not a valid sparse matrix \((indices|row): expected values "
                                             r"in \[0, 4\), got values in \[0, 9\]\)"):
            clf.predict(bad)
        with pytest.raises(ValueError, match=r"X: not a valid sparse matrix"):
            MLPClassifier(**small()).fit(bad, y[:4])
    with pytest.raises(ValueError, match="Expected 2D input"):  # scikit-learn's own message for 1-D X
        clf.predict(scipy_sparse.coo_array(X[0]))
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier(**small()).fit(X, y, sample_weight=-np.ones(len(X)))


# ------------------------------------------------------------------- persistence
@pytest.mark.parametrize("labels", [np.array(["a", "b", "c"]), np.array([3, 7, 11])])
def test_save_and_load_without_pickle(tmp_path, labels):
    X, y = blobs()
    clf = MLPClassifier(**small(max_iter=10, hidden_layer_sizes=(8, 4), lr_schedule="cosine")).fit(X, labels[y])
    path = tmp_path / "clf.npz"
    clf.save(path)
    with np.load(path, allow_pickle=False) as data:  # readable without pickle
        assert "model" in data.files
    loaded = fsk.load(path)
    assert type(loaded) is MLPClassifier and loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.loss_curve_ == clf.loss_curve_ and loaded.n_iter_ == clf.n_iter_


def test_regressor_save_load_and_joblib(tmp_path):
    X, y = make_regression(n_samples=80, n_features=4, n_targets=2, random_state=0)
    reg = MLPRegressor(**small(max_iter=10), target_scaling=True).fit(X, y)
    reg.save(tmp_path / "reg.npz")
    np.testing.assert_array_equal(fsk.load(tmp_path / "reg.npz").predict(X), reg.predict(X))
    buffer = io.BytesIO()
    joblib.dump(reg, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict(X), reg.predict(X))


def test_load_rejects_other_files(tmp_path):
    model = fastnn.Sequential([fastnn.Dense(2, input_dim=3)])
    model.save(tmp_path / "m.fastnn")
    with pytest.raises(ValueError, match="not a saved fastnn estimator"):
        fsk.load(tmp_path / "m.fastnn")
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a saved fastnn estimator"):
        fsk.load(tmp_path / "junk")


def _saved_estimator_entries(tmp_path):
    X, y = blobs()
    MLPClassifier(**small(max_iter=2)).fit(X, y).save(tmp_path / "clf.npz")
    with np.load(tmp_path / "clf.npz", allow_pickle=False) as data:
        entries = {key: data[key] for key in data.files}
    return json.loads(entries.pop("config").tobytes()), entries


def _write_estimator(path, config, entries, compressed=False):
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(
            f, config=np.frombuffer(json.dumps(config).encode(), np.uint8), **entries)
    return path


def _set(mapping, key, value):
    mapping[key] = value


@pytest.mark.parametrize("edit, message", [
    (lambda c, e: c.pop("params"), r"params, attributes: expected JSON objects"),
    (lambda c, e: _set(c["params"], "bogus", 1), r"unexpected keyword argument 'bogus'"),
    (lambda c, e: _set(c, "version", "x"), r"version: this fastnn reads version 1, got 'x'"),
    (lambda c, e: e.pop("model"), r"entries: expected model"),
    (lambda c, e: _set(c, "attributes", [1]), r"params, attributes: expected JSON objects"),
    (lambda c, e: _set(c["attributes"], "predict", 5), r"unexpected attributes or entries \['predict'\]"),
    (lambda c, e: _set(e, "junk", np.zeros(3)), r"unexpected attributes or entries \['junk'\]"),
    (lambda c, e: _set(c["attributes"], "n_features_in_", "abc"),
     r"attributes: n_features_in_: expected an integer >= 0, got 'abc'"),
    (lambda c, e: _set(c["attributes"], "n_features_in_", 5),
     r"n_features_in_, outputs: the model expects \(6, 3\), the attributes give \(5, 3\)"),
    (lambda c, e: c["attributes"].pop("_grad_factor"), r"attributes: _grad_factor is missing"),
    (lambda c, e: _set(c["attributes"], "_epochs_seen", "x"), r"attributes: _epochs_seen: expected an integer >= 0"),
    (lambda c, e: _set(c["attributes"], "loss_curve_", "abc"), r"attributes: loss_curve_: expected a list of numbers"),
    (lambda c, e: _set(c["attributes"], "validation_scores_", [1, "a"]),
     r"attributes: validation_scores_: expected a list of numbers or null"),
    (lambda c, e: _set(e, "attribute:classes_", np.array([{}], dtype=object)), r"classes_: expected a 1-D bool"),
    (lambda c, e: _set(e, "model", np.frombuffer(b"junk", np.uint8)), r"model: not a fastnn model file"),
])
def test_load_rejects_corrupt_estimator_files(tmp_path, edit, message):
    config, entries = _saved_estimator_entries(tmp_path)
    edit(config, entries)
    path = _write_estimator(tmp_path / "bad.npz", config, entries)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": corrupt saved fastnn estimator \(.*" + message):
        fsk.load(path)


def test_load_reads_no_compressed_entry(tmp_path):
    """A deflated entry could expand far beyond the file: load refuses it before reading it."""
    config, entries = _saved_estimator_entries(tmp_path)
    path = _write_estimator(tmp_path / "bomb.npz", config, entries, compressed=True)
    with pytest.raises(ValueError, match=r"bomb.npz: not a saved fastnn estimator \(config: expected an entry "
                                         r"stored uncompressed"):
        fsk.load(path)


# --------------------------------------------------------- scikit-learn machinery
def test_pipeline_grid_search_and_cross_val_score():
    X, y = blobs(n=150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**small(max_iter=30)))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85
    grid = {"mlpclassifier__alpha": [1e-4, 1.0], "mlpclassifier__hidden_layer_sizes": [(4,), (16,)]}
    search = GridSearchCV(pipe, grid, cv=3)
    search.fit(X, y)
    assert set(search.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__hidden_layer_sizes"}
    assert search.best_score_ > 0.85
    assert search.predict(X).shape == (150,)


def test_digits_accuracy_at_least_scikit_learns_with_the_same_architecture_and_epochs():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    ours, theirs = [], []
    for seed in range(3):
        params = dict(hidden_layer_sizes=(100,), max_iter=50, random_state=seed)
        ours.append(MLPClassifier(**params).fit(X_train, y_train).score(X_test, y_test))
        theirs.append(SkMLPClassifier(**params).fit(X_train, y_train).score(X_test, y_test))
    assert np.mean(ours) >= np.mean(theirs), (ours, theirs)


def test_estimators_are_exported_lazily_from_the_package():
    assert fastnn.MLPClassifier is fsk.MLPClassifier and fastnn.MLPRegressor is fsk.MLPRegressor
    assert "sample_weight" in inspect.signature(MLPClassifier.fit).parameters


@pytest.mark.parametrize("sizes", [np.array([5, 4]), range(3, 5), [4]])
def test_array_like_hidden_layer_sizes_save_and_load(tmp_path, sizes):
    """scikit-learn documents hidden_layer_sizes as array-like: an ndarray or a range fits and
    saves (without pickle) and loads back as the same parameter."""
    X, y = blobs()
    est = MLPClassifier(**small(max_iter=2, hidden_layer_sizes=sizes)).fit(X, y)
    est.save(tmp_path / "est.npz")
    loaded = fsk.load(tmp_path / "est.npz")
    assert type(loaded.hidden_layer_sizes) is type(sizes)
    assert list(loaded.hidden_layer_sizes) == list(sizes)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_target_scaling_weighs_rows_as_the_loss_does():
    """target_scaling's mean and scale are weighted: rows of weight 0 change nothing, and a
    weight of 2 is a repeated row (what check_sample_weight_equivalence asks of the fit)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = X @ [1.0, -2.0, 0.5] + 3.0
    junk_X, junk_y = rng.standard_normal((5, 3)), np.full(5, 1e4)
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, backend="numpy", dtype="float64",
                  target_scaling=True)
    plain = MLPRegressor(**params).fit(X, y)
    weighted = MLPRegressor(**params).fit(np.r_[X, junk_X], np.r_[y, junk_y], sample_weight=np.r_[np.ones(40), np.zeros(5)])
    np.testing.assert_allclose(weighted.target_mean_, plain.target_mean_)
    np.testing.assert_allclose(weighted.target_scale_, plain.target_scale_)
    repeated = MLPRegressor(**params).fit(np.r_[X, X[:10]], np.r_[y, y[:10]])
    doubled = MLPRegressor(**params).fit(X, y, sample_weight=np.r_[np.full(10, 2.0), np.ones(30)])
    np.testing.assert_allclose(doubled.target_mean_, repeated.target_mean_)
    np.testing.assert_allclose(doubled.target_scale_, repeated.target_scale_)


def test_one_number_as_sample_weight_weighs_every_row():
    X, y = blobs()
    est = MLPClassifier(**small(max_iter=3)).fit(X, y, sample_weight=2.0)
    same = MLPClassifier(**small(max_iter=3)).fit(X, y, sample_weight=np.full(len(y), 2.0))
    np.testing.assert_array_equal(est.predict_proba(X), same.predict_proba(X))
    with pytest.raises(ValueError, match="sample_weight: negative weights"):
        MLPClassifier(**small(max_iter=3)).fit(X, y, sample_weight=-1)


def test_function_learning_rates_keep_running_in_estimators(tmp_path):
    """A function schedule (as lr_schedule, or the learning rate of a solver object) keeps
    giving the rate of each step: it was copied through a config, which froze it (solver) or
    failed with a KeyError (lr_schedule); saving it is refused by name, as a file holds no code."""
    X, y = blobs()
    rate = lambda step: 0.5 / (1 + step)  # noqa: E731
    for params in (dict(lr_schedule=fastnn.schedules.FunctionSchedule(rate)),
                   dict(solver=fastnn.optimizers.SGD(learning_rate=rate))):
        est = MLPClassifier(**small(max_iter=3, batch_size=len(y), **params)).fit(X, y)
        assert est.model_.optimizer.current_learning_rate() == rate(3)
    with pytest.raises(TypeError, match=r"save: cannot store FunctionSchedule\('<lambda>'\) without pickle"):
        MLPClassifier(**small(max_iter=1, lr_schedule=fastnn.schedules.FunctionSchedule(rate))).fit(X, y).save(
            tmp_path / "f.npz")


def test_regressor_takes_scikit_learns_loss_parameter():
    X, y = blobs()
    est = MLPRegressor(**small(max_iter=2), loss="squared_error").fit(X, y.astype(float))
    assert est.get_params()["loss"] == "squared_error" and clone(est).loss == "squared_error"
    with pytest.raises(ValueError, match="loss='poisson' is not supported"):
        MLPRegressor(**small(max_iter=2), loss="poisson").fit(X, y.astype(float))
    with pytest.raises(ValueError, match="loss must be 'squared_error', got 'mae'"):
        MLPRegressor(**small(max_iter=2), loss="mae").fit(X, y.astype(float))

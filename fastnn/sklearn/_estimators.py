"""``MLPClassifier`` and ``MLPRegressor``: targets, outputs and predictions on
top of ``_BaseMLP``."""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels

from .._validation import is_sparse
from . import _persistence
from ._base import _BaseMLP, _fail

__all__ = ["MLPClassifier", "MLPRegressor"]


# ---------------------------------------------------------------- classifier
@_persistence.register
class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer perceptron classifier trained by fastnn.

    Binary targets get one sigmoid output unit, multiclass targets a softmax
    layer, multilabel indicator targets one sigmoid unit per label; labels
    may be of any type (ints, strings, booleans).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Units of each hidden layer; ``()`` gives a linear model.
    activation : str, default="relu"
        Hidden-layer activation: scikit-learn's ``"identity"``, ``"logistic"``,
        ``"tanh"``, ``"relu"``, or any elementwise fastnn activation
        (``"elu"``, ``"gelu"``, ...).
    solver : {"adam", "sgd", "rmsprop", "adagrad"} or fastnn Optimizer, default="adam"
    alpha : float, default=1e-4
        L2 penalty (see the ``fastnn.sklearn`` notes for how it is scaled).
    batch_size : int or "auto", default="auto"
        ``"auto"`` is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Step-size rule for ``solver="sgd"`` (as scikit-learn).
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    max_iter : int, default=200
        Epochs (passes over the data).
    shuffle : bool, default=True
    random_state : int, RandomState or None
        Seeds initialization, shuffling and the early-stopping split: the same
        int gives bit-identical models on one backend.
    tol : float, default=1e-4
    verbose : bool or int, default=False
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a fresh optimizer, as
        scikit-learn does) and carries the early-stopping bookkeeping over
        (``validation_scores_``, the best score or loss, epochs without improvement).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop when
        its accuracy stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float
        Adam's parameters (``epsilon`` also for RMSprop and Adagrad).
    n_iter_no_change : int or np.inf, default=10
    max_fun : int, default=15000
        Accepted and checked for scikit-learn compatibility; it bounds L-BFGS's
        function calls, and fastnn has no L-BFGS solver, so it has no effect.
    backend : str, default="auto"
        fastnn kernel backend (``fastnn.backends.available()``).
    dtype : {"float32", "float64"}, default="float32"
        Training and inference precision.  Outputs are returned as float64.
    lr_schedule : None, str, dict or fastnn schedule, default=None
        A ``fastnn.schedules`` learning-rate schedule over updates; a name
        (``"cosine"``, ``"exponential"``, ...) starts at
        ``learning_rate_init``.  Overrides ``learning_rate``.
    first_layer : {"auto", "dense", "sparse"}, default="auto"
        How the first layer reads a dense ``X``; passed to
        ``Sequential.fit``: ``"sparse"`` converts it once to CSR and reads
        only its non-zeros, ``"auto"`` does so below the crossover density
        measured for the backend.  Sparse ``X`` always trains sparse.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (``arange(n_labels)`` for multilabel targets).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a DataFrame).
    loss_curve_ : list of float
        Training loss after each epoch (with the L2 penalty, scikit-learn's scale).
    loss_ : float
    best_loss_ : float or None
    validation_scores_ : list of float or None
        Validation accuracy per epoch with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : int
        Training samples seen.
    coefs_, intercepts_ : list of ndarray
        Per layer, ``(n_in, n_out)`` weights and ``(n_out,)`` biases.
    n_layers_, n_outputs_, out_activation_
    model_ : fastnn.Sequential
        The trained network.
    """

    _EXTRA_ATTRIBUTES = ("classes_", "_target_kind")

    def _output_spec(self):
        if self._target_kind == "multiclass":
            return len(self.classes_), "softmax", "sparse_categorical_crossentropy"
        units = 1 if self._target_kind == "binary" else len(self.classes_)
        return units, "logistic", "binary_crossentropy"

    def _stratify_validation(self):
        return self._target_kind != "multilabel"

    def _encode_targets(self, y, first, incremental, classes, sample_weight=None):
        if is_sparse(y):  # a sparse multilabel indicator (MultiLabelBinarizer(sparse_output=True)): n x k of 0/1
            y = y.toarray()
        if first:
            check_classification_targets(y)
            kind = type_of_target(y)
            if kind == "multilabel-indicator":
                self._target_kind = "multilabel"
                self.classes_ = np.arange(y.shape[1])
            elif y.ndim != 1:
                raise ValueError(f"{type(self).__name__}: targets of type {kind!r} are not supported; "
                                 "expected binary, multiclass or multilabel-indicator targets")
            else:
                if incremental and classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit.")
                labels = unique_labels(y) if classes is None else unique_labels(np.asarray(classes))
                if len(labels) < 2:
                    raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data; "
                                     f"got 1 class ({labels[0]!r})")
                self.classes_ = labels
                self._target_kind = "binary" if len(labels) == 2 else "multiclass"
            k = len(self.classes_)
            self._grad_factor = float(k) if self._target_kind == "multilabel" else 1.0
            self._loss_factor = self._grad_factor
        else:
            if incremental and classes is not None and not np.array_equal(unique_labels(np.asarray(classes)),
                                                                          self.classes_):
                raise ValueError(f"`classes={np.asarray(classes)!r}` is not the same as on last call to "
                                 f"partial_fit, was: {self.classes_!r}")
            if self._target_kind == "multilabel":
                if type_of_target(y) != "multilabel-indicator" or y.shape[1] != len(self.classes_):
                    raise ValueError(f"y: expected a multilabel indicator matrix with {len(self.classes_)} "
                                     "columns, as in the first fit")
            else:
                check_classification_targets(y)
                if y.ndim != 1:
                    raise ValueError("y: expected 1-D class labels, as in the first fit")
                new = np.setdiff1d(unique_labels(y), self.classes_)
                if incremental and len(new):
                    raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                     f"{self.classes_}. 'y' has {unique_labels(y)}.")
                # a warm start (not partial_fit) needs all of them, as in scikit-learn
                if not incremental and not np.array_equal(unique_labels(y), self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has "
                                     f"{unique_labels(y)}")
        if self._target_kind == "multilabel":
            return np.ascontiguousarray(y, dtype=self._np_dtype)
        codes = np.searchsorted(self.classes_, y)
        bad = (codes >= len(self.classes_)) | (self.classes_[np.minimum(codes, len(self.classes_) - 1)] != y)
        if np.any(bad):
            raise ValueError(f"y: label {np.asarray(y)[bad][0]!r} is not in classes {self.classes_!r}")
        if self._target_kind == "binary":
            return codes.astype(self._np_dtype)
        return codes.astype(np.int64)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing the weights and optimizer state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), optional
        classes : array-like of shape (n_classes,), optional
            Every class that will ever appear; required on the first call
            (except for multilabel indicator targets).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _codes_from_outputs(self, P):
        if self._target_kind == "multiclass":
            return np.argmax(P, axis=1)
        if self._target_kind == "binary":
            return (P[:, 0] > 0.5).astype(np.int64)
        return (P > 0.5).astype(np.int64)

    def _score_outputs(self, P, y_enc, w):
        from sklearn.metrics import accuracy_score

        y_true = y_enc if self._target_kind == "multilabel" else y_enc.astype(np.int64)
        return float(accuracy_score(y_true, self._codes_from_outputs(P), sample_weight=w))

    def predict(self, X):
        """Predicted labels ``(n_samples,)``, or an indicator matrix
        ``(n_samples, n_labels)`` for multilabel targets."""
        X = self._check_X(X)
        codes = self._codes_from_outputs(self._outputs(X))
        if self._target_kind == "multilabel":
            return codes
        return self.classes_[codes]

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, n_classes)`` (float64), in the order
        of ``classes_``; for multilabel targets each label's probability."""
        X = self._check_X(X)
        P = self._outputs(X).astype(np.float64)
        if self._target_kind == "binary":
            P = np.hstack([1.0 - P, P])
        return P

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        P = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(P, out=P)

    def decision_function(self, X):
        """The output layer's pre-activations (logits), float64: ``(n_samples,)``
        for binary targets (positive means ``classes_[1]``), else
        ``(n_samples, n_classes)``."""
        X = self._check_X(X)
        Z = self._logits(X).astype(np.float64)
        return Z[:, 0] if self._target_kind == "binary" else Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


# ----------------------------------------------------------------- regressor
@_persistence.register
class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor trained by fastnn (squared error,
    linear output units).

    Takes the parameters of ``MLPClassifier`` plus:

    target_scaling : bool, default=False
        Standardize each target column (mean and standard deviation of the
        first ``fit``/``partial_fit``, weighted by ``sample_weight``) for
        training; ``predict`` returns original units.  ``loss_curve_`` is then
        in standardized units.
    loss : {"squared_error"}, default="squared_error"
        scikit-learn's (1.7 and later) name for the loss; its ``"poisson"``
        is not supported (a ``ValueError`` says so).

    Attributes are those of ``MLPClassifier`` without ``classes_``, plus
    ``target_mean_`` and ``target_scale_`` (``None`` without ``target_scaling``);
    ``validation_scores_`` holds R^2 scores.
    """

    _EXTRA_ATTRIBUTES = ("target_mean_", "target_scale_", "_y_ndim")

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        backend="auto",
        dtype="float32",
        lr_schedule=None,
        target_scaling=False,
        first_layer="auto",
        loss="squared_error",
    ):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
            beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, backend=backend,
            dtype=dtype, lr_schedule=lr_schedule, first_layer=first_layer,
        )
        self.target_scaling = target_scaling
        self.loss = loss

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.target_scaling, (bool, np.bool_)):
            _fail(self, "target_scaling", "True or False", self.target_scaling)
        if self.loss == "poisson":  # scikit-learn >= 1.7's other loss, with an exp output
            raise ValueError(f"{type(self).__name__}: loss='poisson' is not supported; fastnn's regressor "
                             f"fits the squared error (loss='squared_error')")
        if self.loss != "squared_error":
            _fail(self, "loss", "'squared_error'", self.loss)

    def _output_spec(self):
        return self._n_targets, "identity", "half_squared_error"

    def _after_load(self):
        self._n_targets = self.n_outputs_
        super()._after_load()

    def _stratify_validation(self):
        return False

    def _encode_targets(self, y, first, incremental, classes, sample_weight=None):
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        if first:
            self._y_ndim = y.ndim
            self._n_targets = y2.shape[1]
            self._grad_factor = float(y2.shape[1])
            self._loss_factor = 1.0
            if self.target_scaling:  # weighted as the loss weighs the rows (a weight w is w repeats)
                w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
                mean = np.average(y2.astype(np.float64), axis=0, weights=w)
                scale = np.sqrt(np.average(np.square(y2 - mean), axis=0, weights=w))
                scale[~(scale > 0)] = 1.0
                self.target_mean_, self.target_scale_ = mean, scale
            else:
                self.target_mean_ = self.target_scale_ = None
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} target column(s) as in the first fit, got {y2.shape[1]}")
        if self.target_mean_ is not None:
            y2 = (y2 - self.target_mean_) / self.target_scale_
        return np.ascontiguousarray(y2, dtype=self._np_dtype)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the weights and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _unscale(self, P):
        P = P.astype(np.float64)
        if self.target_mean_ is not None:
            P = P * self.target_scale_ + self.target_mean_
        return P

    def _score_outputs(self, P, y_enc, w):
        from sklearn.metrics import r2_score

        return float(r2_score(y_enc, P, sample_weight=w))  # R^2 is unchanged by the target scaling

    def predict(self, X):
        """Predictions (float64): ``(n_samples,)`` for one target, else
        ``(n_samples, n_outputs)``."""
        X = self._check_X(X)
        P = self._unscale(self._outputs(X))
        return P.ravel() if P.shape[1] == 1 else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor``.

Drop-in replacements for :mod:`sklearn.neural_network`'s estimators of the
same names (the stochastic solvers), trained by a fastnn ``Sequential``
(``model_``) on fastnn's kernels.  They work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score``, support ``partial_fit`` for
out-of-core training, and are saved without pickle (``est.save(path)`` /
``fastnn.sklearn.load(path)``); they also pickle, for joblib.

>>> from sklearn.datasets import load_digits
>>> from fastnn import MLPClassifier
>>> X, y = load_digits(return_X_y=True)
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=20, random_state=0).fit(X / 16, y)
>>> clf.score(X / 16, y) > 0.9
True

How the training problem relates to scikit-learn's
---------------------------------------------------
* Each minibatch minimizes the (``sample_weight``-weighted) mean loss plus
  ``alpha / (2 * s) * sum ||W||^2`` where ``s`` is the batch's weight sum
  (its size without weights), as scikit-learn does.  fastnn applies the
  penalty's gradient through the layers' fixed ``l2`` factor, so ``s`` is
  taken as ``batch_size * mean(sample_weight)`` for every batch, including a
  shorter last batch (scikit-learn uses the last batch's own size).
* Regression with several outputs and multilabel classification: fastnn's
  losses average over the outputs where scikit-learn's gradient sums over
  them.  The L2 factor is divided by the number of outputs to keep the same
  balance between data and penalty, and for ``solver="sgd"`` with a
  constant or built-in schedule the learning rate is multiplied by it, so
  the updates are scikit-learn's.  ``loss_curve_`` is reported on
  scikit-learn's scale and includes the penalty (computed with the weights
  at the end of each epoch).
* Rows with zero ``sample_weight`` are dropped before training (they carry
  no gradient, and an all-zero batch would have no defined weighted mean);
  equal weights ``c`` train like no weights, except for the penalty
  scale ``s`` above.
* Weights start Glorot-uniform with zero biases.

Only the stochastic solvers exist: ``"adam"`` (default), ``"sgd"``, and
fastnn's ``"rmsprop"`` and ``"adagrad"``, or any ``fastnn.optimizers``
instance (used as a template; the estimator trains a copy).
"""
from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import sys
import tempfile
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from . import _kernels, activations, optimizers, schedules
from . import callbacks as cbks
from .layers import Dense
from .model import Sequential
from .saving import load_model, save_model, write_npz_atomically

__all__ = ["MLPClassifier", "MLPRegressor", "load", "partial_fit_blocks"]

_SOLVERS = ("adam", "sgd", "rmsprop", "adagrad")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_DTYPES = {"float32": np.float32, "float64": np.float64}
_PREDICT_ROWS = 4096  # rows per chunk in decision_function


def _fail(estimator, name, expected, value):
    raise ValueError(f"{type(estimator).__name__}: {name} must be {expected}, got {value!r}")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


class _EpochMonitor(cbks.Callback):
    """Runs scikit-learn's end-of-epoch bookkeeping (loss curve, ``tol``,
    early stopping, adaptive learning rate) inside ``Sequential.fit``."""

    def __init__(self, estimator, n_train, validation):
        self.estimator, self.n_train, self.validation = estimator, n_train, validation
        self.epochs_run = 0
        self.converged = False

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_run += 1
        if self.estimator._end_epoch(self.model, logs, self.n_train, self.validation):
            self.converged = True
            self.model.stop_training = True


class _BaseMLP(BaseEstimator):
    """Shared parameters, training loop and persistence of the two estimators."""

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
        backend="auto",
        dtype="float32",
        lr_schedule=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype
        self.lr_schedule = lr_schedule

    # ------------------------------------------------------------ parameters
    def _check_params(self):
        """Validate the parameters (at fit time: ``__init__`` only stores them)."""
        sizes = self.hidden_layer_sizes
        if _is_int(sizes):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            _fail(self, "hidden_layer_sizes", "an int or a sequence of ints", self.hidden_layer_sizes)
        if not all(_is_int(s) and s > 0 for s in sizes):
            _fail(self, "hidden_layer_sizes", "positive integers", self.hidden_layer_sizes)
        if not isinstance(self.activation, str):
            _fail(self, "activation", "an activation name such as 'relu', 'tanh', 'logistic', 'identity'",
                  self.activation)
        act = activations.get(self.activation)
        if act.code == _kernels.SOFTMAX:
            _fail(self, "activation", "an elementwise activation (softmax is for output layers)", self.activation)
        solver = self.solver
        if isinstance(solver, str):
            if solver == "lbfgs":
                raise ValueError(
                    f"{type(self).__name__}: solver='lbfgs' is not available in fastnn, which trains "
                    f"with minibatch solvers; use one of {list(_SOLVERS)} (or "
                    "sklearn.neural_network for L-BFGS)"
                )
            if solver not in _SOLVERS:
                _fail(self, "solver", f"one of {list(_SOLVERS)} or a fastnn.optimizers.Optimizer", solver)
        elif not isinstance(solver, optimizers.Optimizer):
            _fail(self, "solver", f"one of {list(_SOLVERS)} or a fastnn.optimizers.Optimizer", solver)
        for name, low, high in [("alpha", 0, None), ("learning_rate_init", 0, None), ("power_t", 0, None),
                                ("tol", 0, None), ("momentum", 0, 1), ("beta_1", 0, 1), ("beta_2", 0, 1),
                                ("epsilon", 0, None)]:
            value = getattr(self, name)
            strict_low = name in ("learning_rate_init", "epsilon")
            ok = _is_number(value) and math.isfinite(value) and (value > low if strict_low else value >= low)
            if ok and high is not None:
                ok = value < high
            if not ok:
                bounds = f"{'>' if strict_low else '>='} {low}" + ("" if high is None else f" and < {high}")
                _fail(self, name, f"a number {bounds}", value)
        if not (self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size >= 1)):
            _fail(self, "batch_size", "'auto' or a positive integer", self.batch_size)
        if self.learning_rate not in _LEARNING_RATES:
            _fail(self, "learning_rate", f"one of {list(_LEARNING_RATES)}", self.learning_rate)
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                _fail(self, name, "an integer >= 1", value)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                _fail(self, name, "True or False", getattr(self, name))
        if not (isinstance(self.verbose, (bool, np.bool_)) or (_is_int(self.verbose) and self.verbose >= 0)):
            _fail(self, "verbose", "a bool or an integer >= 0", self.verbose)
        if self.early_stopping:
            frac = self.validation_fraction
            if not (_is_number(frac) and 0 < frac < 1):
                _fail(self, "validation_fraction", "a number in (0, 1)", frac)
        try:
            dtype = np.dtype(self.dtype).name
        except TypeError:
            dtype = None
        if dtype not in _DTYPES:
            _fail(self, "dtype", "'float32' or 'float64'", self.dtype)
        if not isinstance(self.backend, str):
            _fail(self, "backend", "a backend name ('auto', 'numpy', 'numba', 'cython')", self.backend)
        if self.lr_schedule is not None and not isinstance(
                self.lr_schedule, (str, dict, schedules.LearningRateSchedule)):
            _fail(self, "lr_schedule", "None, a schedule name, a config dict or a fastnn schedule",
                  self.lr_schedule)
        self._hidden = sizes
        self._np_dtype = _DTYPES[dtype]

    def _learning_rate_value(self, factor):
        """The optimizer's learning rate: a float or a fresh schedule."""
        lr_init = float(self.learning_rate_init) * factor
        spec = self.lr_schedule
        if spec is None:
            return lr_init
        if isinstance(spec, str):
            if spec.lower() == "warmup":
                spec = {"class_name": "warmup", "config": {"schedule": lr_init}}
            else:
                spec = {"class_name": spec, "config": {"initial_learning_rate": lr_init}}
        elif isinstance(spec, schedules.LearningRateSchedule):
            spec = schedules.registry.serialize(spec)
        return schedules.get(spec)

    def _make_optimizer(self):
        if isinstance(self.solver, optimizers.Optimizer):
            return optimizers.get(optimizers.registry.serialize(self.solver))
        # sklearn's SGD step is on the gradient summed over outputs; fastnn's losses average
        # over them, so scale the step back (adaptive solvers are invariant to this).
        scaled = self.solver == "sgd" and (self.lr_schedule is None or isinstance(self.lr_schedule, str))
        factor = self._grad_factor if scaled else 1.0
        lr = self._learning_rate_value(factor)
        if self.solver == "adam":
            return optimizers.Adam(lr, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        if self.solver == "sgd":
            return optimizers.SGD(lr, momentum=self.momentum,
                                  nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        if self.solver == "rmsprop":
            return optimizers.RMSprop(lr, epsilon=self.epsilon)
        return optimizers.Adagrad(lr, epsilon=self.epsilon)

    # --------------------------------------------------------------- fitting
    def fit(self, X, y, sample_weight=None):
        """Train for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Dense numeric data; converted to ``dtype``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative per-sample weights (each batch loss is a weighted mean).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError(f"{type(self).__name__}: partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "model_")
        first = not fitted or (not incremental and not self.warm_start)
        X, y = validate_data(self, X, y, reset=first, dtype=self._np_dtype, multi_output=True,
                             y_numeric=isinstance(self, RegressorMixin), order="C")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y_enc = self._encode_targets(y, first, incremental, classes)
        w = None
        if sample_weight is not None:
            w = check_array(sample_weight, ensure_2d=False, dtype=self._np_dtype, input_name="sample_weight")
            if w.ndim != 1 or w.shape[0] != X.shape[0]:
                raise ValueError(f"sample_weight.shape == {w.shape}, expected ({X.shape[0]},)!")
            if np.any(w < 0):
                raise ValueError("sample_weight: negative weights are not supported")
            if not np.any(w > 0):
                raise ValueError("sample_weight: every weight is zero; at least one sample needs a positive weight")

        rng = check_random_state(self.random_state)
        if first:
            self._initialize(X.shape[1], rng)
        elif not incremental:  # warm start: keep the weights, start a fresh optimizer (as scikit-learn)
            units = tuple(layer.units for layer in self.model_.layers[:-1])
            if units != self._hidden:
                raise ValueError(f"{type(self).__name__}: warm_start needs the same hidden_layer_sizes as "
                                 f"the fitted model {units}, got {self.hidden_layer_sizes!r}")
            self.model_.compile(optimizer=self._make_optimizer(), loss=self.model_.loss)
        self.n_iter_ = 0
        if not incremental:
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.validation_scores_ = None
                self.best_validation_score_ = None
                if self.best_loss_ is None:
                    self.best_loss_ = np.inf

        validation = None
        if self.early_stopping:
            X, y_enc, w, validation = self._split_validation(X, y_enc, w, rng)
        if w is not None:
            keep = w > 0
            if not keep.all():
                X, y_enc, w = X[keep], y_enc[keep], w[keep]
        self._train(X, y_enc, w, validation, incremental)
        return self

    def _initialize(self, n_features, rng):
        n_outputs, out_activation, loss = self._output_spec()
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(self._hidden) + 2
        self.out_activation_ = out_activation
        self.loss_curve_ = []
        self.best_loss_ = np.inf
        self.validation_scores_ = None
        self.best_validation_score_ = None
        self._no_improvement_count = 0
        self.t_ = 0
        self._epochs_seen = 0
        layers, n_in = [], n_features
        for units in self._hidden + (n_outputs,):
            act = self.activation if len(layers) < len(self._hidden) else out_activation
            layers.append(Dense(units, activation=act, input_dim=n_in))
            n_in = None
        seed = int(rng.randint(np.iinfo(np.int32).max))
        model = Sequential(layers, backend=self.backend, dtype=np.dtype(self._np_dtype).name, seed=seed)
        self.model_ = model
        model.compile(optimizer=self._make_optimizer(), loss=loss)

    def _split_validation(self, X, y, w, rng):
        from sklearn.model_selection import train_test_split

        stratify = y if self._stratify_validation() else None
        arrays = (X, y) if w is None else (X, y, w)
        parts = train_test_split(*arrays, random_state=rng, test_size=self.validation_fraction,
                                 stratify=stratify)
        X_train, X_val, y_train, y_val = parts[:4]
        w_train, w_val = (parts[4], parts[5]) if w is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        if w_train is not None and not np.any(w_train > 0):
            raise ValueError("sample_weight: every training weight is zero after the validation split")
        return X_train, y_train, w_train, (X_val, y_val, w_val)

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          stacklevel=5)
        return int(min(self.batch_size, n))

    def _train(self, X, y, w, validation, incremental):
        model = self.model_
        n = X.shape[0]
        bs = self._batch_size(n)
        w_scale = 1.0
        if w is not None:
            w_scale = float(np.mean(w, dtype=np.float64))
            if np.all(w == w[0]):  # equal weights train exactly like none
                w = None
        # scikit-learn's penalty is alpha / (2 s) ||W||^2 per batch, s = the batch's weight sum.
        batch_weight = bs * w_scale
        for layer in model.layers:
            layer.l2 = self.alpha / (batch_weight * self._grad_factor)
        self._penalty = 0.5 * self.alpha / batch_weight
        monitor = _EpochMonitor(self, n, validation)
        start = self._epochs_seen
        epochs = 1 if incremental else self.max_iter
        if not incremental:
            self._best_weights = None
        try:
            with _thread_budget():
                model.fit(X, y, epochs=start + epochs, initial_epoch=start, batch_size=bs, shuffle=self.shuffle,
                          callbacks=[monitor], verbose=0, sample_weight=w)
        finally:
            self._epochs_seen += monitor.epochs_run
        if validation is not None and self._best_weights is not None:
            model.set_weights(self._best_weights)
        self._best_weights = None
        if not incremental and not monitor.converged and monitor.epochs_run == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4,
            )

    def _end_epoch(self, model, logs, n_train, validation):
        """scikit-learn's bookkeeping after one epoch; True means stop."""
        self.n_iter_ += 1
        self.t_ += n_train
        penalty = self._penalty * sum(float(np.vdot(layer.W, layer.W)) for layer in model.layers)
        loss = float(logs["loss"]) * self._loss_factor + penalty
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
        if validation is not None:
            X_val, y_val, w_val = validation
            score = self._score_outputs(model.predict(X_val), y_val, w_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = model.get_weights()
        else:
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, loss)
        opt = model.optimizer
        sgd_rate = self.solver == "sgd" and self.lr_schedule is None
        if sgd_rate and self.learning_rate == "invscaling":
            opt.learning_rate = self.learning_rate_init * self._grad_factor / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count > self.n_iter_no_change:
            if sgd_rate and self.learning_rate == "adaptive" \
                    and opt.learning_rate > 1e-6 * self._grad_factor:
                opt.learning_rate = opt.learning_rate / 5.0
                self._no_improvement_count = 0
                if self.verbose:
                    print(f"Setting learning rate to {opt.learning_rate / self._grad_factor:f}")
                return False
            if self.verbose:
                what = "Validation score" if validation is not None else "Training loss"
                print(f"{what} did not improve more than tol={self.tol:f} for "
                      f"{self.n_iter_no_change} consecutive epochs. Stopping.")
            return True
        return False

    # ------------------------------------------------------------- inference
    def _check_X(self, X):
        check_is_fitted(self, "model_")
        return validate_data(self, X, reset=False, dtype=self.model_.layers[0].W.dtype, order="C")

    def _outputs(self, X):
        """Output-layer activations for validated ``X``, ``(n, n_outputs)``."""
        with _thread_budget():
            return self.model_.predict(X)

    def _logits(self, X):
        """Output-layer pre-activations, with the model's own kernels."""
        kernels = _kernels.resolve(self.model_.backend)
        layers = self.model_.layers
        out = np.empty((X.shape[0], layers[-1].units), X.dtype)
        for start in range(0, X.shape[0], _PREDICT_ROWS):
            A = X[start:start + _PREDICT_ROWS]
            for i, layer in enumerate(layers):
                code, alpha = (_kernels.LINEAR, 0.0) if i == len(layers) - 1 else \
                    (layer.activation.code, layer.activation.alpha)
                Z = np.empty((A.shape[0], layer.units), X.dtype)
                A_next = np.empty_like(Z)
                kernels.dense_forward(A, layer.W, layer.b, code, alpha, Z, A_next)
                A = A_next
            out[start:start + A.shape[0]] = A
        return out

    @property
    def coefs_(self):
        """Weight matrices, ``coefs_[i]`` of shape ``(n_in, n_out)`` of layer ``i`` (live arrays)."""
        if "model_" not in self.__dict__:
            raise AttributeError("coefs_: the estimator is not fitted yet")
        return [layer.W for layer in self.model_.layers]

    @property
    def intercepts_(self):
        """Bias vectors, ``intercepts_[i]`` of shape ``(n_out,)`` of layer ``i`` (live arrays)."""
        if "model_" not in self.__dict__:
            raise AttributeError("intercepts_: the estimator is not fitted yet")
        return [layer.b for layer in self.model_.layers]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags

    # ----------------------------------------------------------- persistence
    _SAVED_ATTRIBUTES = (
        "n_features_in_", "feature_names_in_", "n_iter_", "t_", "loss_", "loss_curve_", "best_loss_",
        "validation_scores_", "best_validation_score_", "n_layers_", "n_outputs_", "out_activation_",
        "_no_improvement_count", "_epochs_seen", "_grad_factor", "_loss_factor",
    )

    def __getstate__(self):
        state = super().__getstate__()
        if "model_" in state:  # kernels are modules: store the model in its .fastnn form
            state = dict(state)
            state["model_"] = {"fastnn_model_bytes": _model_to_bytes(state["model_"])}
        return state

    def __setstate__(self, state):
        model = state.get("model_")
        if isinstance(model, dict) and "fastnn_model_bytes" in model:
            state = dict(state)
            state["model_"] = _model_from_bytes(model["fastnn_model_bytes"])
        super().__setstate__(state)

    def save(self, path):
        """Write the estimator (parameters, fitted attributes, model and optimizer
        state) to one file without pickle; read it back with ``fastnn.sklearn.load``.

        The file is a NumPy ``.npz`` archive holding a JSON description and the
        model in fastnn's own ``.fastnn`` format.  A ``random_state`` that is a
        ``RandomState`` instance is saved as ``None``.
        """
        check_is_fitted(self, "model_")
        params = {key: _param_to_json(value) for key, value in self.get_params(deep=False).items()}
        attributes, arrays = {}, {}
        for name in self._SAVED_ATTRIBUTES + self._EXTRA_ATTRIBUTES:
            if name not in self.__dict__:
                continue
            value = self.__dict__[name]
            if isinstance(value, np.ndarray):
                arrays[f"attribute:{name}"], kind = _array_to_storable(value, name)
                attributes[name] = {"array": kind}
            else:
                attributes[name] = _scalar_to_json(value)
        config = {"format": "fastnn-sklearn", "version": 1, "estimator": type(self).__name__,
                  "params": params, "attributes": attributes}
        arrays["config"] = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
        arrays["model"] = np.frombuffer(_model_to_bytes(self.model_), dtype=np.uint8)
        write_npz_atomically(path, arrays)

    _EXTRA_ATTRIBUTES: tuple = ()


# ---------------------------------------------------------------- classifier
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
        L2 penalty (see the module notes for how it is scaled).
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
        scikit-learn does).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop when
        its accuracy stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float
        Adam's parameters (``epsilon`` also for RMSprop and Adagrad).
    n_iter_no_change : int, default=10
    backend : str, default="auto"
        fastnn kernel backend (``fastnn.backends.available()``).
    dtype : {"float32", "float64"}, default="float32"
        Training and inference precision.  Outputs are returned as float64.
    lr_schedule : None, str, dict or fastnn schedule, default=None
        A ``fastnn.schedules`` learning-rate schedule over updates; a name
        (``"cosine"``, ``"exponential"``, ...) starts at
        ``learning_rate_init``.  Overrides ``learning_rate``.

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

    def _encode_targets(self, y, first, incremental, classes):
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
                if len(new):
                    if incremental:
                        raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                         f"{self.classes_}. 'y' has {unique_labels(y)}.")
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
        with _thread_budget():
            Z = self._logits(X).astype(np.float64)
        return Z[:, 0] if self._target_kind == "binary" else Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


# ----------------------------------------------------------------- regressor
class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor trained by fastnn (squared error,
    linear output units).

    Takes the parameters of ``MLPClassifier`` plus:

    target_scaling : bool, default=False
        Standardize each target column (mean and standard deviation of the
        first ``fit``/``partial_fit``) for training; ``predict`` returns
        original units.  ``loss_curve_`` is then in standardized units.

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
        backend="auto",
        dtype="float32",
        lr_schedule=None,
        target_scaling=False,
    ):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
            beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, backend=backend,
            dtype=dtype, lr_schedule=lr_schedule,
        )
        self.target_scaling = target_scaling

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.target_scaling, (bool, np.bool_)):
            _fail(self, "target_scaling", "True or False", self.target_scaling)

    def _output_spec(self):
        return self._n_targets, "identity", "half_squared_error"

    def _stratify_validation(self):
        return False

    def _encode_targets(self, y, first, incremental, classes):
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        if first:
            self._y_ndim = y.ndim
            self._n_targets = y2.shape[1]
            self._grad_factor = float(y2.shape[1])
            self._loss_factor = 1.0
            if self.target_scaling:
                mean = y2.mean(axis=0, dtype=np.float64)
                scale = y2.std(axis=0, dtype=np.float64)
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


# ------------------------------------------------------------------- threads
def _worker_thread_budget():
    """Threads one task may use inside a Dask worker, or None outside one.

    A Dask worker runs one task per worker thread and starts its processes
    with ``OMP_NUM_THREADS`` (and the BLAS equivalents) set to 1; fastnn keeps
    to that budget (``OMP_NUM_THREADS`` if set, else 1) also where the
    variables were not set, as in workers that are threads of the client.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        distributed.get_worker()
    except ValueError:
        return None
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def _thread_budget():
    """Inside a Dask worker, limit BLAS and OpenMP threads to the task's budget."""
    budget = _worker_thread_budget()
    if budget is None:
        yield
        return
    from threadpoolctl import threadpool_info, threadpool_limits

    if all(pool["num_threads"] <= budget for pool in threadpool_info()):
        yield
        return
    with threadpool_limits(limits=budget):
        yield


# ---------------------------------------------------------------- persistence
def _model_to_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory(prefix="fastnn-") as folder:
        path = os.path.join(folder, "model.fastnn")
        save_model(model, path)
        with open(path, "rb") as f:
            return f.read()


def _model_from_bytes(data: bytes, backend=None):
    with tempfile.TemporaryDirectory(prefix="fastnn-") as folder:
        path = os.path.join(folder, "model.fastnn")
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path, backend=backend)


def _param_to_json(value):
    if isinstance(value, optimizers.Optimizer):
        return {"fastnn_optimizer": optimizers.registry.serialize(value)}
    if isinstance(value, schedules.LearningRateSchedule):
        return {"fastnn_schedule": schedules.registry.serialize(value)}
    if isinstance(value, np.random.RandomState):
        return None
    if isinstance(value, type):
        return np.dtype(value).name
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, tuple):
        return {"tuple": [_param_to_json(v) for v in value]}
    return _scalar_to_json(value)


def _param_from_json(value):
    if isinstance(value, dict):
        if "fastnn_optimizer" in value:
            return optimizers.get(value["fastnn_optimizer"])
        if "fastnn_schedule" in value:
            return schedules.get(value["fastnn_schedule"])
        if "tuple" in value:
            return tuple(_param_from_json(v) for v in value["tuple"])
    return value


def _scalar_to_json(value):
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_scalar_to_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, dict)):
        return value
    raise TypeError(f"save: cannot store {type(value).__name__} {value!r} without pickle")


def _scalar_from_json(value):
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value


def _array_to_storable(arr, name):
    if arr.dtype != object:
        return arr, "plain"
    if all(isinstance(v, str) for v in arr.ravel()):
        return arr.astype(str), "object-str"
    raise TypeError(f"save: {name} holds Python objects that are not strings ({arr[:3]!r}...); "
                    "they cannot be stored without pickle (use joblib or pickle instead)")


def load(path, backend=None):
    """Load an estimator written by ``MLPClassifier.save`` / ``MLPRegressor.save``.

    Parameters
    ----------
    path : str or PathLike
    backend : str, optional
        Kernel backend for the loaded model (default: the saved one if
        available here, else ``"auto"``).  The ``backend`` parameter of the
        estimator is kept as saved.

    Raises
    ------
    ValueError
        The file is not a saved fastnn estimator.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {key: data[key] for key in data.files}
        config = json.loads(entries["config"].tobytes().decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any failure here means "not our file"
        raise ValueError(f"{path}: not a saved fastnn estimator ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict) or config.get("format") != "fastnn-sklearn":
        raise ValueError(f"{path}: not a saved fastnn estimator (a Sequential is read by fastnn.load_model)")
    if config.get("version", 0) > 1:
        raise ValueError(f"{path}: saved estimator version {config.get('version')!r}; this fastnn reads version 1")
    classes = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}
    cls = classes.get(config.get("estimator"))
    if cls is None:
        raise ValueError(f"{path}: unknown estimator {config.get('estimator')!r}")
    est = cls(**{key: _param_from_json(value) for key, value in config["params"].items()})
    for name, value in config["attributes"].items():
        if isinstance(value, dict) and "array" in value:
            arr = entries[f"attribute:{name}"]
            value = arr.astype(object) if value["array"] == "object-str" else arr
        elif isinstance(value, list):
            value = [_scalar_from_json(v) for v in value]
        else:
            value = _scalar_from_json(value)
        setattr(est, name, value)
    est.model_ = _model_from_bytes(entries["model"].tobytes(), backend=backend)
    if isinstance(est, MLPRegressor):
        est._n_targets = est.n_outputs_
    est._check_params()
    return est


# ---------------------------------------------------------- out-of-core training
def partial_fit_blocks(estimator, X, y, *, epochs=1, classes=None, sample_weight=None):
    """Train ``estimator`` by ``partial_fit`` over the row blocks of ``X`` and ``y``.

    Streams one block at a time: each block is computed (for a Dask array,
    ``X.blocks[i].compute()``), passed to ``partial_fit`` and dropped before
    the next is read, so only one block is ever in memory.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor (or any estimator with partial_fit)
    X : dask.array.Array of shape (n_samples, n_features), chunked along rows only,
        or a sequence of NumPy arrays (the blocks)
    y : dask.array.Array or sequence of arrays, with the same row blocks as ``X``
    epochs : int, default=1
        Passes over all blocks, in order.
    classes : array-like, optional
        All class labels, passed to the first ``partial_fit`` of a classifier.
    sample_weight : dask.array.Array or sequence of arrays, optional

    Returns
    -------
    estimator
    """
    X_blocks, y_blocks = _row_blocks(X, "X"), _row_blocks(y, "y")
    w_blocks = None if sample_weight is None else _row_blocks(sample_weight, "sample_weight")
    if len(X_blocks) != len(y_blocks) or (w_blocks is not None and len(w_blocks) != len(X_blocks)):
        raise ValueError(f"X, y and sample_weight must have the same number of row blocks, got "
                         f"{len(X_blocks)}, {len(y_blocks)}" + ("" if w_blocks is None else f", {len(w_blocks)}"))
    if not (_is_int(epochs) and epochs >= 1):
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
    is_classifier = isinstance(estimator, ClassifierMixin)
    for _ in range(epochs):
        for i in range(len(X_blocks)):
            Xb, yb = _materialize(X_blocks[i]), _materialize(y_blocks[i])
            kwargs = {}
            if w_blocks is not None:
                kwargs["sample_weight"] = _materialize(w_blocks[i])
            if is_classifier and classes is not None:
                kwargs["classes"] = classes
            estimator.partial_fit(Xb, yb, **kwargs)
            del Xb, yb, kwargs
    return estimator


def _row_blocks(a, name):
    if hasattr(a, "blocks") and hasattr(a, "numblocks"):  # a Dask array
        if len(a.numblocks) > 1 and any(n != 1 for n in a.numblocks[1:]):
            raise ValueError(f"{name}: expected chunks along rows only, got numblocks {a.numblocks} "
                             f"(rechunk with {name}.rechunk({{1: -1}}))")
        return [a.blocks[i] for i in range(a.numblocks[0])]
    return list(a)


def _materialize(block):
    return block.compute() if hasattr(block, "compute") else np.asarray(block)

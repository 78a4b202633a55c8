"""``_BaseMLP``: the parameters, training loop and inference shared by
``MLPClassifier`` and ``MLPRegressor`` (see the package docstring for how the
training problem relates to scikit-learn's)."""
from __future__ import annotations

import copy
import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .. import _first_layer, _kernels, activations, optimizers, schedules
from .. import callbacks as cbks
from .._training import one_fit_at_a_time
from .._validation import check_sparse_indices
from ..layers import Dense
from ..model import Sequential
from . import _persistence
from ._dask import _thread_budget

_SOLVERS = ("adam", "sgd", "rmsprop", "adagrad")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
# scipy.sparse formats taken as they are (the model converts them once to CSR); others become CSR
_SPARSE = ("csr", "csc", "coo")
_DTYPES = {"float32": np.float32, "float64": np.float64}


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
        max_fun=15000,
        backend="auto",
        dtype="float32",
        lr_schedule=None,
        first_layer="auto",
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
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype
        self.lr_schedule = lr_schedule
        self.first_layer = first_layer

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
            closed_high = name == "momentum"  # scikit-learn's momentum is in [0, 1]
            if ok and high is not None:
                ok = value <= high if closed_high else value < high
            if not ok:
                bounds = f"{'>' if strict_low else '>='} {low}" + (
                    "" if high is None else f" and {'<=' if closed_high else '<'} {high}")
                _fail(self, name, f"a number {bounds}", value)
        if not (self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size >= 1)):
            _fail(self, "batch_size", "'auto' or a positive integer", self.batch_size)
        if self.learning_rate not in _LEARNING_RATES:
            _fail(self, "learning_rate", f"one of {list(_LEARNING_RATES)}", self.learning_rate)
        for name in ("max_iter", "max_fun"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                _fail(self, name, "an integer >= 1", value)
        value = self.n_iter_no_change  # np.inf turns the tol-based stop off, as in scikit-learn
        if not ((_is_int(value) and value >= 1) or (_is_number(value) and value == math.inf)):
            _fail(self, "n_iter_no_change", "an integer >= 1 or np.inf", value)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                _fail(self, name, "True or False", getattr(self, name))
        if not (isinstance(self.verbose, (bool, np.bool_)) or (_is_int(self.verbose) and self.verbose >= 0)):
            _fail(self, "verbose", "a bool or an integer >= 0", self.verbose)
        frac = self.validation_fraction  # checked whether used or not, as scikit-learn does
        if not (_is_number(frac) and (0 < frac < 1 if self.early_stopping else 0 <= frac < 1)):
            _fail(self, "validation_fraction", "a number in (0, 1)" if self.early_stopping else "a number in [0, 1)",
                  frac)
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
        if not isinstance(self.first_layer, str) or self.first_layer not in _first_layer.CHOICES:
            _fail(self, "first_layer", f"one of {list(_first_layer.CHOICES)}", self.first_layer)
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
            return copy.deepcopy(spec)  # a FunctionSchedule too (no config holds its function)
        return schedules.get(spec)

    def _make_optimizer(self):
        if isinstance(self.solver, optimizers.Optimizer):
            return self.solver.fresh_copy()  # its learning rate as given: a function keeps running
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
        sample_weight : array-like of shape (n_samples,) or a number, optional
            Non-negative per-sample weights (each batch loss is a weighted mean).

        Returns
        -------
        self

        Raises
        ------
        RuntimeError
            At once, if ``fit`` or ``partial_fit`` of this estimator is already running
            (in another thread).
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        # One fit at a time: a second one would replace or retune ``model_`` under the first.
        with one_fit_at_a_time(self, type(self).__name__, "partial_fit()" if incremental else "fit()"):
            return self._fit_alone(X, y, sample_weight, incremental, classes)

    def _fit_alone(self, X, y, sample_weight, incremental, classes):
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError(f"{type(self).__name__}: partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "model_")
        first = not fitted or (not incremental and not self.warm_start)
        check_sparse_indices(X)  # before scipy converts it
        X, y = validate_data(self, X, y, reset=first, dtype=self._np_dtype, multi_output=True,
                             y_numeric=isinstance(self, RegressorMixin), order="C", accept_sparse=_SPARSE)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        w = None
        if sample_weight is not None:
            if isinstance(sample_weight, (int, float, np.integer, np.floating)) and not isinstance(
                    sample_weight, (bool, np.bool_)):  # one number weighs every row, as in scikit-learn
                sample_weight = np.full(X.shape[0], sample_weight, dtype=self._np_dtype)
            w = check_array(sample_weight, ensure_2d=False, dtype=self._np_dtype, input_name="sample_weight")
            if w.ndim != 1 or w.shape[0] != X.shape[0]:
                raise ValueError(f"sample_weight.shape == {w.shape}, expected ({X.shape[0]},)!")
            if np.any(w < 0):
                raise ValueError("sample_weight: negative weights are not supported")
            if not np.any(w > 0):
                raise ValueError("sample_weight: every weight is zero; at least one sample needs a positive weight")
        y_enc = self._encode_targets(y, first, incremental, classes, w)

        rng = check_random_state(self.random_state)
        if first:
            self._initialize(X.shape[1], rng)
        elif not incremental:  # warm start: keep the weights, start a fresh optimizer (as scikit-learn)
            units = tuple(layer.units for layer in self.model_.layers[:-1])
            if units != self._hidden:
                raise ValueError(f"{type(self).__name__}: warm_start needs the same hidden_layer_sizes as "
                                 f"the fitted model {units}, got {self.hidden_layer_sizes!r}")
            self._check_warm_model()
            self.model_.compile(optimizer=self._make_optimizer(), loss=self.model_.loss)
        self.n_iter_ = 0
        if not incremental:
            self._start_stopping_state(carry=not first)

        validation = None
        if self.early_stopping:
            X, y_enc, w, validation = self._split_validation(X, y_enc, w, rng)
        if w is not None:
            keep = w > 0
            if not keep.all():
                X, y_enc, w = X[keep], y_enc[keep], w[keep]
        self._train(X, y_enc, w, validation, incremental)
        return self

    def _start_stopping_state(self, carry):
        """The early-stopping bookkeeping at the start of ``fit``.

        A warm start carries the validation scores, the best score or loss and the
        count of epochs without improvement over from the fits before, as
        scikit-learn does, when they were kept for the same ``early_stopping``;
        otherwise they start afresh.  The best weights so far are the fitted ones
        (an early-stopped fit ends on its best weights).
        """
        self._best_weights = None
        if self.early_stopping:
            if carry and self.validation_scores_ is not None:
                self._best_weights = self.model_.get_weights()
                return
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            if carry and self.validation_scores_ is None and self.best_loss_ is not None:
                return
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf
        self._no_improvement_count = 0

    def _check_warm_model(self):
        """A warm start keeps the fitted model: its hidden activation, dtype and backend
        must still be the parameters' (they would otherwise be silently ignored)."""
        fitted, wanted = {}, {}
        if len(self.model_.layers) > 1:
            fitted["activation"] = self.model_.layers[0].activation.name
            wanted["activation"] = activations.get(self.activation).name
        fitted["dtype"], wanted["dtype"] = self.model_.dtype, np.dtype(self._np_dtype).name
        if self.backend != "auto":
            fitted["backend"], wanted["backend"] = self.model_.backend, self.backend
        for name in fitted:
            if fitted[name] != wanted[name]:
                raise ValueError(f"{type(self).__name__}: warm_start keeps the fitted model, whose {name} is "
                                 f"{fitted[name]!r}, got {name}={getattr(self, name)!r}; fit with "
                                 f"warm_start=False to start a new model")

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
        try:
            with _thread_budget():
                model.fit(X, y, epochs=start + epochs, initial_epoch=start, batch_size=bs, shuffle=self.shuffle,
                          callbacks=[monitor], verbose=0, sample_weight=w, first_layer=self.first_layer)
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
        check_sparse_indices(X)  # before scipy converts it
        return validate_data(self, X, reset=False, dtype=self.model_.layers[0].W.dtype, order="C",
                             accept_sparse=_SPARSE)

    def _outputs(self, X):
        """Output-layer activations for validated ``X``, ``(n, n_outputs)``."""
        with _thread_budget():
            return self.model_.predict(X)

    def _logits(self, X):
        """Output-layer pre-activations for validated ``X``, ``(n, n_outputs)``."""
        with _thread_budget():
            return self.model_.predict(X, output="logits")

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
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        return tags

    # ----------------------------------------------------------- persistence
    _SAVED_ATTRIBUTES = (
        "n_features_in_", "feature_names_in_", "n_iter_", "t_", "loss_", "loss_curve_", "best_loss_",
        "validation_scores_", "best_validation_score_", "n_layers_", "n_outputs_", "out_activation_",
        "_no_improvement_count", "_epochs_seen", "_grad_factor", "_loss_factor",
    )
    _EXTRA_ATTRIBUTES: tuple = ()  # the subclass's own saved attributes

    def __getstate__(self):
        return _persistence.pickle_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(_persistence.unpickle_state(state))

    def save(self, path):
        """Write the estimator (parameters, fitted attributes, model and optimizer
        state) to one file without pickle; read it back with ``fastnn.sklearn.load``.

        The file is a NumPy ``.npz`` archive holding a JSON description and the
        model in fastnn's own ``.fastnn`` format.  A ``random_state`` that is a
        ``RandomState`` instance is saved as ``None``.
        """
        check_is_fitted(self, "model_")
        _persistence.save_estimator(self, path)

    def _after_load(self):
        """Rebuild the derived private attributes once ``load`` has set the saved ones."""
        self._check_params()

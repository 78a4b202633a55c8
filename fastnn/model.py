"""``Sequential``: a stack of layers with Keras' compile / fit / evaluate / predict.

The model owns memory: parameters, gradients and optimizer state are created
once when the model is built and compiled, and per-batch buffers once per
batch size, so the steady state of ``fit`` allocates nothing but NumPy's own
small temporaries.  All math goes through the backend's kernels
(``fastnn._kernels``).

Design note: this module is long because it is one class, Keras' whole model
API with its parameter documentation; each public method checks every argument
before it changes the model (a call that raises leaves it as it was).  What is
not the API lives beside it: the epoch loops in ``_training``, fit's input
handling in ``_fit_inputs`` and ``_validation``, files in ``_archive`` and
``saving``.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from . import _first_layer, _kernels
from . import _validation as check
from ._archive import save_model
from ._kernels import step as reference
from ._kernels.sparse import SparseInput
from ._fit_inputs import check_callbacks, check_shuffle, check_verbose, split_validation
from ._training import one_fit_at_a_time, refuse_during_fit_elsewhere, run_epochs
from . import layers as layers_mod
from . import losses, optimizers
from . import metrics as metrics_mod
from .normalization import Normalization

DTYPES = {"float32": np.float32, "float64": np.float64}


# Layer -> weak reference to the model it belongs to: a layer holds one model's
# weights, so a second model must not take (and re-initialize) it.
_LAYER_OWNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _check_free(layer, model):
    """Raise if ``layer`` is already in ``model`` or in another live model."""
    ref = _LAYER_OWNERS.get(layer)
    owner = None if ref is None else ref()
    if owner is model:
        raise ValueError(f"layer: {layer!r} is already layer {model.layers.index(layer)} of this model; "
                         f"create a new layer object for each position")
    if owner is not None:
        raise ValueError(f"layer: {layer!r} already belongs to the model {owner.name!r} (it holds that "
                         f"model's weights); create new layer objects for a second model")


class NotBuiltError(ValueError, AttributeError):
    """The model has no weights yet (no ``input_dim`` was given and ``fit`` has not run)."""


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
        ``Dense`` / ``Maxout`` layers; the first needs ``input_dim`` unless
        ``fit`` is called first (it then infers it from ``X``).  A
        ``Normalization`` may come first: the model then standardizes its
        inputs itself (kept as ``input_normalizer``, not in ``layers``).
    backend : {"auto", "numpy", "numba", "cython"}
        Kernel backend; ``"auto"`` picks the fastest available
        (``fastnn.backends.available()`` lists them).
    dtype : {"float32", "float64"}
        Dtype of weights, activations and gradients, kept end to end.
    seed : int, optional
        Seeds weight initialization and batch shuffling: the same seed gives
        the same model and the same training run.
    target_normalization : bool, default False
        For regression: standardize the targets (per output column, with the
        mean and variance of the first ``fit``'s training targets, kept in
        ``target_normalizer``).  Training, ``History`` and ``evaluate`` then
        measure losses and metrics on standardized targets; ``predict``
        answers in the original units.
    """

    def __init__(self, layers=None, backend="auto", dtype="float32", seed=None, name="sequential",
                 target_normalization=False):
        try:  # None is the default, float32, as in Keras (NumPy would read it as float64)
            dtype_name = np.dtype("float32" if dtype is None else dtype).name
        except TypeError:
            dtype_name = None
        if dtype_name not in DTYPES:
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
        self.dtype = dtype_name
        if not isinstance(backend, str):
            raise TypeError(f"backend: expected a backend name, got {type(backend).__name__} {backend!r}")
        self._kernels = _kernels.resolve(backend)
        self.backend = self._kernels.NAME
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed: expected a non-negative integer or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self.name = name
        if not isinstance(target_normalization, (bool, np.bool_)):
            raise TypeError(f"target_normalization: expected True or False, got "
                            f"{type(target_normalization).__name__} {target_normalization!r}")
        self.input_normalizer: Normalization | None = None
        self.target_normalizer = Normalization() if target_normalization else None
        self.layers: list[layers_mod.Layer] = []
        self.optimizer = None
        self.loss = None
        self.metrics: list[tuple[str, metrics_mod.Metric]] = []
        # With a seed, the batches' shuffle order comes from one stream per compile, drawn on
        # by every fit (``_training.run_epochs``): each call's epochs get new orders.
        self._shuffle_rng = None
        self.history = None
        self.stop_training = False
        self._layers_changed = False  # add() after compile(): compile() must run again
        self._workspaces: dict[tuple[int, int], list] = {}  # (thread, rows) -> per-layer buffers
        try:
            for layer in layers or []:
                self.add(layer)
        except BaseException:  # a model that failed to construct keeps no layer
            for layer in self.layers:
                _LAYER_OWNERS.pop(layer, None)
            raise

    def __getstate__(self):
        """For ``copy.deepcopy`` and pickle: the backend by name (its kernel module is
        code, not state; ``__setstate__`` resolves it again, ``"auto"`` where it is not
        built, as ``load_model`` does) and no per-thread workspaces (made again when used)."""
        state = self.__dict__.copy()
        state["_kernels"] = self._kernels.NAME
        state["_workspaces"] = {}
        return state

    def __setstate__(self, state):
        state = dict(state)
        try:
            state["_kernels"] = _kernels.resolve(state["_kernels"])
        except ImportError:  # not built in this environment
            state["_kernels"] = _kernels.resolve("auto")
        state["backend"] = state["_kernels"].NAME
        self.__dict__.update(state)
        # a deep copy's layers and optimizer are the copy's (a shallow copy's stay the model's)
        for layer in self.layers:
            owner = _LAYER_OWNERS.get(layer)
            if owner is None or owner() is None:
                _LAYER_OWNERS[layer] = weakref.ref(self)
        if self.optimizer is not None and getattr(self.optimizer, "_owner", None) is None:
            self.optimizer._owner = weakref.ref(self)

    # ------------------------------------------------------------ structure

    def add(self, layer) -> None:
        """Append a layer (builds the model once the input width is known).

        A layer object belongs to one model: adding one that another (live)
        model holds, or adding it twice, raises ``ValueError``.  After
        ``compile``, ``fit`` and ``evaluate`` need ``compile`` to run again."""
        refuse_during_fit_elsewhere(self, "model", "add()")
        if isinstance(layer, Normalization):
            if self.layers or self.input_normalizer is not None:
                raise ValueError(
                    f"layer: a Normalization layer standardizes the model's inputs, so it must come first; "
                    f"got one after {len(self.layers) + (self.input_normalizer is not None)} layer(s)")
            self.input_normalizer = layer
            return
        if not isinstance(layer, layers_mod.Layer):
            raise TypeError(f"layer: expected a fastnn layer (Dense, Maxout, Normalization), "
                            f"got {type(layer).__name__}")
        _check_free(layer, self)
        norm = self.input_normalizer
        if not self.layers and norm is not None and norm.n_features is not None:
            if layer.input_dim is None:
                layer.input_dim = norm.n_features
            elif layer.input_dim != norm.n_features:
                raise ValueError(f"input_dim: the first layer expects {layer.input_dim} inputs but the "
                                 f"Normalization layer was adapted to {norm.n_features} features")
        if self.layers and layer.input_dim is not None and layer.input_dim != self.layers[-1].units:
            raise ValueError(
                f"input_dim: layer {len(self.layers)} expects {layer.input_dim} inputs but the previous "
                f"layer has {self.layers[-1].units} units"
            )
        previous_built = self.built
        self._layers_changed = self.loss is not None
        self.layers.append(layer)
        _LAYER_OWNERS[layer] = weakref.ref(self)
        self._workspaces.clear()
        if previous_built:  # continue the initialization stream where build() left it
            layer.build(self.layers[-2].units, DTYPES[self.dtype], self._init_rng)
        elif len(self.layers) == 1 and layer.input_dim is not None:
            self.build(layer.input_dim)
        self._refresh_params()

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def input_dim(self):
        return self.layers[0].input_dim if self.layers else None

    @property
    def output_dim(self):
        return self.layers[-1].units if self.layers else None

    def build(self, input_dim: int) -> None:
        """Create every layer's weights for ``input_dim`` inputs, from ``seed``."""
        if not self.layers:
            raise ValueError("layers: the model has no layers; add Dense layers first")
        self._init_rng = np.random.default_rng(self.seed)
        n_in = check.check_int("input_dim", input_dim, 1)
        for layer in self.layers:
            layer.build(n_in, DTYPES[self.dtype], self._init_rng)
            n_in = layer.units
        self._refresh_params()
        if self.optimizer is not None:
            self.optimizer.build(self._params)

    def _refresh_params(self):
        self._params = [p for layer in self.layers if layer.built for p in layer.params]
        self._grads = [g for layer in self.layers if layer.built for g in layer.grads]

    def _require_built(self, what):
        if not self.built:
            raise NotBuiltError(
                f"{what}: the model has no weights yet; give the first layer input_dim=... "
                f"or call fit() first"
            )

    # -------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Choose the optimizer, the loss and the metrics to report.

        The loss must fit the output layer: cross-entropies need a sigmoid
        or softmax output (softmax + cross-entropy and sigmoid + binary
        cross-entropy use the fused gradient ``a - y``).  Metrics of the same
        name (``"mse"`` and ``MeanSquaredError()``) are reported once.

        The optimizer starts afresh: update count 0 and zeroed state, also when
        it is the model's own ``model.optimizer``.  An optimizer object serves
        the model that compiled it last: a model whose optimizer another model
        has compiled since must be compiled again before ``fit``/``evaluate``.
        """
        refuse_during_fit_elsewhere(self, "model", "compile()")
        if not self.layers:
            raise ValueError("compile: the model has no layers; add Dense layers first")
        optimizer = optimizers.get(optimizer)
        loss = losses.get(loss)
        if self.target_normalizer is not None and (loss.sparse or loss.probabilistic):
            raise ValueError(
                f"loss: target_normalization standardizes regression targets, but {loss.name!r} "
                f"compares classes or probabilities; use a regression loss (e.g. 'mse') or "
                f"Sequential(..., target_normalization=False)")
        last = self.layers[-1]
        loss.check_output_layer(last.output_activation(), last.units)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_mod.Metric)):
            metrics = [metrics]
        resolved = {}
        for m in metrics:
            metric = metrics_mod.get(m)
            name = m if isinstance(m, str) else metric.name
            if name in resolved:  # a metric listed twice is reported once (as Keras)
                continue
            if metric.compares_values and isinstance(loss, losses.SparseCategoricalCrossentropy):
                raise ValueError(
                    f"metrics: {name!r} compares the outputs with targets of the same shape, but with "
                    f"loss='sparse_categorical_crossentropy' the targets are class labels; use 'accuracy', "
                    f"or one-hot targets with loss='categorical_crossentropy'")
            resolved[name] = metric
        self.optimizer, self.loss, self.metrics = optimizer, loss, list(resolved.items())
        self._shuffle_rng = None  # a new compile draws the orders afresh, as its optimizer starts afresh
        self._layers_changed = False
        optimizer._owner = weakref.ref(self)
        optimizer.iterations, optimizer._slots = 0, None  # a fresh start, even for the same object
        if self.built:
            optimizer.build(self._params)

    @property
    def compiled(self) -> bool:
        """compile() ran after the last change of the layers, and no other model
        has compiled the optimizer since."""
        return self.loss is not None and not self._layers_changed and self._owns_optimizer()

    def _owns_optimizer(self):
        ref = getattr(self.optimizer, "_owner", None)
        return ref is not None and ref() is self

    def _require_compiled(self, what):
        if self._layers_changed:
            raise ValueError(f"{what}: layers were added after compile(); call model.compile(optimizer=..., "
                             f"loss=...) again so the loss, metrics and optimizer fit the new layers")
        if self.loss is not None and not self._owns_optimizer():
            raise ValueError(f"{what}: the optimizer {self.optimizer!r} was compiled into another model since "
                             f"(its state is that model's now); call model.compile(...) again, with an "
                             f"optimizer object of this model's own")
        if not self.compiled:
            raise ValueError(f"{what}: the model is not compiled; call model.compile(optimizer=..., loss=...) first")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, epochs=1, batch_size=32, validation_split=0.0, validation_data=None,
            shuffle=True, callbacks=None, verbose=1, sample_weight=None, initial_epoch=0,
            first_layer="auto", class_weight=None):
        """Train for ``epochs`` passes over the data.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, (n_samples, n_features)
            Sparse input (any scipy.sparse format) is converted once to CSR
            and read batch by batch without a dense copy.
        y : array-like
            ``(n_samples,)`` integer labels for sparse categorical
            cross-entropy, else ``(n_samples, n_outputs)`` (1-D for one output).
        batch_size : int or None
            Rows per update; ``None`` is full-batch gradient descent, ``1``
            is pure stochastic gradient descent.
        validation_split : float in [0, 1) (a Python or NumPy number)
            Fraction of the data, taken from the end before shuffling, held
            out for ``val_*`` metrics: the first ``floor(n * (1 - validation_split))``
            rows train, as in Keras.  Ignored if ``validation_data`` is given.
        validation_data : tuple (X_val, y_val) or (X_val, y_val, w_val)
        shuffle : bool
            Shuffle the training rows before each epoch.  With a ``seed``, the orders
            come from one stream per ``compile``, which every ``fit`` call continues:
            the same calls on a model of the same seed repeat the same orders.
        callbacks : Callback or list of Callback
            Their ``on_train_end`` gets the last epoch's logs (``None`` if none ran).
        verbose : {0, 1, 2, True, False, "auto"}
            0 silent, 1 a progress bar per epoch, 2 one line per epoch
            (``False`` is 0; ``True`` and ``"auto"`` are 1, as in Keras).
        sample_weight : array-like, (n_samples,), optional
            Per-row loss weights; each batch loss is a weighted mean, and a batch
            whose weights add up to zero has loss 0 and no gradient (the optimizer
            still takes its step).  The epoch's ``loss`` is the weighted mean over
            its rows, as ``evaluate`` and ``val_loss`` compute it.
        class_weight : dict {class index: weight}, optional
            As Keras's: each training row weighs its class's weight (a class
            left out weighs 1); the class is the label, the argmax of a one-hot
            row, or ``y > 0.5`` for one output.  Classification losses only, not
            together with ``sample_weight``; validation rows are not weighted.
        first_layer : {"auto", "dense", "sparse"}
            How the first layer reads a dense ``X``: ``"dense"``, a matrix
            product over every value; ``"sparse"``, converted once to CSR
            (with a dense ``validation_data`` X) and read value by stored
            value, which pays only for mostly-zero X; ``"auto"`` counts X's
            non-zeros and picks sparse below 3/4 of the crossover density
            measured for the backend and the first layer's width
            (``fastnn._first_layer.CROSSOVERS``; on the NumPy backend only for a
            large first layer), in a fit of enough epochs to earn the conversion
            back (``PAYBACK_UNIT_EPOCHS``).  On the Cython backend MNIST-like
            input (19 % non-zero) goes sparse from 128 units.
            With a ``Normalization`` layer (which makes X dense) ``"auto"``
            is dense and ``"sparse"`` an error.  Sparse X always trains
            sparse (``"dense"`` is an error).  ``history.params["first_layer"]``
            says which ran; results agree within float rounding either way.

        Returns
        -------
        History
            Also stored as ``model.history``, even if training is interrupted.

        Raises
        ------
        RuntimeError
            At once, before anything changes, if a ``fit`` of this model is already
            running (in another thread, or the one whose callback called this).
            ``predict`` and ``evaluate`` may run in other threads during a fit.
        """
        with one_fit_at_a_time(self, "model"):
            self._require_compiled("fit")
            dtype = DTYPES[self.dtype]
            # Every argument is checked before the model changes (built, its target
            # normalizer adapted): a call that raises leaves the model as it was.
            X = check.check_X(X, self._n_inputs(), dtype, accept_sparse=True, precise=self._keeps_X)
            normalized = self.input_normalizer is not None
            _first_layer.check(first_layer, X, normalized)
            if not self.built:
                if X.shape[1] == 0:
                    raise ValueError(f"X: expected at least 1 feature column, got shape {X.shape}")
                self._check_input_dim(X.shape[1])
            y = check.check_y(y, self.loss, self.output_dim, X.shape[0], dtype, precise=self._keeps_y)
            w = check.check_sample_weight(sample_weight, X.shape[0], dtype)
            epochs = check.check_int("epochs", epochs, 0)
            initial_epoch = check.check_int("initial_epoch", initial_epoch, 0)
            verbose = check_verbose(verbose)
            shuffle = check_shuffle(shuffle)
            callbacks = check_callbacks(callbacks)
            X, y, w, val = split_validation(self, X, y, w, validation_split, validation_data, X.shape[1])
            w = check.class_weights(class_weight, y, self.loss, self.output_dim, w, dtype)
            bs = check.check_batch_size(batch_size, X.shape[0])
            if not self.built:
                self.build(X.shape[1])
            if not self.optimizer.built:
                self.optimizer.build(self._params)
            if self.target_normalizer is not None and not self.target_normalizer.adapted:
                self.target_normalizer.adapt(y)  # the training rows only: validation stays unseen
            X, y = self._standardize(X, y)
            if val is not None:
                val = (*self._standardize(*val[:2]), val[2])
            X, val, first_layer = _first_layer.apply(first_layer, X, val, self.backend, normalized,
                                                     self.layers[0].W.size, max(epochs - initial_epoch, 0))
            return run_epochs(self, X, y, w, val, bs, epochs, initial_epoch, shuffle, callbacks, verbose,
                              first_layer)

    def _check_input_dim(self, n_in):
        """Raise what ``build(n_in)`` would for this input width, without building."""
        if not self.layers:
            raise ValueError("layers: the model has no layers; add Dense layers first")
        n_in = check.check_int("input_dim", n_in, 1)
        first = self.layers[0]
        if first.input_dim is not None and first.input_dim != n_in:
            raise ValueError(f"input_dim: layer expects {first.input_dim} inputs, got {n_in}")
        return n_in

    def _param_shapes(self, n_in):
        """The parameters' shapes, in ``get_weights`` order, of the model built for ``n_in`` inputs."""
        shapes = []
        for layer in self.layers:
            shapes.append((n_in, layer.linear_units))
            if layer.use_bias:
                shapes.append((layer.linear_units,))
            n_in = layer.units
        return shapes

    # ---------------------------------------------------- forward / inference
    def _require_target_statistics(self):
        """target_normalization's statistics come from the first ``fit`` (its targets)."""
        if not self.target_normalizer.adapted:
            raise ValueError("target_normalizer: no statistics yet; target_normalization learns them from the "
                             "targets of the first fit(), so call fit() first (or adapt(y) on "
                             "model.target_normalizer)")

    def _n_inputs(self):
        """The input width, if known (from the layers or an adapted Normalization)."""
        if self.built:
            return self.input_dim
        return None if self.input_normalizer is None else self.input_normalizer.n_features

    @property
    def _keeps_X(self) -> bool:
        """Whether ``check_X`` keeps float64 input for ``_standardize`` (which standardizes
        it before the cast to a float32 model's dtype, keeping large offsets precise)."""
        return self.input_normalizer is not None

    @property
    def _keeps_y(self) -> bool:
        """As ``_keeps_X``, for the targets and target normalization."""
        return self.target_normalizer is not None

    def _standardize(self, X, y=None):
        """Checked ``X`` (and ``y``) with the model's normalizers applied: new arrays of
        the model's dtype where a normalizer applies, the same arrays otherwise."""
        dtype = DTYPES[self.dtype]
        if self.input_normalizer is not None:
            if isinstance(X, SparseInput):
                raise TypeError("X: a sparse matrix cannot go through the Normalization layer (centering "
                                "makes it dense); scale it without centering first (e.g. scikit-learn's "
                                "MaxAbsScaler) and drop the Normalization layer, or pass X.toarray()")
            self.input_normalizer._require_adapted("input_normalizer")
            check.check_finite(X, "X")  # the caller's NaN is in X itself, not made by the layer
            X = self.input_normalizer.transform(X, dtype)
            check.check_finite(X, "X (after the Normalization layer)")
        if y is not None and self.target_normalizer is not None:
            self._require_target_statistics()
            y = self.target_normalizer.transform(y, dtype)
            check.check_finite(y, "y (after target normalization)")
        return X, y

    @property
    def _dense_stack(self) -> bool:
        """Every layer is a plain ``Dense``: the compiled whole-epoch/whole-input kernels apply."""
        return all(type(layer) is layers_mod.Dense for layer in self.layers)

    def _workspace(self, n):
        """Per-layer buffers for batches of up to ``n`` rows, allocated once per size and
        per calling thread: threads that predict with one model at once never share a
        buffer (no lock is needed)."""
        key = (threading.get_ident(), n)
        ws = self._workspaces.get(key)
        if ws is None:
            if len(self._workspaces) > 8:
                self._workspaces.clear()  # a thread using a dropped list keeps its own reference
            dtype = DTYPES[self.dtype]
            ws = self._workspaces[key] = [layer.workspace(n, dtype) for layer in self.layers]
        return ws

    def _forward(self, Xb, ws):
        return reference.forward(self._kernels, self.layers, Xb, ws)

    def _chunks(self, X, batch_size):
        n = X.shape[0]
        bs = 4096 if batch_size is None else check.check_batch_size(batch_size, n)
        bs = min(bs, n)
        full = self._workspace(bs)
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            ws = full if stop - start == bs else [w.rows(stop - start) for w in full]
            Xb = X.batch(np.arange(start, stop, dtype=np.int64)) if isinstance(X, SparseInput) else X[start:stop]
            yield start, stop, self._forward(Xb, ws), ws

    def predict(self, X, batch_size=None, verbose=0, *, output="activations"):
        """Outputs of the last layer, ``(n_samples, n_outputs)`` of the model's dtype
        (class probabilities for a softmax output; in the targets' original
        units with ``target_normalization``).

        ``output="logits"`` gives the last layer's pre-activations instead
        (``A @ W + b``, before its activation; standardized units with
        ``target_normalization``)."""
        self._require_built("predict")
        if output not in ("activations", "logits"):
            raise ValueError(f"output: expected 'activations' or 'logits', got {output!r}")
        # A layer with a linear output (Maxout, a linear Dense) already returns its logits.
        logits = output == "logits" and self.layers[-1].output_activation().code != _kernels.LINEAR
        fused = hasattr(self._kernels, "predict_rows") and self._dense_stack
        X = check.check_X(X, self.input_dim, DTYPES[self.dtype], finite=not fused, accept_sparse=True,
                          precise=self._keeps_X)
        X, _ = self._standardize(X)
        fused = fused and not isinstance(X, SparseInput)
        out = np.empty((X.shape[0], self.output_dim), DTYPES[self.dtype])
        if fused:
            self._predict_rows(X, batch_size, out, logits)
        else:
            for start, stop, A, ws in self._chunks(X, batch_size):
                out[start:stop] = ws[-1].Z if logits else A
        if self.target_normalizer is not None and output == "activations":
            self._require_target_statistics()
            self.target_normalizer.inverse_transform(out, out=out)
        return out

    def _predict_rows(self, X, batch_size, out, logits=False):
        """``predict`` in one call to the backend's ``predict_rows`` (which also checks
        that X is finite, in the same pass)."""
        bs = 4096 if batch_size is None else check.check_batch_size(batch_size, X.shape[0])
        ws = self._workspace(min(bs, X.shape[0]))
        empty = np.empty(0, out.dtype)
        layers = self.layers
        acts, alphas = [l.activation.code for l in layers], [l.activation.alpha for l in layers]
        if logits:
            acts[-1], alphas[-1] = _kernels.LINEAR, 0.0
        sparse_below = _first_layer.predict_sparse_below(self.backend, *layers[0].W.shape)
        finite = self._kernels.predict_rows(
            X, [l.W for l in layers], [l.b if l.use_bias else empty for l in layers],
            acts, alphas, [w.Z for w in ws], [w.A for w in ws], out, sparse_below=sparse_below)
        if not finite:
            check.check_finite(X, "X")  # raises the usual error
            raise RuntimeError("predict_rows reported a non-finite X that check_finite found finite")

    def evaluate(self, X, y, batch_size=None, sample_weight=None, verbose=0):
        """Loss and metrics on ``(X, y)``: ``{"loss": ..., "<metric>": ...}``
        (on standardized targets with ``target_normalization``, as in training)."""
        self._require_built("evaluate")
        self._require_compiled("evaluate")
        dtype = DTYPES[self.dtype]
        X = check.check_X(X, self.input_dim, dtype, accept_sparse=True, precise=self._keeps_X)
        y = check.check_y(y, self.loss, self.output_dim, X.shape[0], dtype, precise=self._keeps_y)
        w = check.check_sample_weight(sample_weight, X.shape[0], dtype)
        return self._evaluate(*self._standardize(X, y), w, batch_size)

    def _evaluate(self, X, y, w, batch_size, interrupt=None):
        """``evaluate`` on checked and standardized arrays; ``interrupt.check()`` runs
        between chunks."""
        totals = dict.fromkeys(["loss"] + [name for name, _ in self.metrics], 0.0)
        weight_sum = 0.0
        for start, stop, A, _ in self._chunks(X, batch_size):
            if interrupt is not None:
                interrupt.check()
            wb = None if w is None else w[start:stop]
            chunk_weight = float(stop - start) if wb is None else float(wb.sum(dtype=np.float64))
            totals["loss"] += chunk_weight * self._kernels.loss_value(self.loss.code, A, y[start:stop], wb)
            for name, metric in self.metrics:
                totals[name] += (stop - start) * metric(y[start:stop], A)
            weight_sum += chunk_weight
        n = X.shape[0]
        return {name: (total / weight_sum if name == "loss" else total / n) for name, total in totals.items()}

    def _loss_and_gradients(self, Xb, yb, wb, ws):
        """Forward and backward pass on one batch: fills every layer's ``dW``/``db``
        and returns the batch loss (computed before any update)."""
        return reference.loss_and_gradients(self._kernels, self.layers, self.loss.code, Xb, yb, wb, ws)

    # ------------------------------------------------------------- weights
    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters in Keras order ``[W1, b1, W2, b2, ...]``;
        ``W`` is ``(n_in, n_out)``, ``b`` is ``(n_out,)``."""
        self._require_built("get_weights")
        return [p.copy() for p in self._params]

    def set_weights(self, weights) -> None:
        """Overwrite the parameters (same order and shapes as ``get_weights``)."""
        refuse_during_fit_elsewhere(self, "model", "set_weights()")
        weights = list(weights)
        n_in = None  # an unbuilt model is built for the first array's rows, once all are checked
        if not self.built and self.layers and weights:
            first = np.asarray(weights[0])
            if first.ndim == 2:
                n_in = self._check_input_dim(first.shape[0])
        if n_in is None:
            self._require_built("set_weights")
        shapes = [p.shape for p in self._params] if n_in is None else self._param_shapes(n_in)
        if len(weights) != len(shapes):
            raise ValueError(f"weights: expected {len(shapes)} arrays ({shapes}), got {len(weights)}")
        arrays = []
        for i, (value, shape) in enumerate(zip(weights, shapes)):
            arr = check._as_numeric_array(value, f"weights[{i}]")
            if arr.shape != shape:
                raise ValueError(f"weights[{i}]: expected shape {shape}, got {arr.shape}")
            arr = check.cast(arr, DTYPES[self.dtype], f"weights[{i}]")  # 1e39 for float32 is an error, not inf
            check.check_finite(arr, f"weights[{i}]")
            arrays.append(arr)
        if n_in is not None:
            self.build(n_in)
        for arr, p in zip(arrays, self._params):
            p[...] = arr

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> None:
        """Print one row per layer: type, output shape, parameter count."""
        rows = [("Layer (type)", "Output Shape", "Param #", "Activation")]
        if self.input_normalizer is not None:
            rows.append(("normalization (Normalization)", f"(None, {self._n_inputs() or '?'})", "0", "standardize"))
        for i, layer in enumerate(self.layers):
            act = layer.output_activation().name if isinstance(layer, layers_mod.Dense) else f"max of {layer.pieces}"
            rows.append((f"{type(layer).__name__.lower()}_{i} ({type(layer).__name__})",
                         f"(None, {layer.units})", f"{layer.count_params():,}", act))
        widths = [max(len(r[c]) for r in rows) + 2 for c in range(4)]
        line = "=" * sum(widths)
        print_fn(f'Model: "{self.name}"  (backend {self.backend}, {self.dtype})')
        print_fn(line)
        for i, row in enumerate(rows):
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)))
            print_fn(line if i == 0 else "-" * sum(widths))
        if self.target_normalizer is not None:
            print_fn(f"Targets standardized in training; predict() de-normalizes "
                     f"({'adapted' if self.target_normalizer.adapted else 'adapted by the first fit'})")
        print_fn(f"Total params: {self.count_params():,}" + ("" if self.built else " (not built)"))

    # ---------------------------------------------------------- persistence
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "backend": self.backend,
            "dtype": self.dtype,
            "seed": self.seed,
            "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in self.layers],
            "input_normalization": _normalizer_config(self.input_normalizer),
            "target_normalization": _normalizer_config(self.target_normalizer),
        }

    @classmethod
    def from_config(cls, config: dict, backend=None) -> "Sequential":
        norm = config.get("input_normalization")
        model = cls(
            ([] if norm is None else [Normalization(axis=norm["axis"])])
            + [layers_mod.deserialize(c) for c in config["layers"]],
            backend=backend or config.get("backend", "auto"),
            dtype=config.get("dtype", "float32"),
            seed=config.get("seed"),
            name=config.get("name", "sequential"),
            target_normalization=config.get("target_normalization") is not None,
        )
        return model

    def save(self, path) -> None:
        """Write the model (config, weights, compile settings and optimizer
        state) to one ``.fastnn`` file, atomically; see ``fastnn.load_model``."""
        save_model(self, path)

    def export_onnx(self, path) -> None:
        """Write the network (weights as initializers, a dynamic batch dimension,
        the model's dtype) to an ONNX file at ``path``, atomically; needs
        ``pip install "fastnn[onnx]"``.  See ``fastnn.onnx``."""
        self._require_built("export_onnx")
        from . import _onnx  # imports the onnx package, so only here

        _onnx.export_onnx(self, path)

    def __repr__(self):
        layers = self.layers if self.input_normalizer is None else [self.input_normalizer, *self.layers]
        extra = ", target_normalization=True" if self.target_normalizer is not None else ""
        return f"Sequential({layers!r}, backend={self.backend!r}, dtype={self.dtype!r}{extra})"


def _normalizer_config(norm):
    """A normalizer's entry in the model config: its axis, the shape of its statistics
    (``None`` before ``adapt``) and then the count of values they are from, or ``None``
    for no normalizer."""
    if norm is None:
        return None
    if norm.mean is None:
        return {**norm.get_config(), "statistics_shape": None}
    return {**norm.get_config(), "statistics_shape": list(norm.mean.shape), "count": int(norm.count)}

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

Layout
------
* ``_base``: ``_BaseMLP``, the parameters, training loop and inference
  shared by the two estimators.
* ``_estimators``: ``MLPClassifier`` and ``MLPRegressor``.
* ``_persistence``: ``save`` / ``load`` without pickle, and the pickled
  state (``__getstate__`` / ``__setstate__``).
* ``_dask``: the thread budget of a task in a Dask worker, and
  ``partial_fit_blocks`` (out-of-core training over row blocks).
"""
from ._dask import partial_fit_blocks
from ._estimators import MLPClassifier, MLPRegressor
from ._persistence import load

__all__ = ["MLPClassifier", "MLPRegressor", "load", "partial_fit_blocks"]

# Public names keep their public home: in pickles, repr and help().
for _obj in (MLPClassifier, MLPRegressor, load, partial_fit_blocks):
    _obj.__module__ = __name__
del _obj

"""What ``train_batches`` receives and returns.

``TrainingPlan`` is built once per ``fit`` (``fastnn._training.make_plan``):
the data, the layers' parameters, gradients and workspaces, the loss, and the
optimizer's rule, hyper-parameters and state.  Every array in it is owned by
the model and updated in place; nothing in it is allocated per batch.
``TrainResult`` is what one call of ``train_batches`` reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class OptimizerHyper(NamedTuple):
    """Hyper-parameters of the update rules (those a rule does not use are 0 or False)."""

    momentum: float = 0.0  # SGD with (Nesterov) momentum
    rho: float = 0.0  # RMSprop's decay of the mean square
    beta_1: float = 0.0  # Adam's decay of the first moment
    beta_2: float = 0.0  # Adam's decay of the second moment
    epsilon: float = 0.0  # AdaGrad, RMSprop, Adam
    # AdaGrad, RMSprop, Adam: epsilon inside the square root, ``g / sqrt(s + eps)``
    # (the teaching material's form), instead of Keras's ``g / (sqrt(s) + eps)``.
    epsilon_inside_sqrt: bool = False
    # SGD with (Nesterov) momentum: the classic form ``h = mu h + g; p -= lr h``
    # instead of Keras's ``v = mu v - lr g; p += v``.
    classic_momentum: bool = False


class TrainResult(NamedTuple):
    """Totals over the batches one ``train_batches`` call completed.

    ``loss_sum`` adds ``m * batch_loss`` for a batch of ``m`` rows (the loss
    before that batch's update, as ``loss_value``), or with sample weights the
    batch's weight sum times its loss (a batch whose weights add up to zero has
    loss 0 and no gradient), so that ``loss_sum`` over the weights seen is the
    sample-weighted mean, as ``evaluate`` computes it; ``correct`` counts correct
    predictions (one output: ``a > 0.5`` equals ``y > 0.5``; several: the
    argmax of the output equals the label, or the argmax of a one-hot ``Y``);
    ``squared_error`` and ``absolute_error`` add each row's mean squared and
    mean absolute error (0 for integer labels).

    ``ends_finite`` is ``False`` only when the call ran the epoch's last batch
    (``first_batch + batches == ceil(n / B)``) and then a parameter, an
    optimizer slot or an output of that batch under the updated weights is
    not finite: each batch's loss is checked before its update, which cannot
    see what the epoch's last update did (``step.ends_finite``).
    """

    batches: int
    loss_sum: float
    correct: float
    squared_error: float
    absolute_error: float
    ends_finite: bool

    @property
    def totals(self) -> tuple:
        """``(loss_sum, correct, squared_error, absolute_error)``."""
        return self.loss_sum, self.correct, self.squared_error, self.absolute_error


@dataclass(eq=False)
class TrainingPlan:
    """Everything a minibatch step needs, for a stack of ``L`` layers.

    Layer ``l`` maps ``n_l`` to ``n_{l+1}`` columns; ``B`` is ``batch_size``.

    Data (read): ``X (n, n_0)``; ``Y`` int64 ``(n,)`` labels (sparse
    categorical cross-entropy) or ``(n, k)`` floats; ``SW (n,)`` sample weights
    or ``None``; ``perm (n,)`` int64, the row order of this epoch: batch ``j``
    holds rows ``perm[j*B : min((j+1)*B, n)]`` (the last may be short).

    Layers (tuples of length ``L``): ``Ws[l] (n_l, n_{l+1})`` and ``bs[l]
    (n_{l+1},)`` (a zero-length array for a layer without bias) are updated in
    place; ``dWs``/``dbs`` receive the gradients; ``acts`` int64 ``(L,)``
    activation codes, ``alphas`` and ``l2s`` float64 ``(L,)``.  ``layers`` and
    ``workspaces`` are the model's layer objects and their buffers, which only
    the NumPy reference step uses (it also runs ``Maxout``); ``acts``/``Zs``/
    ``As``/``dZs`` describe ``Dense`` layers and are empty tuples otherwise.

    Workspaces (written): ``Zs[l]``, ``As[l]``, ``dZs[l]`` ``(B, n_{l+1})``;
    ``Xb (B, n_0)``, ``Yb`` (``B`` rows like ``Y``), ``SWb (B,)`` or ``None``.

    Loss and optimizer: ``loss`` and ``optimizer`` codes
    (``fastnn._kernels.codes``), ``hyper`` its ``OptimizerHyper``.  State,
    tuples like ``Ws``/``bs``: ``S1W``/``S1b`` hold the velocity (momentum,
    Nesterov; ``h``, not scaled by the rate, with ``classic_momentum``), the accumulator (AdaGrad), the mean square (RMSprop) or Adam's
    ``m``; ``S2W``/``S2b`` Adam's ``v``; zero-length arrays where unused.
    """

    # data
    X: np.ndarray
    Y: np.ndarray
    SW: np.ndarray | None
    perm: np.ndarray
    batch_size: int
    # layers
    layers: tuple
    workspaces: list
    Ws: tuple
    bs: tuple
    dWs: tuple
    dbs: tuple
    acts: np.ndarray
    alphas: np.ndarray
    l2s: np.ndarray
    Zs: tuple
    As: tuple
    dZs: tuple
    # batch buffers
    Xb: np.ndarray
    Yb: np.ndarray
    SWb: np.ndarray | None
    # loss and optimizer
    loss: int
    optimizer: int
    hyper: OptimizerHyper
    S1W: tuple
    S1b: tuple
    S2W: tuple
    S2b: tuple
    # threads the next train_batches call may split its batches across: 0 for the
    # backend's own choice, 1 for one thread (set per call by fit's thread policy;
    # the Cython loop keeps its own policy, thread_state)
    threads: int = 0
    # a compiled loop's own thread policy, kept for the plan's lifetime (one fit) and
    # never beyond it: float64 (5,), the Cython loop's busy-machine fallback
    # (deadline of its one-thread stretch, that stretch's length, the fastest seconds
    # per batch on the threads, the last stretch's seconds per batch not yet compared
    # with the threads, seconds run on the threads; zeros: none yet)
    thread_state: np.ndarray = field(default_factory=lambda: np.zeros(5))
    # a backend's loop compiled for this plan's model, by backend name (Numba: the
    # entry point of its specialization, see numba/_training.py)
    compiled: dict = field(default_factory=dict)

    @property
    def n_batches(self) -> int:
        """Batches in one epoch."""
        return -(-self.X.shape[0] // self.batch_size)

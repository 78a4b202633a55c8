"""Optimizers: hyperparameters and per-parameter state; the update math is a
backend kernel that changes parameters and state in place, in one pass.

``learning_rate`` is a number or a schedule (``fastnn.schedules``); the rate
for update ``t`` (0-based, ``optimizer.iterations``) is ``schedule(t)``.
"""
from __future__ import annotations

import copy as copy_module
import warnings

import numpy as np

from . import _kernels as K
from . import schedules
from ._kernels import aligned
from ._kernels.plan import OptimizerHyper
from ._kernels.step import update_parameter
from ._registry import Configurable, Registry


def _check(name, value, low=0.0, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = not np.isfinite(value) or value < low or (low_open and value == low)
    if high is not None:
        bad = bad or value > high or (high_open and value == high)
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a value in {lo}{low}, {high if high is not None else 'inf'}{hi}, got {value}")
    return value


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


class Optimizer(Configurable):
    """Base class.  Subclasses set ``n_slots`` and implement ``kernel_spec``."""

    n_slots = 0
    nonnegative_slots: tuple[int, ...] = ()  # slots that accumulate squared gradients (>= 0)
    _config_keys: tuple[str, ...] = ()

    def __init__(self, learning_rate=0.01):
        self.learning_rate = learning_rate
        self.iterations = 0
        self._slots: list[list[np.ndarray]] | None = None
        self._owner = None  # weak reference to the model that compiled it (Sequential.compile)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_owner", None)  # a copy belongs to no model (and weak references do not pickle)
        return state

    # -- learning rate ---------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate: a float, or the schedule it follows."""
        if isinstance(self._schedule, schedules.Constant):
            return self._schedule.initial_learning_rate
        return self._schedule

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
            _check("learning_rate", value, low_open=True)
            value = float(value)
        self._schedule = schedules.get(value)

    def current_learning_rate(self) -> float:
        """The rate the next update will use."""
        return float(self._schedule(self.iterations))

    def fresh_copy(self):
        """A new optimizer with these settings and learning rate (a schedule or a Python
        function too, which a config cannot hold), and no state."""
        copy = type(self)(learning_rate=0.01, **{key: getattr(self, key) for key in self._config_keys})
        copy.learning_rate = copy_module.deepcopy(self.learning_rate)  # a function is shared, not copied
        return copy

    def get_config(self):
        lr = self.learning_rate
        if schedules.holds_function(lr):
            lr = self.current_learning_rate()
            warnings.warn(f"learning_rate: a Python function cannot be stored in a config or a model "
                          f"file; its current value {lr:g} is stored as a constant rate", UserWarning,
                          stacklevel=2)
        config = {"learning_rate": lr if isinstance(lr, float) else schedules.registry.serialize(lr)}
        config.update({key: getattr(self, key) for key in self._config_keys})
        return config

    # -- state -------------------------------------------------------------
    def build(self, params: list[np.ndarray]) -> None:
        """Create zeroed state for ``params`` (called by ``Sequential.compile``/``fit``)."""
        self._slots = [[self._initial_slot(p) for _ in range(self.n_slots)] for p in params]

    def _initial_slot(self, p):
        return aligned.zeros(p.shape, p.dtype)

    @property
    def built(self) -> bool:
        return self._slots is not None

    def get_state(self) -> list[np.ndarray]:
        """Flat list of state arrays, parameter by parameter (for saving)."""
        return [s for slots in (self._slots or []) for s in slots]

    def set_state(self, arrays: list[np.ndarray], iterations: int) -> None:
        expected = sum(len(s) for s in (self._slots or []))
        if len(arrays) != expected:
            raise ValueError(f"optimizer state: expected {expected} arrays, got {len(arrays)}")
        it = iter(arrays)
        for slots in self._slots:
            for slot in slots:
                value = next(it)
                if value.shape != slot.shape:
                    raise ValueError(f"optimizer state: expected shape {slot.shape}, got {value.shape}")
                slot[...] = value
        self.iterations = int(iterations)

    # -- update ------------------------------------------------------------
    def apply(self, kernels, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """One update of every parameter in place, with the current learning rate."""
        lr = self._schedule(self.iterations)
        self.iterations += 1
        rule, hyper = self.kernel_spec()
        for p, g, slots in zip(params, grads, self._slots):
            update_parameter(kernels, rule, hyper, p, g, lr, self.iterations,
                             slots[0] if len(slots) > 0 else None, slots[1] if len(slots) > 1 else None)

    def kernel_spec(self) -> tuple[int, OptimizerHyper]:
        """``(rule, hyper)``: the update rule's code (``fastnn._kernels.codes``)
        and its hyper-parameters, as the kernels receive them."""
        raise NotImplementedError

    def learning_rates(self, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` with the rates of the next ``len(out)`` updates."""
        if isinstance(self._schedule, schedules.Constant):
            out.fill(self._schedule.initial_learning_rate)
        else:
            for j in range(out.shape[0]):
                out[j] = self._schedule(self.iterations + j)
        return out


registry = Registry("optimizer", Optimizer)


@registry.register("sgd", "gd")
class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum.

    ``momentum_form="keras"`` (the default, as Keras and TensorFlow):
    ``v = momentum * v - lr * g; p += v`` (Nesterov: ``p += momentum * v - lr * g``).
    ``momentum_form="classic"`` (the teaching material's, and PyTorch's):
    ``h = momentum * h + g; p -= lr * h`` (Nesterov, as PyTorch:
    ``p -= lr * (g + momentum * h)`` after updating ``h``).  The two forms take
    the same steps while the rate is constant; with a schedule the Keras
    velocity keeps the rates it was built with, the classic one is rescaled by
    the current rate.  Full-batch, mini-batch or stochastic GD is chosen by
    ``fit(batch_size=...)``.
    """

    _config_keys = ("momentum", "nesterov", "momentum_form")
    MOMENTUM_FORMS = ("keras", "classic")

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 momentum_form: str = "keras"):
        super().__init__(learning_rate)
        self.momentum = _check("momentum", momentum, 0.0, 1.0)  # [0, 1], as Keras and scikit-learn
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected a bool, got {type(nesterov).__name__} {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0, got momentum=0")
        self.nesterov = bool(nesterov)
        if not isinstance(momentum_form, str) or momentum_form not in self.MOMENTUM_FORMS:
            raise ValueError(f"momentum_form: expected one of {list(self.MOMENTUM_FORMS)}, "
                             f"got {momentum_form!r}")
        self.momentum_form = momentum_form

    @property
    def n_slots(self):
        return 1 if self.momentum > 0 else 0


    def kernel_spec(self):
        code = K.OPT_SGD if self.momentum == 0 else (K.OPT_NESTEROV if self.nesterov else K.OPT_MOMENTUM)
        return code, OptimizerHyper(momentum=self.momentum,
                                    classic_momentum=self.momentum_form == "classic")


@registry.register("adagrad")
class Adagrad(Optimizer):
    """``acc += g^2; p -= lr * g / (sqrt(acc) + epsilon)``; ``acc`` starts at
    ``initial_accumulator_value`` (Keras's defaults).

    ``epsilon_inside_sqrt=True``: ``p -= lr * g / sqrt(acc + epsilon)``; with
    ``initial_accumulator_value=0.0`` this is the teaching material's AdaGrad.
    """

    n_slots = 1
    nonnegative_slots = (0,)
    _config_keys = ("initial_accumulator_value", "epsilon", "epsilon_inside_sqrt")

    def __init__(self, learning_rate=0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 epsilon_inside_sqrt: bool = False):
        super().__init__(learning_rate)
        self.initial_accumulator_value = _check("initial_accumulator_value", initial_accumulator_value)
        self.epsilon = _check("epsilon", epsilon, low_open=True)
        self.epsilon_inside_sqrt = _check_bool("epsilon_inside_sqrt", epsilon_inside_sqrt)

    def _initial_slot(self, p):
        return aligned.full(p.shape, self.initial_accumulator_value, p.dtype)


    def kernel_spec(self):
        return K.OPT_ADAGRAD, OptimizerHyper(epsilon=self.epsilon,
                                             epsilon_inside_sqrt=self.epsilon_inside_sqrt)


@registry.register("rmsprop")
class RMSprop(Optimizer):
    """``ms = rho * ms + (1 - rho) * g^2; p -= lr * g / (sqrt(ms) + epsilon)`` (Keras).

    ``epsilon_inside_sqrt=True``: ``p -= lr * g / sqrt(ms + epsilon)`` (the
    teaching material's form).
    """

    n_slots = 1
    nonnegative_slots = (0,)
    _config_keys = ("rho", "epsilon", "epsilon_inside_sqrt")

    def __init__(self, learning_rate=0.001, rho: float = 0.9, epsilon: float = 1e-7,
                 epsilon_inside_sqrt: bool = False):
        super().__init__(learning_rate)
        self.rho = _check("rho", rho, 0.0, 1.0, high_open=True)
        self.epsilon = _check("epsilon", epsilon, low_open=True)
        self.epsilon_inside_sqrt = _check_bool("epsilon_inside_sqrt", epsilon_inside_sqrt)


    def kernel_spec(self):
        return K.OPT_RMSPROP, OptimizerHyper(rho=self.rho, epsilon=self.epsilon,
                                             epsilon_inside_sqrt=self.epsilon_inside_sqrt)


@registry.register("adam")
class Adam(Optimizer):
    """Adam with bias correction folded into the step size (Keras):
    ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``.

    ``epsilon_inside_sqrt=True`` (the teaching material's form): with the
    bias-corrected moments ``m_hat = m / (1 - b1^t)`` and ``v_hat = v / (1 - b2^t)``,
    ``p -= lr * m_hat / sqrt(v_hat + epsilon)``.
    """

    n_slots = 2
    nonnegative_slots = (1,)  # v; m is slot 0
    _config_keys = ("beta_1", "beta_2", "epsilon", "epsilon_inside_sqrt")

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 epsilon_inside_sqrt: bool = False):
        super().__init__(learning_rate)
        self.beta_1 = _check("beta_1", beta_1, 0.0, 1.0, high_open=True)
        self.beta_2 = _check("beta_2", beta_2, 0.0, 1.0, high_open=True)
        self.epsilon = _check("epsilon", epsilon, low_open=True)
        self.epsilon_inside_sqrt = _check_bool("epsilon_inside_sqrt", epsilon_inside_sqrt)


    def kernel_spec(self):
        return K.OPT_ADAM, OptimizerHyper(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                                          epsilon_inside_sqrt=self.epsilon_inside_sqrt)


def get(identifier) -> Optimizer:
    return registry.get(identifier, "optimizer")

"""Learning-rate schedules.

A schedule maps the optimizer's update count ``step`` (0 for the first
update) to a learning rate, and is accepted wherever a learning rate is.
``decay_steps`` sets the unit of ``t = step / decay_steps``: pass the number
of batches per epoch to decay per epoch instead of per update.  Parameters
must be finite; a rate too large for a float is inf (``fit`` then stops as on a
diverging loss) and one too small is 0.
"""
from __future__ import annotations

import math

from ._registry import Configurable, Registry


class LearningRateSchedule(Configurable):
    def __call__(self, step: int) -> float:
        raise NotImplementedError


registry = Registry("learning-rate schedule", LearningRateSchedule)


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return value


def _power(base, exponent):
    """``base ** exponent`` for positive ``base``: inf where the float overflows."""
    try:
        return base ** exponent
    except OverflowError:
        return math.inf


@registry.register("constant")
class Constant(LearningRateSchedule):
    """η(t) = η0."""

    _config_keys = ("initial_learning_rate",)

    def __init__(self, initial_learning_rate: float = 0.01):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)

    def __call__(self, step):
        return float(self.initial_learning_rate)


@registry.register("step", "factor")
class StepDecay(LearningRateSchedule):
    """η(t) = η0 · factor^floor(step / decay_steps)  (multiply by ``factor`` every ``decay_steps``)."""

    _config_keys = ("initial_learning_rate", "factor", "decay_steps")

    def __init__(self, initial_learning_rate: float = 0.01, factor: float = 0.5, decay_steps: int = 1000):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.factor = _positive("factor", factor)
        self.decay_steps = _positive("decay_steps", decay_steps)

    def __call__(self, step):
        return self.initial_learning_rate * _power(self.factor, math.floor(step / self.decay_steps))


@registry.register("exponential")
class ExponentialDecay(LearningRateSchedule):
    """η(t) = η0 · α^t with t = step / decay_steps."""

    _config_keys = ("initial_learning_rate", "decay_rate", "decay_steps")

    def __init__(self, initial_learning_rate: float = 0.01, decay_rate: float = 0.96, decay_steps: int = 1):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.decay_rate = _positive("decay_rate", decay_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)

    def __call__(self, step):
        return self.initial_learning_rate * _power(self.decay_rate, step / self.decay_steps)


@registry.register("polynomial")
class PolynomialDecay(LearningRateSchedule):
    """η(t) = η0 / (1 + α t)^β with t = step / decay_steps."""

    _config_keys = ("initial_learning_rate", "alpha", "power", "decay_steps")

    def __init__(self, initial_learning_rate: float = 0.01, alpha: float = 0.01, power: float = 1.0,
                 decay_steps: int = 1):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.alpha = _positive("alpha", alpha)
        self.power = _positive("power", power)
        self.decay_steps = _positive("decay_steps", decay_steps)

    def __call__(self, step):
        return self.initial_learning_rate / _power(1 + self.alpha * step / self.decay_steps, self.power)


@registry.register("cosine")
class CosineDecay(LearningRateSchedule):
    """η(t) = ηT + (η0 − ηT)/2 · (1 + cos(π t / T)) for t < T = decay_steps, then ηT."""

    _config_keys = ("initial_learning_rate", "decay_steps", "final_learning_rate")

    def __init__(self, initial_learning_rate: float = 0.01, decay_steps: int = 1000,
                 final_learning_rate: float = 0.0):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        if isinstance(final_learning_rate, bool) or not isinstance(final_learning_rate, (int, float)) \
                or not 0 <= final_learning_rate <= initial_learning_rate:
            raise ValueError(
                f"final_learning_rate: expected a value in [0, {initial_learning_rate}], "
                f"got {final_learning_rate!r}"
            )
        self.final_learning_rate = final_learning_rate

    def __call__(self, step):
        t = min(step, self.decay_steps)
        eta0, etaT = self.initial_learning_rate, self.final_learning_rate
        return etaT + (eta0 - etaT) / 2 * (1 + math.cos(math.pi * t / self.decay_steps))


@registry.register("warmup")
class Warmup(LearningRateSchedule):
    """Linear warmup from ``initial_learning_rate`` to ``schedule(0)`` over
    ``warmup_steps`` updates, then ``schedule(step - warmup_steps)``."""

    def __init__(self, schedule=None, warmup_steps: int = 100, initial_learning_rate: float = 0.0):
        self.schedule = get(schedule if schedule is not None else "constant")
        self.warmup_steps = _positive("warmup_steps", warmup_steps)
        if isinstance(initial_learning_rate, bool) or not isinstance(initial_learning_rate, (int, float)) \
                or not 0 <= initial_learning_rate < math.inf:
            raise ValueError(f"initial_learning_rate: expected a finite number >= 0, got {initial_learning_rate!r}")
        self.initial_learning_rate = float(initial_learning_rate)

    def get_config(self):
        return {
            "schedule": registry.serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
        }

    def __call__(self, step):
        if step < self.warmup_steps:
            target = self.schedule(0)
            return self.initial_learning_rate + (target - self.initial_learning_rate) * step / self.warmup_steps
        return self.schedule(step - self.warmup_steps)


class FunctionSchedule(LearningRateSchedule):
    """η(t) = f(t) for a plain Python function ``f(step) -> float`` (as Keras and
    PyTorch's ``LambdaLR`` accept).  Model files hold no code, so a saved model
    keeps the rate ``f`` gave last, as a constant (with a warning)."""

    def __init__(self, function):
        if not callable(function):
            raise TypeError(f"learning_rate: expected a callable f(step) -> float, got {function!r}")
        self.function = function

    def __call__(self, step):
        value = self.function(step)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value <= 0:
            raise ValueError(f"learning_rate: the function gave {value!r} for step {step}; "
                             f"expected a finite number > 0")
        return float(value)

    def __repr__(self):
        return f"FunctionSchedule({getattr(self.function, '__name__', self.function)!r})"


def holds_function(schedule) -> bool:
    """Whether ``schedule`` is or wraps a ``FunctionSchedule``, which no config holds
    (a ``Warmup`` in front of a function): it is saved as the rate it gives now."""
    if isinstance(schedule, FunctionSchedule):
        return True
    return isinstance(schedule, Warmup) and holds_function(schedule.schedule)


def get(identifier) -> LearningRateSchedule:
    """A schedule from a name, a schedule, a config dict, a number (constant) or a
    function ``f(step) -> float``."""
    if isinstance(identifier, (int, float)) and not isinstance(identifier, bool):
        return Constant(identifier)
    if callable(identifier) and not isinstance(identifier, (LearningRateSchedule, type)):
        return FunctionSchedule(identifier)
    return registry.get(identifier, "learning_rate")

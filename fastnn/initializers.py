"""Weight initializers.

An initializer is called as ``init(shape, dtype, rng, fan_in, fan_out)`` and
returns a new array; ``rng`` is the model's ``numpy.random.Generator`` seeded
from ``Sequential(seed=...)``, so initial weights are reproducible.
"""
from __future__ import annotations

import numpy as np

from ._registry import Configurable, Registry


class Initializer(Configurable):
    def __call__(self, shape, dtype, rng: np.random.Generator, fan_in: int, fan_out: int):
        raise NotImplementedError


registry = Registry("initializer", Initializer)


def _finite(name, value, low=-np.inf) -> float:
    """``value`` as a finite float ``>= low``; ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value >= low):
        raise ValueError(f"{name}: expected a finite number{f' >= {low:g}' if low > -np.inf else ''}, got {value}")
    return value


@registry.register("zeros")
class Zeros(Initializer):
    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return np.zeros(shape, dtype)


@registry.register("ones")
class Ones(Initializer):
    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return np.ones(shape, dtype)


@registry.register("constant")
class Constant(Initializer):
    _config_keys = ("value",)

    def __init__(self, value: float = 0.0):
        self.value = _finite("value", value)

    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return _representable(np.full(shape, self.value), dtype, "value")


@registry.register("random_normal", "normal")
class RandomNormal(Initializer):
    _config_keys = ("mean", "stddev")

    def __init__(self, mean: float = 0.0, stddev: float = 0.05):
        self.mean, self.stddev = _finite("mean", mean), _finite("stddev", stddev, low=0.0)

    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return _representable(rng.normal(self.mean, self.stddev, shape), dtype, "mean, stddev")


@registry.register("random_uniform", "uniform")
class RandomUniform(Initializer):
    _config_keys = ("minval", "maxval")

    def __init__(self, minval: float = -0.05, maxval: float = 0.05):
        self.minval = _finite("minval", minval)
        self.maxval = _finite("maxval", maxval)
        if self.maxval < self.minval:
            raise ValueError(f"maxval: expected >= minval ({self.minval}), got {self.maxval}")
        if not np.isfinite(self.maxval - self.minval):
            raise ValueError(f"minval, maxval: expected a range of finite width, got [{self.minval}, {self.maxval}]")

    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return _representable(rng.uniform(self.minval, self.maxval, shape), dtype, "minval, maxval")


def _representable(values, dtype, names):
    """``values`` as ``dtype``; ``ValueError`` naming ``names`` if one overflows it."""
    with np.errstate(over="ignore"):
        out = values.astype(dtype)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{names}: initial weights up to {float(np.max(np.abs(values))):g} overflow "
                         f"{np.dtype(dtype).name} (largest {float(np.finfo(dtype).max):g})")
    return out


class _VarianceScaling(Initializer):
    """Normal with std sqrt(scale / fan) or uniform on ±sqrt(3 scale / fan)."""

    scale: float
    fan: str  # "in" or "avg"
    distribution: str  # "normal" or "uniform"

    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        fan = fan_in if self.fan == "in" else (fan_in + fan_out) / 2
        variance = self.scale / max(1.0, fan)
        if self.distribution == "normal":
            return rng.normal(0.0, np.sqrt(variance), shape).astype(dtype)
        limit = np.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape).astype(dtype)


@registry.register("glorot_normal", "xavier_normal")
class GlorotNormal(_VarianceScaling):
    """Normal, std sqrt(2 / (fan_in + fan_out))."""

    scale, fan, distribution = 1.0, "avg", "normal"


@registry.register("glorot_uniform", "xavier_uniform")
class GlorotUniform(_VarianceScaling):
    """Uniform on ±sqrt(6 / (fan_in + fan_out))."""

    scale, fan, distribution = 1.0, "avg", "uniform"


@registry.register("he_normal")
class HeNormal(_VarianceScaling):
    """Normal, std sqrt(2 / fan_in)."""

    scale, fan, distribution = 2.0, "in", "normal"


@registry.register("he_uniform")
class HeUniform(_VarianceScaling):
    """Uniform on ±sqrt(6 / fan_in)."""

    scale, fan, distribution = 2.0, "in", "uniform"


@registry.register("lecun_normal")
class LecunNormal(_VarianceScaling):
    """Normal, std sqrt(1 / fan_in)."""

    scale, fan, distribution = 1.0, "in", "normal"


def get(identifier, argname: str = "initializer") -> Initializer:
    return registry.get(identifier, argname)

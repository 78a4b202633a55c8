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
        self.value = float(value)

    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return np.full(shape, self.value, dtype)


@registry.register("random_normal", "normal")
class RandomNormal(Initializer):
    _config_keys = ("mean", "stddev")

    def __init__(self, mean: float = 0.0, stddev: float = 0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return rng.normal(self.mean, self.stddev, shape).astype(dtype)


@registry.register("random_uniform", "uniform")
class RandomUniform(Initializer):
    _config_keys = ("minval", "maxval")

    def __init__(self, minval: float = -0.05, maxval: float = 0.05):
        self.minval, self.maxval = float(minval), float(maxval)
        if self.maxval < self.minval:
            raise ValueError(f"maxval: expected >= minval ({minval}), got {maxval}")

    def __call__(self, shape, dtype, rng, fan_in, fan_out):
        return rng.uniform(self.minval, self.maxval, shape).astype(dtype)


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

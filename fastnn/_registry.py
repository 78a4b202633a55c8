"""One registry per kind of thing: activations, losses, metrics, optimizers,
initializers, learning-rate schedules.

``get(identifier)`` accepts a registered name (``"relu"``), an instance of the
kind (returned as is), or a serialized ``{"class_name": ..., "config": ...}``
dict; anything else raises an error that lists the valid names.
"""
from __future__ import annotations

from typing import Any, Callable


class Registry:
    """Maps lower-case names (and aliases) to classes of one kind.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages (``"activation"``).
    base : type
        The base class; instances of it pass through ``get`` unchanged.
    """

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self._classes: dict[str, type] = {}
        self._canonical: dict[type, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[type], type]:
        """Class decorator: register ``cls`` under ``name`` and ``aliases``."""

        def decorator(cls: type) -> type:
            for key in (name, *aliases):
                if key in self._classes:
                    raise ValueError(f"{self.kind} {key!r} is registered twice")
                self._classes[key] = cls
            self._canonical[cls] = name
            cls.name = name
            return cls

        return decorator

    def names(self) -> list[str]:
        """All registered names and aliases, sorted."""
        return sorted(self._classes)

    def name_of(self, obj: Any) -> str:
        return self._canonical[type(obj)]

    def _lookup(self, name: str, argname: str) -> type:
        key = name.lower()
        if key not in self._classes:
            raise ValueError(
                f"{argname}: unknown {self.kind} {name!r}; expected one of {self.names()}"
            )
        return self._classes[key]

    def get(self, identifier: Any, argname: str | None = None) -> Any:
        """Resolve ``identifier`` to an instance of this registry's kind."""
        argname = argname or self.kind
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            return self._lookup(identifier, argname)()
        if isinstance(identifier, dict) and "class_name" in identifier:
            cls = self._lookup(identifier["class_name"], argname)
            return cls(**identifier.get("config", {}))
        raise TypeError(
            f"{argname}: expected a {self.kind} name (one of {self.names()}) or a "
            f"{self.base.__module__.split('.')[-1]}.{self.base.__name__} instance, "
            f"got {type(identifier).__name__} {identifier!r}"
        )

    def serialize(self, obj: Any) -> dict:
        """``{"class_name": name, "config": obj.get_config()}``, the inverse of ``get``."""
        return {"class_name": self.name_of(obj), "config": obj.get_config()}


class Configurable:
    """Mixin: ``get_config`` returns the constructor arguments named in ``_config_keys``."""

    _config_keys: tuple[str, ...] = ()

    def get_config(self) -> dict:
        return {key: getattr(self, key) for key in self._config_keys}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(repr(self))

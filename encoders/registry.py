"""Name -> encoder class, and one shared instance per (name, model) per process."""

from __future__ import annotations

import threading

from encoders.base import Encoder

_CLASSES: dict[str, type[Encoder]] = {}
_INSTANCES: dict[tuple[str, str | None], Encoder] = {}
_LOCK = threading.Lock()


def register(cls: type[Encoder]) -> type[Encoder]:
    _CLASSES[cls.name] = cls
    return cls


def available() -> list[str]:
    return sorted(_CLASSES)


def encoder_class(name: str) -> type[Encoder]:
    try:
        return _CLASSES[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; available: {', '.join(available())}") from None


def get_encoder(name: str, model: str | None = None) -> Encoder:
    """The process-wide instance, so a model is loaded once per worker or API process."""
    key = (name, model or None)
    with _LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = encoder_class(name)(model=model)
        return _INSTANCES[key]

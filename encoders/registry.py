"""Name -> class, and one shared instance per (name, model) per process, for encoders and extractors."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from core.config import get_settings
from encoders.base import Encoder, LazyModel

T = TypeVar("T", bound=LazyModel)


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}
        self._instances: OrderedDict[tuple[str, str | None], T] = OrderedDict()
        self._lock = threading.Lock()

    def register(self, cls: type[T]) -> type[T]:
        self._classes[cls.name] = cls
        return cls

    def available(self) -> list[str]:
        return sorted(self._classes)

    def cls(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(self.available())
            raise KeyError(f"unknown {self.kind} {name!r}; available: {known}") from None

    def get(self, name: str, model: str | None = None) -> T:
        """The process-wide instance, so a model is loaded once per worker or API process; at most
        `max_loaded_models` are kept, the least recently used dropped (callers holding it keep theirs)."""
        key = (name, model or None)
        with self._lock:
            if key in self._instances:
                self._instances.move_to_end(key)
            else:
                self._instances[key] = self.cls(name)(model=model)
                while len(self._instances) > get_settings().models.max_loaded_models:
                    self._instances.popitem(last=False)
            return self._instances[key]


ENCODERS: Registry[Encoder] = Registry("encoder")
register = ENCODERS.register
available = ENCODERS.available
get_encoder = ENCODERS.get

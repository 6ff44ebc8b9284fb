"""The small contract every encoder follows: declare what it is, load lazily once, encode in batches."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from core.config import Settings, get_settings
from core.errors import MmsearchError


class EncoderError(MmsearchError):
    """An input the encoder cannot handle (corrupt, empty, wrong kind): the document ends `failed`."""


class LazyModel(ABC):
    """A named model loaded on first use, once per process, under a lock (API threads and worker batches
    share one instance). Subclasses set `name`/`input_kind` and implement `_load`."""

    name: ClassVar[str]  # registry key (for encoders also the vector field name)
    input_kind: ClassVar[str]  # what a document feeds it at index time: "text" | "image" | "audio"

    def __init__(self, model: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.model_ref = model or self.default_model()
        self._model: Any = None
        self._lock = threading.Lock()

    def default_model(self) -> str:
        return ""

    @property
    def version(self) -> str:
        """`name@model`: stored on every document so vectors of two models are never mixed unknowingly."""
        return f"{self.name}@{self.model_ref}" if self.model_ref else self.name

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    @abstractmethod
    def _load(self) -> Any: ...


class Encoder(LazyModel):
    """One model behind one vector field `vectors.<name>`; subclasses implement `_load`, `dims`, `_encode`."""

    query_kinds: ClassVar[frozenset[str]]  # what a search can give it: {"text"}, {"text", "image"}, ...
    similarity: ClassVar[str] = "cosine"  # the engine's vector similarity (core.engine maps it)
    element_type: ClassVar[str] = "float"  # "float" | "bit"
    # Reads text through a tokenizer with a window (`window`, `token_spans`): long texts get passages.
    splits_passages: ClassVar[bool] = False

    @property
    @abstractmethod
    def dims(self) -> int: ...

    @abstractmethod
    def _encode(self, items: Sequence[Any], kind: str) -> np.ndarray: ...

    def encode(self, items: Sequence[Any], kind: str | None = None) -> np.ndarray:
        """Encode a batch of `kind` inputs (default: the index-time kind) to an (n, dims) array."""
        kind = kind or self.input_kind
        if kind != self.input_kind and kind not in self.query_kinds:
            raise EncoderError(f"encoder {self.name!r} does not accept {kind!r} input")
        if not items:
            if self.element_type == "bit":
                return np.zeros((0, self.dims // 8), dtype=np.int8)
            return np.zeros((0, self.dims), dtype=np.float32)
        return self._encode(items, kind)

    def field_value(self, vector: np.ndarray) -> Any:
        """One row of `encode` as the engine takes it: floats, or packed bits as signed bytes (the one form
        both Elasticsearch's `bit` dense_vector and OpenSearch's binary knn_vector accept)."""
        if self.element_type == "bit":
            return [int(b) for b in np.asarray(vector).astype(np.int8)]
        return [round(float(x), 6) for x in vector]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model_ref,
            "version": self.version,
            "dims": self.dims,
            "similarity": self.similarity,
            "element_type": self.element_type,
            "input": self.input_kind,
            "query_kinds": sorted(self.query_kinds),
        }

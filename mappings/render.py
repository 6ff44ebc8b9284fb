"""Render the physical-index body of a collection from `collection.json` and its encoders."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from core.access import READERS_FIELD
from core.config import Settings
from core.engine import Engine
from encoders.base import Encoder


@cache
def _template() -> dict[str, Any]:
    return json.loads(resources.files("mappings").joinpath("collection.json").read_text())


def field_names(path: str = "") -> list[str]:
    """The template's fields at the top level (`path` "") or under one object or nested field (e.g.
    `passages`), so a fetch can name what it keeps instead of what it drops."""
    properties = _template()["mappings"]["properties"]
    for part in filter(None, path.split(".")):
        properties = properties[part]["properties"]
    return list(properties)


def source_properties() -> dict[str, Any]:
    """The mapping of `source.*`: additive, so an index made before a field existed can be given it."""
    return copy.deepcopy(_template()["mappings"]["properties"]["source"])


def added_properties() -> dict[str, Any]:
    """Fields later versions added to the template, as a mapping update any older index can take
    (additive): `source.*` of crawls, `readers` of document permissions and `ingest.claimed_by` of
    healing; putting them again is a no-op where they are already mapped."""
    properties = _template()["mappings"]["properties"]
    claimed_by = properties["ingest"]["properties"]["claimed_by"]  # not all of `ingest`: its `encoders`
    # is `flattened` in the template, which only `index_body` turns into the engine's own object type
    added = {"source": properties["source"], READERS_FIELD: properties[READERS_FIELD]}
    return copy.deepcopy({**added, "ingest": {"properties": {"claimed_by": claimed_by}}})


def index_body(
    collection: str,
    encoders: list[Encoder],
    settings: Settings,
    engine: Engine,
    *,
    meta: dict[str, Any] | None = None,
    passages: bool = True,
) -> dict[str, Any]:
    """Settings + mappings for one physical index on `engine`; `_meta` records what the vectors mean.

    `passages`: long texts get nested passages with a vector per text encoder (`_meta.passages` names
    those encoders; `[]` = off). A `meta` carried from an older generation keeps its choice."""
    carried = dict(meta or {})  # a copy: the caller's dict stays as it was
    enabled = passages and carried.pop("passages", None) != []
    split_by = [enc for enc in encoders if enc.splits_passages] if enabled else []
    body = copy.deepcopy(_template())
    body["settings"]["index"].update(
        number_of_shards=settings.engine.number_of_shards,
        number_of_replicas=settings.engine.number_of_replicas,
        **engine.index_settings(),
    )
    mappings = body["mappings"]
    for name, field in mappings["properties"].items():
        if field.get("type") == "flattened":  # the template's key/value fields
            mappings["properties"][name] = engine.object_type()
    mappings["properties"]["ingest"]["properties"]["encoders"] = engine.object_type()
    mappings["properties"]["vectors"]["properties"] = _vector_fields(engine, encoders)
    passage_vectors = mappings["properties"]["passages"]["properties"]["vectors"]
    passage_vectors["properties"] = _vector_fields(engine, split_by, nested=True)
    mappings["_meta"] = {
        "collection": collection,
        "encoders": {enc.name: enc.describe() for enc in encoders},
        "profiles": {},
        **carried,
        "passages": [enc.name for enc in split_by],
    }
    return body


def _vector_fields(engine: Engine, encoders: list[Encoder], *, nested: bool = False) -> dict[str, Any]:
    """One vector field per encoder, in the engine's dialect (quantised HNSW for floats)."""
    return {
        enc.name: engine.vector_mapping(enc.dims, enc.similarity, enc.element_type, nested=nested)
        for enc in encoders
    }

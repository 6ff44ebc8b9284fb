"""Kibana / OpenSearch Dashboards saved objects for the collections, generated from their mappings.

A data view over the collections' aliases, saved searches (failed documents with their reasons, documents
pending longer than N minutes, one per modality) and a dashboard (documents by status and by modality over
`@timestamp`, ingest rate per collection, failures by reason, encoder versions in use). The objects are
aggregation-based `visualization`s, which Kibana 8/9 and OpenSearch Dashboards both render, so one
generator serves both; only the migration stamps differ.

The engine matters where the mapping does: `ingest.encoders` is `flattened` on Elasticsearch (a terms
aggregation over it counts every `encoder@model` value) but `flat_object` on OpenSearch, whose keys can be
queried but not aggregated (checked on OpenSearch 3.5: terms on the root field is refused, terms on a key
returns no buckets at all). There the "encoder versions" chart is a `filters` aggregation: per encoder, the
documents carrying each version the collections' `_meta` names, and those carrying any other version.

`check_fields` reads back every field the objects reference and checks it against a mapping (the one the
product renders, or a live collection's), so the objects cannot drift from the index layout unseen.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from media.filetypes import SUPPORTED

KIBANA, OPENSEARCH_DASHBOARDS = "kibana", "opensearch-dashboards"
FLAVOURS = (KIBANA, OPENSEARCH_DASHBOARDS)
DATA_VIEW_ID = "mmsearch-collections"
TIME_FIELD = "@timestamp"
MODALITIES = sorted({modality for modality, _, _ in SUPPORTED.values()})
HIDDEN_SOURCE = ("vectors", "search_stemmed")  # vectors are long arrays; the stemmed copy repeats content
DOC_COLUMNS = ["doc_id", "collection", "title", "modality", "ingest.status", "ingest.encoders"]

# Kibana 9 imports objects of 8.x and later, so the stamps say 8.0.0 (its import migrates them up);
# OpenSearch Dashboards is a 7.10 fork and refuses objects newer than the migrations it knows.
_KIBANA_STAMP = {"coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.0.0"}
_OSD_MIGRATIONS = {
    "index-pattern": "7.6.0",
    "search": "7.9.3",
    "visualization": "7.10.0",
    "dashboard": "7.9.3",
}
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


@dataclass(frozen=True)
class Options:
    """What the generated objects depend on besides the mapping."""

    title: str  # the data view's index pattern: comma-separated aliases, or `<prefix>*`
    pending_minutes: int = 15
    flavour: str = KIBANA
    engine: str = "elasticsearch"  # the cluster's: decides how the encoder versions are counted
    encoder_versions: tuple[tuple[str, str], ...] = ()  # (encoder, `name@model`) the collections use


def _saved(flavour: str, kind: str, obj_id: str, attributes: dict[str, Any], *, refs: list[dict]) -> dict:
    stamp = _KIBANA_STAMP if flavour == KIBANA else {"migrationVersion": {kind: _OSD_MIGRATIONS[kind]}}
    return {"id": obj_id, "type": kind, "attributes": attributes, "references": refs, **stamp}


def _search_source(query: str) -> dict[str, Any]:
    source = {"query": {"query": query, "language": "kuery"}, "filter": [], "indexRefName": _INDEX_REF}
    return {"searchSourceJSON": json.dumps(source)}


def _data_view_ref() -> list[dict[str, str]]:
    return [{"name": _INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}]


def data_view(options: Options) -> dict[str, Any]:
    attributes = {
        "title": options.title,
        "name": "mmsearch collections",
        "timeFieldName": TIME_FIELD,
        "sourceFilters": json.dumps([{"value": field} for field in HIDDEN_SOURCE]),
        "fieldFormatMap": json.dumps({"source.size": {"id": "bytes"}}),
        "runtimeFieldMap": "{}",
        "fields": "[]",
        "allowNoIndex": True,
    }
    return _saved(options.flavour, "index-pattern", DATA_VIEW_ID, attributes, refs=[])


def saved_searches(options: Options) -> list[dict[str, Any]]:
    """(id, title, KQL, columns) of each saved search, newest documents first."""
    specs = [
        (
            "mmsearch-failed",
            "mmsearch: failed documents",
            'ingest.status : "failed"',
            ["doc_id", "collection", "modality", "ingest.error", "ingest.attempts", "updated_at"],
        ),
        (
            "mmsearch-pending-stale",
            f"mmsearch: pending longer than {options.pending_minutes} minutes",
            f'ingest.status : "pending" and ingest.queued_at < "now-{options.pending_minutes}m"',
            ["doc_id", "collection", "modality", "ingest.queued_at", "ingest.attempts"],
        ),
    ]
    specs += [
        (f"mmsearch-modality-{m}", f"mmsearch: {m} documents", f'modality : "{m}"', DOC_COLUMNS)
        for m in MODALITIES
    ]
    return [
        _saved(
            options.flavour,
            "search",
            obj_id,
            {
                "title": title,
                "description": "",
                "columns": columns,
                "sort": [[TIME_FIELD, "desc"]],
                "kibanaSavedObjectMeta": _search_source(query),
            },
            refs=_data_view_ref(),
        )
        for obj_id, title, query, columns in specs
    ]


def _count() -> dict[str, Any]:
    return {"id": "1", "enabled": True, "type": "count", "params": {}, "schema": "metric"}


def _over_time(agg_id: str = "2") -> dict[str, Any]:
    params = {"field": TIME_FIELD, "interval": "auto", "min_doc_count": 1, "extended_bounds": {}}
    return {"id": agg_id, "enabled": True, "type": "date_histogram", "params": params, "schema": "segment"}


def _terms(agg_id: str, field: str, schema: str, size: int = 10) -> dict[str, Any]:
    params = {"field": field, "size": size, "order": "desc", "orderBy": "1", "otherBucket": True}
    return {"id": agg_id, "enabled": True, "type": "terms", "params": params, "schema": schema}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _version_filters(options: Options) -> dict[str, Any]:
    """Documents per encoder version as Lucene queries on the `flat_object` keys, which OpenSearch can
    match but not aggregate: each known version, then each encoder's other versions."""
    buckets = [
        {
            "input": {"query": f"ingest.encoders.{enc}:{_quoted(version)}", "language": "lucene"},
            "label": version,
        }
        for enc, version in options.encoder_versions
    ]
    for enc in sorted({enc for enc, _ in options.encoder_versions}):
        known = " OR ".join(_quoted(v) for e, v in options.encoder_versions if e == enc)
        query = f"ingest.encoders.{enc}:* AND NOT ingest.encoders.{enc}:({known})"
        buckets.append({"input": {"query": query, "language": "lucene"}, "label": f"{enc}: other versions"})
    if not buckets:  # no collection yet: nothing to name
        buckets = [{"input": {"query": 'ingest.status:"encoded"', "language": "lucene"}, "label": "encoded"}]
    return {"id": "2", "enabled": True, "type": "filters", "params": {"filters": buckets}, "schema": "bucket"}


def visualizations(options: Options) -> list[dict[str, Any]]:
    """(id, title, vis type, aggs, query) of each chart; vis params fall back to the type's defaults."""
    by_version = (
        _version_filters(options)
        if options.engine == "opensearch"
        else _terms("2", "ingest.encoders", "bucket", size=50)
    )
    specs = [
        ("mmsearch-by-status", "Documents by status", "histogram",
         [_count(), _over_time(), _terms("3", "ingest.status", "group")], ""),
        ("mmsearch-by-modality", "Documents by modality", "histogram",
         [_count(), _over_time(), _terms("3", "modality", "group")], ""),
        ("mmsearch-ingest-rate", "Ingest rate per collection", "line",
         [_count(), _over_time(), _terms("3", "collection", "group")], ""),
        ("mmsearch-failure-reasons", "Failures by reason", "table",
         [_count(), _terms("2", "ingest.error.keyword", "bucket", size=20)], 'ingest.status : "failed"'),
        ("mmsearch-encoder-versions", "Encoder versions in use", "table",
         [_count(), by_version], 'ingest.status : "encoded"'),
    ]  # fmt: skip
    return [
        _saved(
            options.flavour,
            "visualization",
            obj_id,
            {
                "title": title,
                "description": "",
                "visState": json.dumps({"title": title, "type": vis_type, "aggs": aggs, "params": {}}),
                "uiStateJSON": "{}",
                "version": 1,
                "kibanaSavedObjectMeta": _search_source(query),
            },
            refs=_data_view_ref(),
        )
        for obj_id, title, vis_type, aggs, query in specs
    ]


def dashboard(options: Options, panels: list[dict[str, Any]]) -> dict[str, Any]:
    """Charts two a row (24 of 48 columns), then the saved searches full width below them."""
    charts = [p for p in panels if p["type"] != "search"]
    searches = [p for p in panels if p["type"] == "search"]
    grid = [{"x": (i % 2) * 24, "y": (i // 2) * 15, "w": 24} for i in range(len(charts))]
    top = (len(charts) + 1) // 2 * 15
    grid += [{"x": 0, "y": top + i * 15, "w": 48} for i in range(len(searches))]
    layout, refs = [], []
    for i, (obj, cell) in enumerate(zip([*charts, *searches], grid, strict=True)):
        layout.append(
            {
                "version": "8.0.0" if options.flavour == KIBANA else "7.10.2",
                "type": obj["type"],
                "gridData": {**cell, "h": 15, "i": str(i + 1)},
                "panelIndex": str(i + 1),
                "embeddableConfig": {},
                "panelRefName": f"panel_{i}",
            }
        )
        refs.append({"name": f"panel_{i}", "type": obj["type"], "id": obj["id"]})
    attributes = {
        "title": "mmsearch ingest",
        "description": "Documents by status and modality, ingest rate, failures and encoder versions",
        "panelsJSON": json.dumps(layout),
        "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
        "timeRestore": True,
        "timeFrom": "now-24h",
        "timeTo": "now",
        "refreshInterval": {"pause": False, "value": 60000},
        "kibanaSavedObjectMeta": {
            "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}})
        },
        "version": 1,
    }
    return _saved(options.flavour, "dashboard", "mmsearch-ingest", attributes, refs=refs)


def saved_objects(options: Options) -> list[dict[str, Any]]:
    """Every object, referenced ones before those that reference them (the import order)."""
    if options.flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {options.flavour!r}; use one of {', '.join(FLAVOURS)}")
    if options.pending_minutes < 1:
        raise ValueError("pending_minutes must be at least 1")
    searches, charts = saved_searches(options), visualizations(options)
    panels = [*charts, *[s for s in searches if s["id"] in ("mmsearch-failed", "mmsearch-pending-stale")]]
    return [data_view(options), *searches, *charts, dashboard(options, panels)]


def to_ndjson(objects: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)


def data_view_title(aliases: list[str], prefix: str) -> str:
    """The collections' aliases (a wildcard over `<prefix>*` would also count a re-encode's next
    generation twice); `<prefix>*` only when there is no collection yet."""
    return ",".join(sorted(aliases)) or f"{prefix}*"


# --- what the objects reference, checked against a mapping ----------------------------------------

DATE = frozenset({"date", "date_nanos"})
NUMERIC = frozenset({"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"})
AGGREGATABLE = DATE | NUMERIC | {"keyword", "constant_keyword", "flattened", "boolean", "ip", "version"}
# OpenSearch's key/value type: the root and its keys match queries and show as columns, never aggregate
LEAF = AGGREGATABLE | {"text", "match_only_text", "wildcard", "flat_object"}
# usage -> field types a visualisation can use for it
USABLE = {
    "time": DATE,
    "date_histogram": DATE,
    "terms": AGGREGATABLE,
    "sort": AGGREGATABLE - {"flattened"},
    "range": DATE | NUMERIC,
    "query": LEAF,
    "column": LEAF,
    "format": LEAF,
}
_KQL_CLAUSE = re.compile(r"([\w.@]+)\s*(<=|>=|<|>|:)")


@dataclass(frozen=True)
class FieldUse:
    object_id: str
    field: str
    usage: str


def _kql_fields(object_id: str, search_source: str) -> list[FieldUse]:
    return _query_fields(object_id, json.loads(search_source).get("query", {}).get("query", ""))


def _query_fields(object_id: str, query: str) -> list[FieldUse]:
    """Fields of a KQL or Lucene query (`field : value`, `field < value`); quoted values are skipped."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    return [
        FieldUse(object_id, field, "query" if op == ":" else "range")
        for field, op in _KQL_CLAUSE.findall(unquoted)
    ]


def referenced_fields(objects: list[dict[str, Any]]) -> list[FieldUse]:
    """Every field the generated objects name, with what they use it for, read back from the objects."""
    uses: list[FieldUse] = []
    for obj in objects:
        oid, attrs = obj["id"], obj["attributes"]
        if obj["type"] == "index-pattern":
            uses.append(FieldUse(oid, attrs["timeFieldName"], "time"))
            uses += [FieldUse(oid, f, "format") for f in json.loads(attrs.get("fieldFormatMap") or "{}")]
        if obj["type"] == "search":
            uses += [FieldUse(oid, f, "column") for f in attrs["columns"]]
            uses += [FieldUse(oid, f, "sort") for f, _ in attrs["sort"]]
        if obj["type"] == "visualization":
            for agg in json.loads(attrs["visState"])["aggs"]:
                if "field" in agg["params"]:
                    uses.append(FieldUse(oid, agg["params"]["field"], agg["type"]))
                for bucket in agg["params"].get("filters", []):
                    uses += _query_fields(oid, bucket["input"]["query"])
        source = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if source:
            uses += _kql_fields(oid, source)
    return uses


def field_types(mapping: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """path -> (type, inside a `nested` field) for every field of a mapping, multi-fields included."""
    found: dict[str, tuple[str, bool]] = {}

    def walk(properties: dict[str, Any], prefix: str, nested: bool) -> None:
        for name, spec in properties.items():
            path, kind = f"{prefix}{name}", spec.get("type", "object")
            found[path] = (kind, nested)
            for sub, sub_spec in spec.get("fields", {}).items():
                found[f"{path}.{sub}"] = (sub_spec.get("type", "object"), nested)
            walk(spec.get("properties", {}), f"{path}.", nested or kind == "nested")

    walk(mapping.get("properties", {}), "", False)
    return found


def _resolve(types: dict[str, tuple[str, bool]], field: str) -> tuple[str, bool] | None:
    if field in types:
        return types[field]
    parts = field.split(".")
    for i in range(len(parts) - 1, 0, -1):  # a key under a flattened field is a keyword
        parent = types.get(".".join(parts[:i]))
        if parent and parent[0] == "flattened":
            return "keyword", parent[1]
        if parent and parent[0] == "flat_object":  # queried like a keyword, but no doc values
            return "flat_object", parent[1]
    return None


def check_fields(objects: list[dict[str, Any]], mapping: dict[str, Any]) -> list[str]:
    """Problems, one line each: a referenced field missing from `mapping`, or of a type its use can't take
    (a date histogram over a keyword, terms over analysed text or inside a nested field, ...)."""
    types = field_types(mapping)
    problems = []
    for use in referenced_fields(objects):
        found = _resolve(types, use.field)
        if found is None:
            problems.append(f"{use.object_id}: {use.field} is not in the mapping")
            continue
        kind, nested = found
        aggregates = use.usage in ("terms", "date_histogram", "sort")
        if kind not in USABLE[use.usage] or (nested and aggregates):
            where = " inside a nested field" if nested else ""
            problems.append(f"{use.object_id}: {use.field} is {kind}{where}, {use.usage} cannot use it")
    return problems

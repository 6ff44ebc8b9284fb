"""Render the saved objects for the collections and import them into Kibana or OpenSearch Dashboards.

Both take an ndjson file through `POST /api/saved_objects/_import?overwrite=true` (multipart, field
`file`); they differ in the header that guards against cross-site requests (`kbn-xsrf` / `osd-xsrf`) and
Kibana has spaces (`/s/<space>/api/...`). Importing with `overwrite` makes a re-run update the objects in
place, so `mmsearch kibana install` is also how the data view follows new catalog.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from core.config import Settings
from core.errors import MmsearchError
from core.es import Client, engine_of
from mappings import catalog, index_body
from mappings.kibana import KIBANA, Options, check_fields, data_view_title, saved_objects, to_ndjson

XSRF_HEADER = {KIBANA: "kbn-xsrf", "opensearch-dashboards": "osd-xsrf"}


class KibanaError(MmsearchError):
    """Kibana (or OpenSearch Dashboards) unreachable, or it refused the objects."""

    status = 502


@dataclass
class Rendered:
    objects: list[dict[str, Any]]
    problems: list[str]  # fields the objects use that a collection's mapping lacks or can't serve
    aliases: list[str]


def render(
    es: Client,
    settings: Settings,
    names: list[str] | None = None,
    pending_minutes: int = 15,
    *,
    flavour: str = KIBANA,
) -> Rendered:
    """The objects over `names` (default: every collection), checked against each one's mapping; with no
    collection, over `<prefix>*` and checked against the mapping the product renders for a new one."""
    names = names if names is not None else catalog.list_names(es, settings)
    found = [catalog.get(es, settings, name) for name in names]
    aliases = [c.alias for c in found]
    versions = sorted(
        {(enc, d["version"]) for c in found for enc, d in c.encoders.items() if d.get("version")}
    )
    options = Options(
        data_view_title(aliases, settings.engine.index_prefix),
        pending_minutes,
        flavour,
        engine_of(es).name,
        tuple(versions),
    )
    objects = saved_objects(options)
    problems = []
    for coll in found:
        mapping = es.indices.get_mapping(index=coll.index)[coll.index]["mappings"]
        problems += [f"{coll.name}: {p}" for p in check_fields(objects, mapping)]
    if not found:
        problems += check_fields(objects, index_body("template", [], settings, engine_of(es))["mappings"])
    return Rendered(objects, problems, aliases)


def import_url(url: str, space: str | None) -> str:
    base = url.rstrip("/")
    if space and space != "default":
        base += f"/s/{space}"
    return f"{base}/api/saved_objects/_import?overwrite=true"


def wait_until_up(url: str, timeout: float, auth: tuple[str, str] | None = None) -> None:
    """Poll `/api/status` until it answers 200 (Kibana starts after its Elasticsearch is healthy)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url.rstrip('/')}/api/status", auth=auth, timeout=10).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise KibanaError(f"{url} did not answer /api/status within {timeout:.0f} s")
        time.sleep(2)


def install(
    url: str,
    objects: list[dict[str, Any]],
    flavour: str = KIBANA,
    space: str | None = None,
    *,
    auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Import `objects`, overwriting earlier versions; Kibana's answer, or KibanaError with its reasons."""
    if space and flavour != KIBANA:
        raise KibanaError("spaces are a Kibana feature; OpenSearch Dashboards imports into its tenant")
    files = {"file": ("mmsearch.ndjson", to_ndjson(objects).encode(), "application/ndjson")}
    try:
        resp = requests.post(
            import_url(url, space), files=files, headers={XSRF_HEADER[flavour]: "true"}, auth=auth, timeout=60
        )
    except requests.RequestException as exc:
        raise KibanaError(f"cannot reach {url}: {exc}") from None
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not resp.ok or not body.get("success"):
        reasons = body.get("errors") or body.get("message") or resp.text[:500]
        raise KibanaError(f"import into {url} failed (HTTP {resp.status_code}): {reasons}")
    return body

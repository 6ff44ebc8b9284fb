"""The crawl manifest of a folder: what a collection holds of the files crawled from one root.

The index is the manifest (documents carry `source.{root,path,size,mtime,sha256}`): it survives a lost
local file, is the same from any machine, and can't disagree with what is searchable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Blueprint, Response, request

from core.es import scan
from mappings import collections
from search.api import services
from search.errors import InvalidRequest

bp = Blueprint("manifest", __name__, url_prefix="/v1/collections/<name>/manifest")
FIELDS = ("path", "size", "mtime", "sha256")


@bp.get("")
def manifest(name: str) -> Response:
    """NDJSON, one `{id, path, size, mtime, sha256}` per document crawled from `?root=`, streamed."""
    root = request.args.get("root", "")
    if not root:
        raise InvalidRequest("root is required: the folder whose crawled files to list")
    svc = services()
    collection = collections.CACHE.get(svc.es, svc.settings, name)
    collections.ensure_source_fields(svc.es, collection.index)  # collections older than the crawl
    svc.es.indices.refresh(index=collection.alias)  # read-your-writes for the crawl that asks
    hits = scan(
        svc.es,
        index=collection.alias,
        query={"query": {"term": {"source.root": root}}},
        _source=[f"source.{f}" for f in FIELDS],
        size=2000,
    )

    def lines() -> Iterator[str]:
        for hit in hits:
            source = hit["_source"].get("source", {})
            yield json.dumps({"id": hit["_id"], **{f: source.get(f) for f in FIELDS}}) + "\n"

    return Response(lines(), mimetype="application/x-ndjson")

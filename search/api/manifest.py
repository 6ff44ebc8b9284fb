"""The crawl manifest of a folder: what a collection holds of the files crawled from one root.

The index is the manifest (documents carry `source.{root,path,size,mtime,sha256}`): it survives a lost
local file, is the same from any machine, and can't disagree with what is searchable.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from search.api import principal, services
from search.errors import InvalidRequest

bp = Blueprint("manifest", __name__, url_prefix="/v1/collections/<name>/manifest")


@bp.get("")
def manifest(name: str) -> Response:
    """NDJSON, one `{id, path, size, mtime, sha256}` per document crawled from `?root=`, streamed."""
    root = request.args.get("root", "")
    if not root:
        raise InvalidRequest("root is required: the folder whose crawled files to list")
    entries = services().ingest.manifest(name, root, principal=principal())
    first = next(entries, None)  # a missing collection is a 404 before the stream starts

    def lines():  # noqa: ANN202
        if first is not None:
            yield json.dumps(first) + "\n"
        for entry in entries:
            yield json.dumps(entry) + "\n"

    return Response(lines(), mimetype="application/x-ndjson")

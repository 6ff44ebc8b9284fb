"""The security review's findings (issue 17) that need the real stack: the API under gunicorn (`api_url`)
on real Elasticsearch, Redis and a worker."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest
import requests
from PIL import Image

from client.api import ApiClient
from core.config import Settings
from ingest.service import MAX_PROFILES

pytestmark = pytest.mark.integration


def test_chunked_body_over_the_limit_is_413_and_nothing_indexed(
    api: ApiClient, api_url: str, collection: str, settings: Settings
) -> None:
    """Three NDJSON documents sent chunked past MMSEARCH_MAX_BODY_BYTES: all refused, none cut off."""
    ids = [f"chunked-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    pad = b" " * (settings.limits.max_body_bytes // 2)
    lines = [f'{{"id": "{doc_id}", "text": "chunked {doc_id}"}}'.encode() + pad + b"\n" for doc_id in ids]

    def body() -> Iterator[bytes]:  # a generator: requests sends it with Transfer-Encoding: chunked
        for line in lines:
            for start in range(0, len(line), 1 << 20):
                yield line[start : start + (1 << 20)]

    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/documents",
        data=body(),
        params={"refresh": "true"},
        headers={"Content-Type": "application/x-ndjson"},
        timeout=120,
    )
    assert resp.status_code == 413, resp.text[:500]
    assert resp.json()["error"]["status"] == 413
    for doc_id in ids:
        got = requests.get(f"{api_url}/v1/collections/{collection}/documents/{doc_id}", timeout=30)
        assert got.status_code == 404, doc_id
    # the same NDJSON under the limit, chunked, arrives whole
    small = b"".join(f'{{"id": "{doc_id}", "text": "small"}}\n'.encode() for doc_id in ids)
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/documents",
        data=iter([small[:10], small[10:]]),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert resp.status_code == 202 and resp.json()["indexed"] == 3, resp.text


def test_query_by_example_on_a_missing_collection_is_404(api_url: str) -> None:
    corrupt = b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 100
    resp = requests.post(
        f"{api_url}/v1/collections/no-such-{uuid.uuid4().hex[:8]}/search",
        files={"file": ("x.png", corrupt, "image/png")},
        timeout=60,
    )
    assert resp.status_code == 404, resp.text


def test_huge_integer_in_a_document_is_400(api_url: str, collection: str) -> None:
    body = '{"text": "a", "metadata": {"n": 1' + "0" * 5000 + "}}"
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/documents",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert resp.status_code == 400 and "digits" in resp.json()["error"]["message"], resp.text


def test_profiles_per_collection_are_bounded(api_url: str, collection: str) -> None:
    base = f"{api_url}/v1/collections/{collection}/profiles"
    with requests.Session() as http:
        for i in range(MAX_PROFILES):
            assert http.put(f"{base}/p{i}", json={}, timeout=60).status_code == 201, i
        over = http.put(f"{base}/one-more", json={}, timeout=60)
        assert over.status_code == 409 and str(MAX_PROFILES) in over.json()["error"]["message"]
        assert http.put(f"{base}/p0", json={"num_candidates": 50}, timeout=60).status_code == 200  # replace
        assert http.delete(f"{base}/p1", timeout=60).status_code == 200
        assert http.put(f"{base}/one-more", json={}, timeout=60).status_code == 201


def test_media_responses_carry_cross_origin_resource_policy(api_url: str, collection: str) -> None:
    png = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(png, format="PNG")
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/files",
        files={"file": ("blue.png", png.getvalue(), "image/png")},
        params={"refresh": "wait_for"},
        timeout=120,
    )
    assert resp.status_code == 202, resp.text
    doc = f"{api_url}/v1/collections/{collection}/documents/{resp.json()['files'][0]['id']}"
    for part in ("content", "thumbnail"):
        media = requests.get(f"{doc}/{part}", timeout=60)
        assert media.status_code == 200, part
        assert media.headers["Cross-Origin-Resource-Policy"] == "same-origin", part
        assert media.headers["X-Content-Type-Options"] == "nosniff", part

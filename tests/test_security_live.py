"""The API with keys over real HTTP on real Elasticsearch and Redis: schemathesis from its own OpenAPI
description, inert uploaded content, signed media URLs and deep nesting.

The app runs in a thread of this process (werkzeug) with its own index prefix, so whatever schemathesis
creates can be removed afterwards without touching the collections of other tests on a shared cluster.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
import requests
from PIL import Image
from werkzeug.serving import make_server

from core.config import Settings
from core.es import Client
from search import security
from search.app import create_app

pytestmark = pytest.mark.integration
PREFIX = f"mmsearch-sec{uuid.uuid4().hex[:6]}-"
ADMIN_KEY, ADMIN = security.new_key("admin", "admin")
READ_KEY, READ = security.new_key("reader", "read")


@pytest.fixture(scope="module")
def keyed_url(settings: Settings, services: None, es: Client) -> Iterator[str]:
    live = settings.replace(
        security={"api_keys": [ADMIN, READ], "write_rate_limit": "", "trusted_hosts": []},
        engine={"index_prefix": PREFIX},
    )
    server = make_server("127.0.0.1", 0, create_app(live), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    created = list(es.indices.get(index=f"{PREFIX}*", ignore_unavailable=True, allow_no_indices=True))
    if created:  # deleting by wildcard is refused (destructive_requires_name)
        es.indices.delete(index=",".join(created))


def headers(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed_collection(keyed_url: str) -> str:
    name = "media"
    resp = requests.post(f"{keyed_url}/v1/collections", json={"name": name}, headers=headers(), timeout=120)
    assert resp.status_code == 201, resp.text
    return name


def test_uploaded_html_is_a_sandboxed_download_and_media_urls_are_signed(
    keyed_url: str, keyed_collection: str
) -> None:
    png = io.BytesIO()
    Image.new("RGB", (32, 24), "red").save(png, format="PNG")
    html = b"<html><body><script>alert(document.cookie)</script>page about xsstest</body></html>"
    files = [("file", ("x.html", html, "text/html")), ("file", ("red.png", png.getvalue(), "image/png"))]
    resp = requests.post(
        f"{keyed_url}/v1/collections/{keyed_collection}/files",
        files=files,
        data={"metadata": json.dumps({"tag": "xsstest"})},
        params={"refresh": "wait_for"},
        headers=headers(),
        timeout=120,
    )
    assert resp.status_code == 202, resp.text
    ids = {f["filename"]: f["id"] for f in resp.json()["files"]}
    base = f"{keyed_url}/v1/collections/{keyed_collection}/documents"

    page = requests.get(f"{base}/{ids['x.html']}/content", headers=headers(READ_KEY), timeout=30)
    assert page.status_code == 200 and page.content == html
    assert page.headers["Content-Disposition"].startswith("attachment")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Content-Security-Policy"].startswith("sandbox")
    assert "public" not in page.headers["Cache-Control"] and "private" in page.headers["Cache-Control"]
    image = requests.get(f"{base}/{ids['red.png']}/content", headers=headers(READ_KEY), timeout=30)
    assert image.status_code == 200 and not image.headers.get("Content-Disposition", "").startswith(
        "attachment"
    )

    # hits carry signed links that work without a header (img/audio elements), and only as signed
    found = requests.post(
        f"{keyed_url}/v1/collections/{keyed_collection}/search",
        json={"query": "red png xsstest", "mode": "lexical"},
        headers=headers(READ_KEY),
        timeout=60,
    ).json()
    urls = {hit["id"]: hit["urls"] for hit in found["hits"]}
    thumb = urls[ids["red.png"]]["thumbnail"]
    assert "sig=" in thumb and READ_KEY not in thumb
    signed = requests.get(f"{keyed_url}{thumb}", timeout=30)
    assert signed.status_code == 200 and signed.headers["Content-Type"] == "image/jpeg"
    assert "private" in signed.headers["Cache-Control"]
    assert requests.get(f"{keyed_url}{thumb.replace('sig=', 'sig=0')}", timeout=30).status_code == 401
    assert requests.get(f"{keyed_url}{thumb.split('?')[0]}", timeout=30).status_code == 401


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("documents", {"data": "[" * 5000 + "]" * 5000, "headers": {"Content-Type": "application/json"}}),
        (
            "documents",
            {"data": '{"text": "a"}\n' + "[" * 5000, "headers": {"Content-Type": "application/x-ndjson"}},
        ),
        ("files", {"files": {"file": ("a.txt", b"hello")}, "data": {"metadata": "[" * 5000 + "]" * 5000}}),
        (
            "search",
            {"files": {"file": ("a.txt", b"hello")}, "data": {"request": "{" + '"a":{' * 3000 + "}" * 3001}},
        ),
    ],
)
def test_deep_nesting_answers_400(keyed_url: str, keyed_collection: str, path: str, kwargs: dict) -> None:
    url = f"{keyed_url}/v1/collections/{keyed_collection}/{path}"
    resp = requests.post(url, timeout=60, **{**kwargs, "headers": {**kwargs.get("headers", {}), **headers()}})
    assert resp.status_code == 400, resp.text
    assert "nested too deeply" in resp.json()["error"]["message"] or "JSON" in resp.json()["error"]["message"]


def test_api_conforms_to_its_openapi_description(
    keyed_url: str, keyed_collection: str, es: Client, tmp_path
) -> None:
    """schemathesis from the served description: no server error, no response outside the described schema.

    `{name}` is pinned to a real collection, so the generated requests reach the handlers behind it (ingest,
    search, profiles, jobs) instead of stopping at a 404; deleting it is left to the other tests."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.name" = "{keyed_collection}"\n')
    alias = f"{PREFIX}{keyed_collection}"
    before = es.count(index=alias)["count"]
    argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"]
    argv += [f"{keyed_url}/openapi.json", "--exclude-operation-id", "collections_delete"]
    argv += ["--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "5"]
    argv += ["--header", f"Authorization: Bearer {ADMIN_KEY}", "--seed", "13", "--request-timeout", "120"]
    argv += ["--phases", "examples,fuzzing", "--mode", "positive", "--continue-on-failure"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "Test cases:" in done.stdout and " passed" in done.stdout, done.stdout[-2000:]
    es.indices.refresh(index=alias)
    assert es.count(index=alias)["count"] > before  # its generated documents landed in the pinned collection
    print(done.stdout[-1200:])

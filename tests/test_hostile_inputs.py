"""Hostile input against the live API: every case answers 4xx, or is accepted and ends `encoded`/`failed`
with a reason; none answers 5xx, and the worker still encodes afterwards."""

from __future__ import annotations

import io
import json
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from client.api import ApiClient

pytestmark = pytest.mark.integration

Send = Callable[[str], requests.Response]  # collection URL -> response
Payload = bytes | Callable[[], bytes]


@pytest.fixture(scope="module")
def coll(api: ApiClient) -> Iterator[str]:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    api.create_collection(name, encoders=["text", "phash"])
    yield name
    api.delete_collection(name)


def png(side: int = 32, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height: a decompression bomb's signature, bytes-small."""
    data = bytearray(png(1))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def zip_bomb(unpacked: int = 300 * 1024 * 1024) -> bytes:
    """A .docx-looking zip whose one member unpacks to `unpacked` zero bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(unpacked >> 20):
                member.write(block)
    return buf.getvalue()


def wav_header_only(seconds_claimed: int = 36_000) -> bytes:
    rate = 16_000
    size = rate * 2 * seconds_claimed
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"


def docs(body: bytes | str, ctype: str = "application/json") -> Send:
    return lambda url: requests.post(
        f"{url}/documents", data=body, headers={"Content-Type": ctype}, timeout=60
    )


def files(
    name: str, data: bytes | Callable[[], bytes], mime: str = "application/octet-stream", **form: str
) -> Send:
    """An upload of one file; `data` may be a callable, so a big payload is built only when its case runs."""

    def send(url: str) -> requests.Response:
        body = data() if callable(data) else data
        return requests.post(f"{url}/files", files=[("file", (name, body, mime))], data=form, timeout=120)

    return send


def search(body: Any) -> Send:
    raw = body if isinstance(body, bytes) else json.dumps(body)
    headers = {"Content-Type": "application/json"}
    return lambda url: requests.post(f"{url}/search", data=raw, headers=headers, timeout=60)


def get(path: str) -> Send:
    return lambda url: requests.get(f"{url}{path}", timeout=30)


def _nest(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"n": node}
    return node


DEEP = "[" * 100_000 + "]" * 100_000
CASES: dict[str, Send] = {
    # documents
    "invalid utf-8 body": docs(b'{"text": "\xff\xfe abc"}'),
    "lone surrogate": docs(r'{"text": "a \ud800 b"}'),
    "lone surrogate in metadata key": docs(r'{"text": "a", "metadata": {"\udfff": 1}}'),
    "deep nesting": docs('{"text": "a", "metadata": ' + DEEP + "}"),
    "nesting past the flattened depth": docs(json.dumps({"text": "a", "metadata": {"m": _nest(60)}})),
    "NaN": docs('{"text": "a", "metadata": {"x": NaN}}'),
    "Infinity": docs('{"text": "a", "metadata": {"x": -Infinity}}'),
    "huge id": docs(json.dumps({"id": "x" * 5000, "text": "a"})),
    "id of 600 multibyte bytes": docs(json.dumps({"id": "é" * 300, "text": "a"})),
    "id with slash": docs(json.dumps({"id": "../../etc/passwd", "text": "a"})),
    "id with control character": docs(json.dumps({"id": "a\u0000b", "text": "a"})),
    "huge metadata": docs(json.dumps({"text": "a", "metadata": {"k": "v" * 100_000}})),
    "text is a number": docs('{"text": 42}'),
    "title is a list": docs('{"title": ["a"], "text": "b"}'),
    "metadata is a list": docs('{"text": "a", "metadata": [1, 2]}'),
    "unknown field": docs('{"text": "a", "_source": {"x": 1}}'),
    "null body": docs("null"),
    "empty array": docs("[]"),
    "not json": docs("text=hello&x=1", "application/x-www-form-urlencoded"),
    "too many documents": docs("[" + ",".join(['{"text": "a"}'] * 6000) + "]"),
    "one bad NDJSON line among good": docs(
        '{"text": "ok one"}\n{"text": \n{"title": "ok two"}\n', "x-ndjson"
    ),
    "everything empty": docs('{"title": "", "text": "   "}'),
    "bad Idempotency-Key": lambda url: requests.post(
        f"{url}/documents", json={"text": "a"}, headers={"Idempotency-Key": "k" * 300}, timeout=30
    ),
    # files
    "truncated png": files("t.png", png()[:200], "image/png"),
    "png header then garbage": files("g.png", b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 100, "image/png"),
    "jpeg magic, png name": files("j.png", b"\xff\xd8\xff\xe0" + b"\0" * 500, "image/png"),
    "decompression bomb png": files("bomb.png", png_claiming(60_000, 60_000), "image/png"),
    "zip bomb docx": files("bomb.docx", zip_bomb, "application/octet-stream"),
    "pdf-zip polyglot": files("poly.pdf", lambda: b"%PDF-1.4\n" + zip_bomb(1 << 20), "application/pdf"),
    "wav header claiming 10 hours": files("long.wav", wav_header_only(), "audio/wav"),
    "truncated flac": files("t.flac", b"fLaC\0\0\0\x22" + b"\x01" * 20, "audio/flac"),
    "empty file": files("empty.png", b"", "image/png"),
    "invalid utf-8 text file": files("bad.txt", b"abc \xff\xfe\xfd def", "text/plain"),
    "path traversal filename": files("../../../../etc/passwd.png", png(seed=3), "image/png"),
    "absolute windows filename": files("C:\\Windows\\system32\\x.png", png(seed=4), "image/png"),
    "very long filename": files("a" * 5000 + ".png", png(seed=5), "image/png"),
    "metadata form field not json": files("m.png", png(seed=6), "image/png", metadata="{oops"),
    # search
    "lucene operators as text": search({"query": 'title:(a OR b) AND content:* OR _exists_:x ~ "\\'}),
    "query too long": search({"query": "x" * 100_000}),
    "script in filters": search({"query": "a", "filters": {"script": {"source": "1"}}}),
    "filter on a private field": search({"query": "a", "filters": {"_id": "x"}}),
    "size negative": search({"query": "a", "size": -1}),
    "from beyond the window": search({"query": "a", "from": 10**12}),
    "query is an object": search({"query": {"match_all": {}}}),
    "search lone surrogate": search(rb'{"query": "\ud800"}'),
    "search deep nesting": search(('{"a":' * 50_000 + "1" + "}" * 50_000).encode()),
    "unknown mode": search({"query": "a", "mode": "script"}),
    # reads
    "document id traversal": get("/documents/..%2F..%2F_cluster%2Fsettings"),
    "content of a JSON document": get("/documents/nope/content"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_refused_or_settles(api: ApiClient, api_url: str, coll: str, case: str) -> None:
    resp = CASES[case](f"{api_url}/v1/collections/{coll}")
    assert resp.status_code < 500, f"{case}: {resp.status_code} {resp.text[:300]}"
    if resp.status_code >= 400:
        assert resp.json()["error"]["message"], case  # a JSON error naming the problem


def test_accepted_hostile_documents_settle_and_the_worker_still_encodes(
    api: ApiClient, coll: str, es, settings
) -> None:  # noqa: ANN001
    api.add_documents(coll, [{"id": "after-hostile", "text": "the worker is still alive"}], refresh=True)
    counts = api.wait_encoded(coll, timeout=300)
    assert counts.get("pending", 0) == 0
    assert api.document(coll, "after-hostile")["source"]["ingest"]["status"] == "encoded"
    silent = {
        "bool": {
            "filter": [{"term": {"ingest.status": "failed"}}],
            "must_not": [{"exists": {"field": "ingest.error"}}],
        }
    }
    assert es.count(index=f"{settings.engine.index_prefix}{coll}", query=silent)["count"] == 0

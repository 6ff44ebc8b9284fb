"""The leak suite: principals try to see, or infer, documents they may not read, through every route and
search mode, on a real engine (Elasticsearch, and OpenSearch under `make test`), Redis and worker.

Each attempt asserts its exact outcome: a hidden document answers what a missing id answers (same
status, same body), is absent from hits, highlights, passages, explanations and totals, and counts equal
the allowed count. Positive controls (a principal that may read the document finds it) show each attempt
would see a leak. The API runs in a thread of this process with keys and its own index prefix.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner
from PIL import Image
from werkzeug.serving import make_server

from bench import media_fixtures as mf
from client.api import ApiClient
from client.crawl import crawl, summary
from core import access
from core.config import Settings, get_settings
from core.es import Client
from mmsearch.cli import main as cli
from search import security
from search.app import create_app

pytestmark = pytest.mark.integration
PREFIX = f"mmsearch-perm{uuid.uuid4().hex[:6]}-"
KEYS = {
    "admin": security.new_key("admin", "admin"),
    "alice": security.new_key("alice", "read", user="alice", groups=("hr",), collections=("hr", "wiki")),
    "bob": security.new_key("bob", "read", user="bob", groups=("staff",)),
    "bob-writer": security.new_key("bob-writer", "write", user="bob", groups=("staff",)),
    "board": security.new_key("board", "read", groups=("board",)),
    "wiki-only": security.new_key("wiki-only", "write", user="alice", groups=("hr",), collections=("wiki",)),
    "plain": security.new_key("plain", "read"),  # a key as made before principals: reads `*` only
}
SECRET_WORDS = ("merger", "salary", "xylophone", "indemnity", "alice private")
FILLER = (
    "The harbour office keeps records of shipping schedules, crane maintenance and tide tables for the "
    "coming season, with notes on weather delays and the staff rota of every dock. "
)
LONG_SECRET = (
    FILLER * 40 + "The xylophone acquisition closes in March under the zebra codename. " + FILLER * 10
)
DOCS = [
    {
        "id": "pub",
        "title": "Cafeteria menu",
        "text": "The zebra cake is served on Fridays.",
        "readers": ["*"],
    },
    {
        "id": "hr1",
        "title": "Salary review",
        "text": "Confidential salary review, zebra band.",
        "readers": ["group:hr"],
    },
    {"id": "alice1", "title": "Note", "text": "alice private zebra note", "readers": ["user:alice"]},
    {
        "id": "board1",
        "title": "Minutes",
        "text": "Board minutes: the zebra merger is secret.",
        "readers": ["group:board"],
    },
    {"id": "long-secret", "title": "Acquisition file", "text": LONG_SECRET, "readers": ["group:board"]},
    {"id": "default1", "title": "Default", "text": "A zebra document naming no readers."},
]
READABLE = {  # ids of `hr` each principal may read (the collection's default readers: group:hr)
    "bob": {"pub", "pub-image"},
    "alice": {"pub", "hr1", "alice1", "default1", "pub-image"},
    "board": {"pub", "board1", "long-secret", "pub-image", "board-image", "mail", "mail.1"},
}
HIDDEN_FROM_BOB = ["hr1", "alice1", "board1", "long-secret", "default1", "board-image", "mail", "mail.1"]


def headers(who: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who][0]}"}


class Caller:
    """Requests as one principal."""

    def __init__(self, base: str, who: str) -> None:
        self.base = base
        self.who = who

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.base}{path}", headers=headers(self.who), timeout=600, **kwargs
        )

    def search(self, collection: str = "hr", **body: Any) -> dict[str, Any]:
        """A search with the widest view (no relevance cut-off) unless the body says otherwise."""
        resp = self.call("POST", f"/v1/collections/{collection}/search", json={"cutoff": False, **body})
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture(scope="module")
def base(settings: Settings, services: None, worker: Any, es: Client) -> Iterator[str]:
    live = settings.replace(
        security={
            "api_keys": [entry for _, entry in KEYS.values()],
            "write_rate_limit": "",
            "trusted_hosts": [],
        },
        engine={"index_prefix": PREFIX},
    )
    server = make_server("127.0.0.1", 0, create_app(live), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    created = list(es.indices.get(index=f"{PREFIX}*", ignore_unavailable=True, allow_no_indices=True))
    if created:
        es.indices.delete(index=",".join(created))


def png(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def world(base: str) -> str:
    """Collections `hr` (default readers group:hr) and `wiki`, documents, images and a mail, encoded."""
    admin = Caller(base, "admin")
    for name, defaults in (("hr", ["group:hr"]), ("wiki", None)):
        body = {"name": name, **({"default_readers": defaults} if defaults else {})}
        assert admin.call("POST", "/v1/collections", json=body).status_code == 201
    resp = admin.call("POST", "/v1/collections/hr/documents", json=DOCS, params={"refresh": "wait_for"})
    assert resp.status_code == 202, resp.text
    mail = mf.make_eml(
        "Merger approved", "The board approved the merger.", [("terms.txt", "text/plain", b"Indemnity terms")]
    )
    files = [
        ("file", ("red.png", png("red"), "image/png")),
        ("file", ("blue.png", png("blue"), "image/png")),
        ("file", ("mail.eml", mail, "message/rfc822")),
    ]
    form = {
        "ids": json.dumps(["pub-image", "board-image", "mail"]),
        "readers": json.dumps([["*"], ["group:board"], ["group:board"]]),
    }
    resp = admin.call(
        "POST", "/v1/collections/hr/files", files=files, data=form, params={"refresh": "wait_for"}
    )
    assert resp.status_code == 202, resp.text
    ApiClient(base, KEYS["admin"][0]).wait_encoded("hr", timeout=600)
    return "hr"


def missing_body(caller: Caller, path: str) -> dict[str, Any]:
    resp = caller.call("GET", path)
    assert resp.status_code == 404
    return resp.json()


def ids(result: dict[str, Any]) -> set[str]:
    return {hit["id"] for hit in result["hits"]}


# --- hits, totals, highlights, passages, explanations -----------------------------------------------------


@pytest.mark.parametrize("mode", ["lexical", "vector", "hybrid"])
@pytest.mark.parametrize("who", ["bob", "alice", "board"])
def test_search_hits_and_totals_hold_only_readable_documents(
    base: str, world: str, mode: str, who: str
) -> None:
    out = Caller(base, who).search(query="zebra", mode=mode, highlight=True, explain=True, size=50)
    found = ids(out)
    assert found and found <= READABLE[who], found - READABLE[who]
    assert out["total"] == len(found)  # the fused list is the readable list: totals count nothing else
    if mode != "vector":
        lexical = {i for i in READABLE[who] if i not in ("pub-image", "board-image", "mail", "mail.1")}
        assert out["total_lexical"] == len(lexical) and lexical <= found
    text = json.dumps(out).lower()
    hidden = [w for w in SECRET_WORDS if w in text]
    if who == "bob":
        assert not hidden and not any(f'"{i}"' in text for i in HIDDEN_FROM_BOB)


@pytest.mark.parametrize("who", ["bob", "alice", "board"])
def test_facet_counts_count_only_readable_documents(base: str, world: str, who: str) -> None:
    """Counts by modality, file type and date add up to the readable hits, never to hidden ones; a
    facet on `readers` (which would name who else may read) is refused."""
    out = Caller(base, who).search(query="zebra", mode="hybrid", facets=True, size=50)
    found = ids(out)
    assert found and found <= READABLE[who]
    facets = out["facets"]
    assert sum(b["count"] for b in facets["modality"]["buckets"]) == len(found) == out["total"]
    assert sum(b["count"] for b in facets["mime"]["buckets"]) <= len(found)  # one type at most each
    assert all(b["count"] <= len(found) for b in facets["date"]["buckets"])  # nested ranges
    refused = Caller(base, who).call(
        "POST", "/v1/collections/hr/search", json={"query": "zebra", "facets": ["readers"]}
    )
    assert refused.status_code == 400


def test_passages_of_a_long_hidden_document_never_show(base: str, world: str) -> None:
    query = {
        "query": "xylophone acquisition closes in March",
        "mode": "vector",
        "highlight": True,
        "size": 20,
    }
    bob = Caller(base, "bob").search(**query)
    assert "long-secret" not in ids(bob) and "xylophone" not in json.dumps(bob).lower()
    assert not any("passages" in hit and hit["id"] not in READABLE["bob"] for hit in bob["hits"])
    board = Caller(base, "board").search(**query)  # the control: a reader gets the passage
    top = next(hit for hit in board["hits"] if hit["id"] == "long-secret")
    assert any("xylophone" in p["text"] for p in top["passages"])


@pytest.mark.parametrize("mode", ["lexical", "vector", "hybrid"])
def test_filters_on_readers_only_narrow(base: str, world: str, mode: str) -> None:
    bob = Caller(base, "bob")
    for value in ("group:board", ["group:board", "user:alice", "group:hr"], "user:alice"):
        out = bob.search(query="zebra", mode=mode, filters={"readers": value})
        assert out["hits"] == [] and out["total"] == 0
    assert ids(bob.search(query="zebra", mode=mode, filters={"readers": "*"})) <= READABLE["bob"]


def test_filters_naming_hidden_ids_find_nothing(base: str, world: str) -> None:
    bob = Caller(base, "bob")
    for field, value in (("doc_id", "board1"), ("metadata.parent_id", "mail"), ("title.keyword", "Minutes")):
        out = bob.search(query="zebra merger indemnity minutes", filters={field: value})
        assert out["hits"] == [] and out["total"] == 0 and out["total_lexical"] == 0, field


def test_a_plain_read_key_reads_what_everyone_may(base: str, world: str) -> None:
    out = Caller(base, "plain").search(query="zebra", mode="hybrid", size=50)
    assert ids(out) <= READABLE["bob"] and "pub" in ids(out)


# --- single documents: 404 exactly as a missing id --------------------------------------------------------


DOC_ROUTES = ["", "/content", "/thumbnail", "/similar"]


@pytest.mark.parametrize("route", DOC_ROUTES)
@pytest.mark.parametrize("doc_id", ["board1", "board-image", "mail.1", "default1"])
def test_hidden_documents_answer_as_missing_ones(base: str, world: str, route: str, doc_id: str) -> None:
    bob = Caller(base, "bob")
    resp = bob.call("GET", f"/v1/collections/hr/documents/{doc_id}{route}")
    missing = bob.call("GET", f"/v1/collections/hr/documents/absent-{uuid.uuid4().hex[:6]}{route}")
    assert resp.status_code == missing.status_code == 404
    assert resp.json() == json.loads(
        missing.text.replace(missing.url.split("/documents/")[1].split("/")[0], doc_id)
    )
    assert (
        Caller(base, "board" if doc_id != "default1" else "alice")
        .call("GET", f"/v1/collections/hr/documents/{doc_id}")
        .status_code
        == 200
    )  # the control


def test_like_on_a_hidden_id_is_the_missing_ids_404(base: str, world: str) -> None:
    bob = Caller(base, "bob")
    resp = bob.call("POST", "/v1/collections/hr/search", json={"like": "long-secret", "mode": "vector"})
    missing = bob.call("POST", "/v1/collections/hr/search", json={"like": "long-secreT", "mode": "vector"})
    assert resp.status_code == missing.status_code == 404
    assert resp.json()["error"]["message"] == missing.json()["error"]["message"].replace(
        "long-secreT", "long-secret"
    )
    similar = Caller(base, "board").search(like="long-secret", mode="vector", size=50)  # the control
    assert "long-secret" not in ids(similar) and ids(similar) <= READABLE["board"]
    public = bob.search(like="pub", mode="vector", size=50)  # like on a readable id: readable hits only
    assert ids(public) <= READABLE["bob"]


# --- signed media URLs -----------------------------------------------------------------------------------


def media_url(base: str, who: str, doc_id: str, kind: str = "thumbnail") -> str:
    out = Caller(base, who).search(query="red blue", mode="lexical", size=50)
    hit = next(hit for hit in out["hits"] if hit["id"] == doc_id)
    return hit["urls"][kind]


def test_signed_urls_carry_their_principal_and_edits_break_them(base: str, world: str) -> None:
    board_url = media_url(base, "board", "board-image")
    assert requests.get(f"{base}{board_url}", timeout=30).status_code == 200  # the control
    query = parse_qs(urlsplit(board_url).query)
    assert access.principal_from_token(query["p"][0]).groups == frozenset({"board"})
    bob_url = media_url(base, "bob", "pub-image")
    assert requests.get(f"{base}{bob_url}", timeout=30).status_code == 200
    # bob's URL pointed at the hidden image, bob's p on board's signature, an admin's p: all refused
    attempts = [
        bob_url.replace("/pub-image/", "/board-image/"),
        board_url.replace(f"p={query['p'][0]}", f"p={parse_qs(urlsplit(bob_url).query)['p'][0]}"),
        board_url.replace(f"p={query['p'][0]}", f"p={access.principal_token(access.ADMIN)}"),
        board_url.split("&sig=")[0],
        board_url.replace("/thumbnail?", "/content?"),
    ]
    for url in attempts:
        assert requests.get(f"{base}{url}", timeout=30).status_code == 401, url


def test_a_signed_url_opens_nothing_its_principal_cannot_read_now(base: str, world: str) -> None:
    admin = Caller(base, "admin")
    url = media_url(base, "board", "board-image", "content")
    assert requests.get(f"{base}{url}", timeout=30).status_code == 200
    readers = "/v1/collections/hr/documents/board-image/readers"
    assert (
        admin.call("PUT", readers, json={"readers": ["group:hr"]}, params={"refresh": "true"}).status_code
        == 200
    )
    try:
        gone = requests.get(f"{base}{url}", timeout=30)
        missing = Caller(base, "board").call("GET", "/v1/collections/hr/documents/absent/content")
        assert gone.status_code == 404 and gone.json() == missing.json()
    finally:
        admin.call("PUT", readers, json={"readers": ["group:board"]}, params={"refresh": "true"})
    assert requests.get(f"{base}{url}", timeout=30).status_code == 200


# --- writes on hidden documents --------------------------------------------------------------------------


def test_delete_requeue_relabel_and_manifest_leave_hidden_documents_alone(
    base: str, world: str, es: Client
) -> None:
    writer, admin = Caller(base, "bob-writer"), Caller(base, "admin")
    absent = writer.call("DELETE", "/v1/collections/hr/documents/absent-doc")
    for doc_id in ("board1", "mail.1"):
        resp = writer.call("DELETE", f"/v1/collections/hr/documents/{doc_id}")
        assert resp.status_code == 404 and resp.json() == absent.json()
        put = writer.call("PUT", f"/v1/collections/hr/documents/{doc_id}/readers", json={"readers": ["*"]})
        assert put.status_code == 404 and put.json() == absent.json()
    many = writer.call("POST", "/v1/collections/hr/documents/_delete", json={"ids": ["board1", "absent-doc"]})
    assert (
        many.status_code == 200
        and many.json()["deleted"] == []
        and set(many.json()["not_found"]) == {"board1", "absent-doc"}
    )
    for doc_id in ("board1", "mail.1"):
        source = admin.call("GET", f"/v1/collections/hr/documents/{doc_id}").json()["source"]
        assert source["readers"] == ["group:board"]  # still there, readers unchanged
    # requeue of failed documents: only the one the writer may read goes back to the workers
    alias = f"{PREFIX}hr"
    for doc_id in ("pub", "board1"):
        es.update(index=alias, id=doc_id, doc={"ingest": {"status": "failed"}}, refresh=True)
    try:
        resp = writer.call(
            "POST", "/v1/collections/hr/requeue", params={"status": "failed", "older_than": "0"}
        )
        assert resp.status_code == 200 and resp.json()["requeued"] == 1
        assert es.get(index=alias, id="board1")["_source"]["ingest"]["status"] == "failed"
    finally:
        es.update(index=alias, id="board1", doc={"ingest": {"status": "encoded"}}, refresh=True)
        ApiClient(base, KEYS["admin"][0]).wait_encoded("hr", timeout=300)


def test_collection_counts_are_the_readable_counts(base: str, world: str) -> None:
    for who in ("bob", "alice", "board"):
        counts = Caller(base, who).call("GET", "/v1/collections/hr").json()["documents"]
        assert counts["total"] == len(READABLE[who]), who
    assert (
        Caller(base, "admin").call("GET", "/v1/collections/hr").json()["documents"]["total"] == len(DOCS) + 4
    )


# --- collections a principal may not use -----------------------------------------------------------------


def test_collections_outside_a_keys_patterns_do_not_exist_for_it(base: str, world: str) -> None:
    limited = Caller(base, "wiki-only")
    listed = limited.call("GET", "/v1/collections").json()["collections"]
    assert listed == ["wiki"]
    assert Caller(base, "alice").call("GET", "/v1/collections").json()["collections"] == ["hr", "wiki"]
    missing = limited.call("GET", "/v1/collections/nosuch").json()
    routes = [
        ("GET", "", {}),
        ("POST", "/search", {"json": {"query": "zebra"}}),
        ("GET", "/documents/pub", {}),
        ("GET", "/documents/pub/content", {}),
        ("GET", "/documents/pub/similar", {}),
        ("POST", "/documents", {"json": {"text": "planted"}}),
        ("PUT", "/documents/pub/readers", {"json": {"readers": ["*"]}}),
        ("DELETE", "/documents/pub", {}),
        ("POST", "/documents/_delete", {"json": {"ids": ["pub"]}}),
        ("POST", "/files", {"files": {"file": ("a.txt", b"planted")}}),
        ("GET", "/manifest?root=/x", {}),
        ("GET", "/profiles", {}),
        ("GET", "/jobs", {}),
        ("POST", "/requeue", {}),
    ]
    for method, route, kwargs in routes:
        resp = limited.call(method, f"/v1/collections/hr{route}", **kwargs)
        assert resp.status_code == 404, (method, route, resp.text)
        expected = json.loads(json.dumps(missing).replace("nosuch", "hr"))
        assert resp.json() == expected, (method, route)
    assert Caller(base, "admin").call("GET", "/v1/collections/hr/documents/pub").status_code == 200


# --- readers: set, validated, changed at once -------------------------------------------------------------


def test_readers_changes_take_effect_at_once_and_attachments_and_passages_follow(
    base: str, world: str
) -> None:
    admin, bob = Caller(base, "admin"), Caller(base, "bob")
    put = admin.call(
        "PUT",
        "/v1/collections/hr/documents/mail/readers",
        json={"readers": ["group:staff"]},
        params={"refresh": "true"},
    )
    assert put.status_code == 200 and sorted(put.json()["updated"]) == ["mail", "mail.1"]
    put = admin.call(
        "PUT",
        "/v1/collections/hr/documents/long-secret/readers",
        json={"readers": ["user:bob"]},
        params={"refresh": "true"},
    )
    assert put.status_code == 200
    try:
        assert bob.call("GET", "/v1/collections/hr/documents/mail.1").status_code == 200
        found = bob.search(query="indemnity terms", mode="lexical")
        assert {"mail", "mail.1"} & ids(found)
        long_hit = bob.search(query="xylophone acquisition closes in March", mode="vector", size=20)
        hit = next(h for h in long_hit["hits"] if h["id"] == "long-secret")
        assert any("xylophone" in p["text"] for p in hit["passages"])  # no re-encode: vectors kept
        assert bob.call("GET", "/v1/collections/hr").json()["documents"]["total"] == len(READABLE["bob"]) + 3
    finally:
        for doc_id in ("mail", "long-secret"):
            admin.call(
                "PUT",
                f"/v1/collections/hr/documents/{doc_id}/readers",
                json={"readers": ["group:board"]},
                params={"refresh": "true"},
            )
    assert bob.call("GET", "/v1/collections/hr/documents/mail.1").status_code == 404
    assert not {"mail", "mail.1", "long-secret"} & ids(
        bob.search(query="indemnity xylophone", mode="hybrid", size=50)
    )


def test_bad_readers_are_named_400s(base: str, world: str) -> None:
    admin = Caller(base, "admin")
    cases = [
        admin.call(
            "POST", "/v1/collections/hr/documents", json={"text": "x", "readers": ["group:hr", "everyone"]}
        ),
        admin.call("PUT", "/v1/collections/hr/documents/pub/readers", json={"readers": ["user:a:b"]}),
        admin.call("PUT", "/v1/collections/hr/documents/pub/readers", json={"readers": "*"}),
        admin.call(
            "POST",
            "/v1/collections/hr/files",
            files={"file": ("a.txt", b"x")},
            data={"readers": '["role:x"]'},
        ),
        admin.call("POST", "/v1/collections", json={"name": "bad", "default_readers": ["nobody"]}),
    ]
    for resp, term in zip(cases, ["everyone", "user:a:b", "readers", "role:x", "nobody"], strict=True):
        assert resp.status_code == 400 and term in resp.json()["error"]["message"], resp.text
    assert admin.call("GET", "/v1/collections/hr/documents/pub").json()["source"]["readers"] == ["*"]


# --- a crawl of real files with different owners and modes ------------------------------------------------


@pytest.mark.skipif(
    os.geteuid() != 0, reason="chown to other users needs root (the CI runs the tests as root)"
)
def test_a_crawl_maps_owners_groups_and_modes_to_readers(base: str, world: str, tmp_path: Path) -> None:
    files = {
        "open.txt": (0, 0, 0o644, ["*", "group:root", "user:root"]),
        "nobody.txt": (65534, 0, 0o600, ["user:nobody"]),
        "web.txt": (0, 33, 0o040, ["group:www-data"]),
    }
    for name, (uid, gid, mode, _) in files.items():
        path = tmp_path / name
        path.write_text(f"quokka report in {name}")
        os.chown(path, uid, gid)
        path.chmod(mode)
    if shutil.which("setfacl"):
        (tmp_path / "acl.txt").write_text("quokka report in acl.txt")
        (tmp_path / "acl.txt").chmod(0o600)
        subprocess.run(["setfacl", "-m", "g:nogroup:r", str(tmp_path / "acl.txt")], check=True)
    admin = ApiClient(base, KEYS["admin"][0])
    assert summary(crawl(admin, tmp_path, "wiki"))["added"] == len(list(tmp_path.iterdir()))
    manifest = {e["path"]: e for e in admin.manifest("wiki", str(tmp_path.resolve()))}
    for name, (*_, readers) in files.items():
        assert manifest[name]["readers"] == readers, name
    if "acl.txt" in manifest:
        assert manifest["acl.txt"]["readers"] == ["group:nogroup", "user:root"]
    # bob (no such user or group on the files) finds only the world-readable one, and its manifest says so
    bob = Caller(base, "bob")
    assert ids(bob.search("wiki", query="quokka report", mode="lexical")) == {manifest["open.txt"]["id"]}
    bob_manifest = bob.call("GET", "/v1/collections/wiki/manifest", params={"root": str(tmp_path.resolve())})
    assert [json.loads(line)["path"] for line in bob_manifest.text.splitlines()] == ["open.txt"]
    # a chmod alone relabels in place: no upload, the document is the same, and bob sees it at once
    (tmp_path / "web.txt").chmod(0o044)
    reports = {r.path: r for r in crawl(admin, tmp_path, "wiki")}
    assert reports["web.txt"].outcome == "changed" and reports["web.txt"].reason == "readers"
    assert ids(bob.search("wiki", query="quokka report", mode="lexical")) == {
        manifest["open.txt"]["id"],
        manifest["web.txt"]["id"],
    }


def test_writes_never_replace_a_hidden_document_nor_dedup_against_it(base: str, world: str) -> None:
    """An id held by a document the writer may not read is refused (writing it would replace what the writer
    cannot see); the same bytes as a hidden file are stored anew for the writer, never called a duplicate."""
    writer, admin = Caller(base, "bob-writer"), Caller(base, "admin")
    docs = [{"id": "board1", "text": "overwritten"}, {"id": "bob-note", "text": "bob's own note"}]
    resp = writer.call("POST", "/v1/collections/hr/documents", json=docs, params={"refresh": "wait_for"})
    assert resp.status_code == 207, resp.text
    assert resp.json()["ids"] == ["bob-note"]
    assert [(e["position"], e["id"]) for e in resp.json()["errors"]] == [(0, "board1")]
    form = {"ids": json.dumps(["board-image"]), "readers": json.dumps([["*"]])}
    upload = writer.call(
        "POST", "/v1/collections/hr/files", files=[("file", ("x.png", png("white"), "image/png"))], data=form
    )
    assert upload.status_code == 409 and "may not read" in upload.json()["error"]["message"]
    assert admin.call("GET", "/v1/collections/hr/documents/board1").json()["source"]["title"] == "Minutes"
    board_image = admin.call("GET", "/v1/collections/hr/documents/board-image").json()["source"]
    assert board_image["source"]["filename"] == "blue.png" and board_image["readers"] == ["group:board"]

    green = [("file", ("green.png", png("green"), "image/png"))]
    hidden = admin.call(
        "POST", "/v1/collections/wiki/files", files=green, data={"readers": json.dumps([["group:board"]])}
    ).json()["files"][0]
    mine = {"readers": json.dumps([["user:bob"]])}
    first = writer.call("POST", "/v1/collections/wiki/files", files=green, data=mine).json()["files"][0]
    again = writer.call("POST", "/v1/collections/wiki/files", files=green, data=mine).json()["files"][0]
    try:
        assert hidden["status"] == "pending" and hidden["id"] == hidden["sha256"]
        assert first["status"] == "pending" and first["id"].startswith(f"{hidden['id']}.")
        assert again["status"] == "duplicate" and again["id"] == first["id"]
        kept = admin.call("GET", f"/v1/collections/wiki/documents/{hidden['id']}").json()["source"]
        assert kept["readers"] == ["group:board"]
        assert writer.call("GET", f"/v1/collections/wiki/documents/{first['id']}").status_code == 200
    finally:
        for name, doc_id in (("hr", "bob-note"), ("wiki", hidden["id"]), ("wiki", first["id"])):
            admin.call("DELETE", f"/v1/collections/{name}/documents/{doc_id}", params={"refresh": "true"})


def test_a_collection_made_by_the_cli_gives_its_default_readers(
    base: str, world: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSEARCH_API_URL", base)
    monkeypatch.setenv("MMSEARCH_API_KEY", KEYS["admin"][0])
    get_settings.cache_clear()
    try:
        args = [
            "collections",
            "create",
            "handbook",
            "--default-readers",
            "group:hr",
            "--default-readers",
            "user:bob",
        ]
        out = CliRunner().invoke(cli, args)
        bad = CliRunner().invoke(cli, ["collections", "create", "handbook2", "--default-readers", "team:x"])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["default_readers"] == ["group:hr", "user:bob"]
    assert bad.exit_code != 0 and "team:x" in bad.output
    doc = {"id": "h1", "text": "Leave policy"}
    resp = Caller(base, "admin").call("POST", "/v1/collections/handbook/documents", json=doc)
    assert resp.status_code == 202, resp.text
    readable = {
        who: Caller(base, who).call("GET", "/v1/collections/handbook/documents/h1").status_code
        for who in ("alice", "bob", "board")
    }
    assert readable == {"alice": 404, "bob": 200, "board": 404}

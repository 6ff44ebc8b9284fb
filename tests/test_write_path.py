"""The write path as one service: used in-process (as the CLI and crawler can) and over HTTP, where the
blueprints only translate. Real Elasticsearch/OpenSearch, Redis, worker and API."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from client.api import ApiClient
from core.access import ADMIN
from core.config import Settings
from core.es import Client
from ingest.blobstore import BlobStore
from ingest.service import IngestService, UploadRejected
from ingest.uploads import Upload, clean_filename
from workers.tasks import enqueue

pytestmark = pytest.mark.integration


def _multipart(filename_star: str, data: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A multipart body written by hand, so a filename can carry what `requests` would escape."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.txt"; '
        f"filename*=UTF-8''{filename_star}\r\nContent-Type: text/plain\r\n\r\n".encode()
        + data
        + b"\r\n"
    ]
    for key, value in (fields or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_files_go_in_and_out_through_the_service_without_http(
    api: ApiClient, es: Client, settings: Settings, collection: str
) -> None:
    service = IngestService(es, settings, enqueue)
    text = f"the service path {uuid.uuid4().hex}".encode()
    indexed = service.add_files(
        collection,
        [Upload(text, "note.txt", "text/plain", {"team": "search"}), Upload(b"", "empty.txt")],
        principal=ADMIN,
        refresh=True,
    )
    accepted, refused = indexed.files
    assert indexed.partial and accepted["status"] == "pending" and refused["status"] == "rejected"
    assert indexed.tasks == 1
    stored = es.get(index=f"{settings.engine.index_prefix}{collection}", id=accepted["id"])["_source"]
    assert stored["metadata"]["team"] == "search" and stored["source"]["sha256"] == accepted["sha256"]
    assert BlobStore.from_settings(settings).exists(accepted["sha256"])
    again = service.add_files(collection, [Upload(text, "same.txt")], principal=ADMIN)
    assert [f["status"] for f in again.files] == ["duplicate"] and again.tasks == 0
    with pytest.raises(UploadRejected) as refused_all:
        service.add_files(collection, [Upload(b"", "empty.txt")], principal=ADMIN)
    assert refused_all.value.status == 400 and "empty.txt: empty file" in str(refused_all.value)
    deleted = service.delete_documents(collection, [accepted["id"], "absent"], principal=ADMIN, refresh=True)
    assert (deleted.deleted, deleted.not_found, deleted.blobs_deleted) == ([accepted["id"]], ["absent"], 1)
    assert not BlobStore.from_settings(settings).exists(accepted["sha256"])


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"parent_id": "someone-else"}, "['parent_id'] are set by mmsearch itself"),
        ({"attachment_number": 1}, "['attachment_number'] are set by mmsearch itself"),
        ({"nested": {"k": "v" * 81_000}}, "metadata is larger than 64 kB"),
    ],
)
def test_upload_metadata_is_held_to_the_rules_of_json_documents(
    api_url: str, collection: str, metadata: dict, expected: str
) -> None:
    files = {"file": ("a.txt", b"some words")}
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/files",
        files=files,
        data={"metadata": json.dumps(metadata)},
        timeout=60,
    )
    assert resp.status_code == 400 and expected in resp.json()["error"]["message"]
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/documents",
        json={"title": "t", "metadata": metadata},
        timeout=60,
    )
    assert resp.status_code == 400 and expected in resp.json()["error"]["message"]


def test_a_filename_with_a_line_break_is_stored_clean_and_served(api_url: str, collection: str) -> None:
    body, content_type = _multipart("evil%0D%0ASet-Cookie%3A%20x%3D1.txt", b"bytes of a file with a bad name")
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/files",
        data=body,
        headers={"Content-Type": content_type},
        timeout=60,
    )
    assert resp.status_code == 202, resp.text
    outcome = resp.json()["files"][0]
    assert outcome["filename"] == "evil  Set-Cookie: x=1.txt"
    served = requests.get(
        f"{api_url}/v1/collections/{collection}/documents/{outcome['id']}/content", timeout=60
    )
    assert served.status_code == 200 and served.content == b"bytes of a file with a bad name"
    assert "\n" not in served.headers["Content-Disposition"] and "Set-Cookie" not in served.headers


def test_clean_filename_drops_control_characters() -> None:
    assert clean_filename("a\r\nb\x00c\x7f.txt") == "a  b c .txt"
    assert clean_filename("\r\n") is None and clean_filename(None) is None
    assert clean_filename("résumé.pdf") == "résumé.pdf"


def test_a_bare_refresh_flag_means_the_same_on_every_write_route(
    api: ApiClient, api_url: str, collection: str
) -> None:
    """`?refresh` alone waits for searchability on every write route (files once ignored it)."""
    word = uuid.uuid4().hex
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/files?refresh",
        files={"file": ("r.txt", f"refresh {word}".encode())},
        timeout=60,
    )
    assert resp.status_code == 202
    found = api.search(collection, word, mode="lexical")
    assert [hit["id"] for hit in found["hits"]] == [resp.json()["files"][0]["id"]]
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/files?refresh=maybe",
        files={"file": ("r.txt", b"x")},
        timeout=60,
    )
    assert resp.status_code == 400 and "refresh must be" in resp.json()["error"]["message"]

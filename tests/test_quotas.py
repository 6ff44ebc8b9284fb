"""Per-collection quotas on the real stack: a write that would pass a collection's document or byte quota
is refused whole with a 413 naming the quota (and, to an admin, the usage), nothing of it written;
re-sending what the collection holds passes; a collection without its own quota takes the global default."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from client.api import ApiClient, ApiClientError
from core.access import ADMIN, Principal
from core.config import Settings
from core.es import Client
from ingest.blobstore import BlobStore
from ingest.quota import QuotaExceeded
from ingest.service import IngestService
from ingest.uploads import Upload
from workers.tasks import enqueue

pytestmark = pytest.mark.integration


@pytest.fixture
def limited(api: ApiClient) -> Iterator[str]:
    """A fresh collection allowed 3 documents and 100 bytes of stored files."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    described = api.create_collection(name, max_documents=3, max_bytes=100)
    assert described["quota"] == {"max_documents": 3, "max_bytes": 100}
    yield name
    api.delete_collection(name)


def test_documents_past_the_quota_are_refused_whole(api: ApiClient, api_url: str, limited: str) -> None:
    api.add_documents(limited, [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}], refresh=True)
    resp = requests.post(
        f"{api_url}/v1/collections/{limited}/documents?refresh=true",
        data='{"id": "c", "text": "three"}\n{"id": "d", "text": "four"}\n',
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert resp.status_code == 413
    error = resp.json()["error"]
    assert error["type"] == "QuotaExceeded"
    assert "quota of 3 documents" in error["message"] and "holds 2" in error["message"]
    assert api.collection(limited)["documents"]["total"] == 2  # neither of the two was written
    # replacing held documents brings none new: accepted although the collection is nearly full
    again = api.add_documents(limited, [{"id": "a", "text": "one, again"}, {"id": "b", "text": "2"}])
    assert again["indexed"] == 2
    api.add_documents(limited, [{"id": "c", "text": "three"}], refresh=True)
    assert api.collection(limited)["documents"]["total"] == 3


def test_files_past_the_byte_quota_are_refused_and_not_stored(
    api: ApiClient, settings: Settings, limited: str, tmp_path: Path
) -> None:
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_bytes(b"s" * 60)
    large.write_bytes(uuid.uuid4().hex.encode() * 2)  # 64 bytes: 124 with the first, over 100
    api.add_files(limited, [small], refresh=True)
    with pytest.raises(ApiClientError) as refused:
        api.add_files(limited, [large], refresh=True)
    assert refused.value.status == 413
    assert "quota of 100 bytes" in str(refused.value) and "holds 60" in str(refused.value)
    assert api.collection(limited)["documents"]["total"] == 1
    sha = hashlib.sha256(large.read_bytes()).hexdigest()
    assert not BlobStore.from_settings(settings).exists(sha)  # refused before its bytes were stored


def test_a_collection_without_a_quota_takes_the_global_default(
    es: Client, settings: Settings, collection: str
) -> None:
    limited = settings.replace(limits={"collection_max_documents": 2})
    service = IngestService(es, limited, enqueue)
    assert service.describe_collection(collection, principal=ADMIN)["quota"] == {
        "max_documents": 2,
        "max_bytes": 0,
    }
    docs = b'{"id": "x", "text": "one"}\n{"id": "y", "text": "two"}\n'
    assert service.add_documents(
        collection, docs, "application/x-ndjson", principal=ADMIN, refresh=True
    ).ids == ["x", "y"]
    with pytest.raises(QuotaExceeded) as refused:
        service.add_files(collection, [Upload(b"a third document", "third.txt")], principal=ADMIN)
    assert refused.value.status == 413 and "holds 2" in str(refused.value)
    # a writer that is not an admin learns the quota, not the usage (which counts documents it cannot read)
    writer = Principal("w", user="w", groups=frozenset({"staff"}))
    with pytest.raises(QuotaExceeded) as refused:
        service.add_files(collection, [Upload(b"a third document", "third.txt")], principal=writer)
    message = str(refused.value)
    assert refused.value.status == 413 and "quota of 2 documents" in message
    assert "holds" not in message and "2" not in message.replace("quota of 2", "").replace(collection, "")
    unlimited = IngestService(es, settings, enqueue)  # the default default: 0, unlimited
    assert unlimited.add_files(
        collection, [Upload(b"a third document", "third.txt")], principal=ADMIN, refresh=True
    ).tasks


def test_a_negative_quota_is_a_clear_400(api_url: str) -> None:
    resp = requests.post(
        f"{api_url}/v1/collections",
        json={"name": f"t-{uuid.uuid4().hex[:8]}", "max_documents": -1},
        timeout=60,
    )
    assert resp.status_code in (400, 422) and "max_documents" in resp.text

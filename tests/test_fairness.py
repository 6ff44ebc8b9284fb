"""Tenants served fairly, on the real stack (Elasticsearch, Redis, the session's one worker, the API): a
single document sent while another collection's bulk encodes is encoded before that bulk is done, and a
small bulk of one collection is not left behind a large bulk of another. Orderings, read from each
document's `ingest.encoded_at`, not timings: with one FIFO queue both singles and the small bulk came
after every document sent before them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from client.api import ApiClient
from core.access import ADMIN
from core.config import Settings
from core.es import Client, scan
from ingest.service import IngestService
from mappings import catalog
from workers.encoding import EncodeRun
from workers.queues import lane_of

pytestmark = pytest.mark.integration

BULK = 320  # documents of the large bulk: many task batches (the tests run with 16 a batch)


def _docs(prefix: str, n: int) -> list[dict[str, str]]:
    return [
        {"id": f"{prefix}-{i}", "text": f"Abstract {i} of {prefix}: cells, proteins and trials."}
        for i in range(n)
    ]


def _encoded_at(es: Client, settings: Settings, collection: str) -> list[str]:
    hits = scan(es, index=f"{settings.engine.index_prefix}{collection}", _source=["ingest.encoded_at"])
    return sorted(hit["_source"]["ingest"]["encoded_at"] for hit in hits)


@pytest.fixture
def two_lanes(api: ApiClient, settings: Settings) -> Iterator[tuple[str, str]]:
    """Two fresh collections whose bulk work lands in different lanes."""
    first = f"t-{uuid.uuid4().hex[:10]}"
    second = next(
        name
        for name in (f"t-{uuid.uuid4().hex[:10]}" for _ in range(100))
        if lane_of(settings.engine.index_prefix + name) != lane_of(settings.engine.index_prefix + first)
    )
    for name in (first, second):
        api.create_collection(name)
    yield first, second
    for name in (first, second):
        api.delete_collection(name)


def test_a_single_document_is_encoded_before_another_collections_bulk(
    api: ApiClient, es: Client, settings: Settings, two_lanes: tuple[str, str]
) -> None:
    bulk, interactive = two_lanes
    api.add_documents(bulk, _docs("bulk", BULK), refresh=True)
    out = api.add_documents(
        interactive, [{"id": "single", "text": "One note, someone waits for it."}], refresh=True
    )
    assert out["tasks"] == 1
    api.wait_encoded(interactive, timeout=600, poll=0.2)
    api.wait_encoded(bulk, timeout=900)
    (single,) = _encoded_at(es, settings, interactive)
    before = [stamp for stamp in _encoded_at(es, settings, bulk) if stamp <= single]
    # FIFO: all of them. Here: the batch under way when it came, and what the worker took while the
    # client sent it (a loaded machine may take a few); the bound leaves room for that
    assert len(before) <= BULK // 2


def test_a_small_bulk_is_not_left_behind_a_large_bulk_of_another_collection(
    api: ApiClient, es: Client, settings: Settings, two_lanes: tuple[str, str]
) -> None:
    large, small = two_lanes
    api.add_documents(large, _docs("large", BULK), refresh=True)
    # more than interactive_max_documents: bulk; refreshed, so waiting for `encoded` sees them at once
    out = api.add_documents(small, _docs("small", 12), refresh=True)
    assert out["tasks"] == 1
    api.wait_encoded(small, timeout=600, poll=0.2)
    api.wait_encoded(large, timeout=900)
    small_done = _encoded_at(es, settings, small)[-1]
    before = [stamp for stamp in _encoded_at(es, settings, large) if stamp <= small_done]
    # FIFO: all of them. Here: the large lane's batch under way, then the lanes take turns
    assert len(before) <= BULK // 2


def test_a_bulk_run_stops_between_chunks_when_asked_and_leaves_the_rest(
    es: Client, settings: Settings, collection: str
) -> None:
    """What a bulk batch does when interactive work waits (`workers.tasks.interactive_waiting`): the chunk
    under way is finished, the rest left for the task to send back. Run in this process on documents
    indexed without queueing them, so the session's worker does not take them first."""
    chunk = settings.workers.encode_chunk_sizes["text"]
    body = "\n".join(f'{{"id": "d{i}", "text": "text {i}"}}' for i in range(chunk + 5)).encode()
    service = IngestService(es, settings, lambda *_: 0)  # indexed, nothing queued
    ids = service.add_documents(collection, body, "application/x-ndjson", principal=ADMIN, refresh=True).ids
    index = service.collection(collection, principal=ADMIN).index
    asked: list[bool] = []
    run = EncodeRun(index, ids, yield_to=lambda: asked.append(True) or True)
    result = run(es)
    assert run.yielded and asked == [True]  # asked once, before the second chunk
    assert result.encoded == chunk
    assert sorted(run.remaining()) == sorted(ids[chunk:])
    es.indices.refresh(index=index)
    assert catalog.status_counts(es, index) == {"encoded": chunk, "pending": 5, "total": chunk + 5}

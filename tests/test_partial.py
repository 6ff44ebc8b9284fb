"""Searches that miss shards say so: a collection whose alias also covers an index with an unassigned
shard (what a lost node without replicas leaves) answers with what it has and `partial: true` naming each
sub-query's shard counts; `allow_partial: false` turns that into a 503; whole again, `partial: false`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from client.api import ApiClient, ApiClientError
from core.config import EngineSettings, Settings
from core.engine import ELASTICSEARCH, OPENSEARCH
from core.es import make_client
from mappings.catalog import alias_for

DOCS = [
    {"id": "reef", "title": "Coral reefs", "text": "Coral reefs bleach when sea temperatures rise."},
    {"id": "bread", "title": "Sourdough", "text": "Sourdough bread rises slowly thanks to wild yeast."},
    {"id": "rover", "title": "Mars rover", "text": "The rover drilled into Martian rock for microbes."},
]
QUERY = "coral reefs in warm seas"


@pytest.fixture
def encoded(api: ApiClient, collection: str) -> str:
    api.add_documents(collection, DOCS, refresh=True)
    assert api.wait_encoded(collection, timeout=300).get("encoded") == len(DOCS)
    return collection


@pytest.fixture
def missing_shard(es, settings: Settings, encoded: str) -> Iterator[str]:
    """A second index behind the collection's alias whose one shard can be allocated nowhere."""
    alias = alias_for(settings, encoded)
    index = f"{alias}-unassigned"
    es.indices.create(
        index=index,
        settings={
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "index.routing.allocation.require._name": "no-such-node",
        },
        wait_for_active_shards="0",
    )
    es.indices.update_aliases(actions=[{"add": {"index": index, "alias": alias, "is_write_index": False}}])
    yield index
    es.options(ignore_status=404).indices.delete(index=index)


@pytest.mark.integration
def test_a_whole_search_says_it_is_whole(api: ApiClient, encoded: str) -> None:
    out = api.search(encoded, QUERY)
    assert out["partial"] is False and out["partial_details"] == []
    assert out["hits"][0]["id"] == "reef"


@pytest.mark.integration
def test_missing_shards_give_a_partial_answer_that_says_so(
    api: ApiClient, es, settings: Settings, encoded: str, missing_shard: str
) -> None:
    whole = api.search(encoded, QUERY, explain=True)
    assert whole["partial"] is True
    details = {d["subquery"]: d for d in whole["partial_details"]}
    assert {"lexical", "page"} <= set(details) and any(name.startswith("vector:") for name in details)
    for detail in details.values():
        # Elasticsearch counts the missing shard as failed (and says why); OpenSearch only leaves it out
        assert (detail["total"], detail["successful"], detail["skipped"]) == (2, 1, 0), detail
        assert detail["timed_out"] is False
    assert whole["hits"][0]["id"] == "reef"  # what the answering shard holds

    with pytest.raises(ApiClientError) as refused:
        api.search(encoded, QUERY, allow_partial=False)
    assert refused.value.status == 503 and "allow_partial" in str(refused.value)

    alias = alias_for(settings, encoded)
    es.indices.update_aliases(actions=[{"remove": {"index": missing_shard, "alias": alias}}])
    again = api.search(encoded, QUERY, allow_partial=False)
    assert again["partial"] is False and again["partial_details"] == []
    assert [h["id"] for h in again["hits"]] == [h["id"] for h in whole["hits"]]


def test_both_clients_resend_a_503_as_they_do_a_request_to_an_unreachable_node() -> None:
    """A write whose whole request meets 503 (no master yet, a shard being promoted) is sent again by the
    transport like one that found no node; per-item 503s of a bulk the engine itself holds back until the
    primary is back (the bulk `timeout`, 1 minute), and workers retry both for `es_retry_seconds`."""
    settings = Settings(engine=EngineSettings(es_port=9))
    elastic = make_client(settings, ELASTICSEARCH).transport
    opensearch = make_client(settings, OPENSEARCH).raw.transport
    for transport in (elastic, opensearch):
        assert {502, 503, 504} <= set(transport.retry_on_status) and transport.max_retries == 3

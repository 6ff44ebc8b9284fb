"""`mmsearch optimize` on a live collection loaded in several bulks: one segment afterwards, the same
hits, and a clear error for a collection that does not exist."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from client.api import ApiClient
from mmsearch.cli import main

pytestmark = pytest.mark.integration

TOPICS = ["coral reefs bleach", "sourdough bread rises", "glaciers retreat", "bees pollinate flowers"]


def test_a_collection_loaded_in_bulks_is_merged_into_one_segment(api: ApiClient, collection: str) -> None:
    for batch, topic in enumerate(TOPICS):  # each refreshed bulk leaves a segment of its own
        docs = [{"id": f"{batch}-{i}", "text": f"{topic}, note {i}"} for i in range(5)]
        api.add_documents(collection, docs, refresh=True)
    assert api.wait_encoded(collection, timeout=300).get("encoded") == 20
    before = [hit["id"] for hit in api.search(collection, query="bread", mode="lexical")["hits"]]

    out = CliRunner().invoke(main, ["optimize", "--collection", collection])
    assert out.exit_code == 0, out.output
    (merged,) = json.loads(out.output)
    assert merged["collection"] == collection and merged["pending"] == 0
    assert merged["segments_before"] > 1 and merged["segments_after"] == 1
    after = [hit["id"] for hit in api.search(collection, query="bread", mode="lexical")["hits"]]
    assert after == before and sorted(after) == [f"1-{i}" for i in range(5)]


def test_an_unknown_collection_is_a_clear_error(es) -> None:  # noqa: ANN001
    out = CliRunner().invoke(main, ["optimize", "--collection", "no-such-collection"])
    assert out.exit_code != 0 and "no-such-collection" in out.output and "does not exist" in out.output

"""bench.engines' copy step: a collection encoded by the real pipeline copied, vectors and passages as
stored, into a new collection made by the product for the cluster's engine, and searched the same way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.engines import copy_collection, stored_documents
from client.api import ApiClient
from core.config import Settings
from mappings import catalog

pytestmark = pytest.mark.integration

LONG = " ".join(
    f"Paragraph {i} tells how enzyme {i} folds proteins in yeast cells under heat." for i in range(60)
)
DOCS = [
    {"id": "d1", "title": "Vitamin D", "text": "Vitamin D deficiency raises the risk of bone fractures."},
    {"id": "d2", "title": "Sleep", "text": "Short sleep impairs memory consolidation in adults."},
    {"id": "d3", "title": "Folding", "text": LONG},
]


@pytest.fixture
def copied(api: ApiClient, es, settings: Settings, collection: str) -> Iterator[tuple[str, str, dict]]:  # noqa: ANN001
    api.add_documents(collection, DOCS, refresh=True)
    assert api.wait_encoded(collection, timeout=300).get("encoded") == len(DOCS)
    target = f"{collection}-copy"
    done = copy_collection(es, es, settings, collection, target_name=target)
    yield collection, target, done
    catalog.delete(es, settings, target)


def test_copy_keeps_vectors_and_passages_and_searches_alike(
    api: ApiClient,
    es,
    settings: Settings,
    copied: tuple[str, str, dict],  # noqa: ANN001
) -> None:
    source, target, done = copied
    assert done["documents"] == len(DOCS)
    src = {d["_id"]: d["_source"] for d in stored_documents(es, catalog.alias_for(settings, source))}
    dst = {d["_id"]: d["_source"] for d in stored_documents(es, catalog.alias_for(settings, target))}
    assert set(dst) == {"d1", "d2", "d3"} and {d["collection"] for d in dst.values()} == {target}
    for doc_id, doc in src.items():
        assert len(doc["vectors"]["text"]) == 384
        assert dst[doc_id]["vectors"] == doc["vectors"]
        assert dst[doc_id].get("passages") == doc.get("passages")
    assert len(dst["d3"]["passages"]) > 1 and "vectors" in dst["d3"]["passages"][0]
    info = catalog.get(es, settings, target)
    assert info.encoders == catalog.get(es, settings, source).encoders and info.passages == ["text"]
    for mode in ("vector", "hybrid"):
        a = [h["id"] for h in api.search(source, "how do proteins fold in heat", mode=mode)["hits"]]
        b = [h["id"] for h in api.search(target, "how do proteins fold in heat", mode=mode)["hits"]]
        assert a == b and a[0] == "d3"


def test_a_collection_name_that_exists_is_refused(
    es, settings: Settings, copied: tuple[str, str, dict]
) -> None:  # noqa: ANN001
    source, target, _ = copied
    with pytest.raises(catalog.CollectionExists):
        copy_collection(es, es, settings, source, target_name=target)
    assert es.count(index=catalog.alias_for(settings, target))["count"] == len(DOCS)

"""The text slice end to end over real HTTP, Elasticsearch, Redis and a Celery worker."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from client.api import ApiClient, ApiClientError
from mappings import metastore

pytestmark = pytest.mark.integration

DOCS = [
    {
        "id": "ocean",
        "title": "Coral reefs",
        "text": "Coral reefs bleach when sea temperatures rise, expelling the algae that feed them.",
    },
    {
        "id": "finance",
        "title": "Interest rates",
        "text": "The central bank raised interest rates to curb inflation in the housing market.",
    },
    {
        "id": "cooking",
        "title": "Sourdough",
        "text": "Sourdough bread rises slowly thanks to wild yeast and lactic acid bacteria in the starter.",
    },
    {
        "id": "space",
        "title": "Mars rover",
        "text": "The rover drilled into Martian rock to look for traces of ancient microbial life.",
    },
    {
        "id": "sport",
        "title": "Marathon",
        "text": "Runners trained for months to finish the marathon in under three hours.",
    },
    {
        "id": "rare",
        "title": "Field notes",
        "text": "The botanist catalogued the xylotrophic fungus qwertonia on fallen birch logs.",
    },
]


def ids(result: dict) -> list[str]:
    return [hit["id"] for hit in result["hits"]]


def test_lexically_searchable_before_encoding(api: ApiClient, collection: str, worker) -> None:
    worker.kill()  # nothing may encode while we look
    try:
        out = api.add_documents(collection, DOCS, refresh=True)
        assert out["indexed"] == len(DOCS) and not out["errors"]
        result = api.search(collection, "qwertonia fungus", mode="lexical")
        assert ids(result)[0] == "rare"
        assert result["hits"][0]["source"]["ingest"]["status"] == "pending"
        assert api.collection(collection)["documents"]["pending"] == len(DOCS)
    finally:
        worker.start()
    counts = api.wait_encoded(collection, timeout=300)
    assert counts.get("encoded") == len(DOCS)
    doc = api.document(collection, "rare")["source"]
    assert doc["ingest"]["encoders"]["text"].startswith("text@")
    assert doc["ingest"]["attempts"] == 1


@pytest.fixture(scope="module")
def encoded(api: ApiClient, worker) -> str:
    worker.ensure_running()
    name = f"t-encoded-{uuid.uuid4().hex[:8]}"  # unique: runs may share one Elasticsearch
    api.create_collection(name)
    api.add_documents(name, DOCS, refresh=True)
    api.wait_encoded(name, timeout=300)
    yield name
    api.delete_collection(name)


def test_paraphrase_without_shared_words_found_by_vectors(api: ApiClient, encoded: str) -> None:
    query = "baking loaves using natural leavening"
    assert ids(api.search(encoded, query, mode="lexical")) == []
    assert ids(api.search(encoded, query, mode="vector"))[0] == "cooking"
    assert ids(api.search(encoded, query, mode="hybrid"))[0] == "cooking"
    assert ids(api.search(encoded, "warming oceans harm underwater ecosystems", mode="hybrid"))[0] == "ocean"


def test_rare_term_found_by_lexical_part(api: ApiClient, encoded: str) -> None:
    result = api.search(encoded, "qwertonia", mode="hybrid", explain=True)
    assert ids(result)[0] == "rare"
    assert result["hits"][0]["explanation"]["components"]["lexical"]["rank"] == 1


def test_explain_shows_both_components_and_highlight(api: ApiClient, encoded: str) -> None:
    result = api.search(encoded, "sourdough yeast", explain=True, highlight=True, fusion={"method": "rrf"})
    top = result["hits"][0]
    assert top["id"] == "cooking"
    components = top["explanation"]["components"]
    assert set(components) == {"lexical", "vector:text"}
    assert all(c["rank"] == 1 for c in components.values())
    assert top["explanation"]["fused"]["method"] == "rrf"
    assert top["score"] == pytest.approx(sum(c["contribution"] for c in components.values()))
    assert "<mark>yeast</mark>" in " ".join(top["highlight"]["content"])


def test_linear_fusion_with_normalisation(api: ApiClient, encoded: str) -> None:
    for normalization in ("minmax", "zscore", "l2"):
        fusion = {
            "method": "linear",
            "weights": {"lexical": 0.3, "vector:text": 0.7},
            "normalization": normalization,
        }
        result = api.search(encoded, "sourdough yeast", fusion=fusion, explain=True)
        assert ids(result)[0] == "cooking"
        assert result["fusion"]["method"] == "linear"


def test_title_boosts_below_one_keep_their_ratio(api: ApiClient, encoded: str) -> None:
    """combined_fields takes boosts >= 1 only; a title boost of 0.5 (as `mmsearch tune` tries) still works,
    ranking as the same ratio does."""
    half = api.search(encoded, "sourdough bread", mode="lexical", boosts={"title": 0.5, "content": 1.0})
    double = api.search(encoded, "sourdough bread", mode="lexical", boosts={"title": 1.0, "content": 2.0})
    assert half["hits"] and [h["id"] for h in half["hits"]] == [h["id"] for h in double["hits"]]
    assert [h["score"] for h in half["hits"]] == [h["score"] for h in double["hits"]]
    # a boost for one field keeps the other field searched
    only_title = api.search(encoded, "algae", mode="lexical", boosts={"title": 2.0})
    assert [h["id"] for h in only_title["hits"]] == ["ocean"]


def test_a_profile_saved_by_another_process_is_usable_at_once(
    api: ApiClient, encoded: str, es, settings
) -> None:
    """The API caches collections per process for a few seconds; a named profile must not wait for that
    (e.g. `mmsearch tune` saves through one gunicorn process and searches through another)."""
    with pytest.raises(ApiClientError, match="no search profile"):
        api.search(encoded, "yeast", profile="fresh")  # caches the collection without the profile
    profile = {"fusion": {"method": "rrf", "k": 10}}
    metastore.put(es, settings, encoded, kind=metastore.PROFILE, name="fresh", body=profile)
    assert api.search(encoded, "yeast", profile="fresh")["fusion"]["method"] == "rrf"
    api.request("DELETE", f"/v1/collections/{encoded}/profiles/fresh")


def test_filters_apply_inside_knn(api: ApiClient, collection: str) -> None:
    docs = [{**d, "metadata": {"topic": "food" if d["id"] == "cooking" else "other"}} for d in DOCS]
    api.add_documents(collection, docs, refresh=True)
    api.wait_encoded(collection, timeout=300)
    result = api.search(collection, "space exploration", mode="vector", filters={"metadata.topic": "food"})
    assert ids(result) == ["cooking"]


def test_pagination_under_fusion_has_no_duplicates_or_gaps(api: ApiClient, collection: str) -> None:
    topics = ["river", "forest", "city", "desert", "glacier", "harbor"]
    findings = ["higher", "lower", "stable", "surprising", "mixed"]
    docs = [
        {
            "id": f"d{i:02d}",
            "title": f"Study {i} of the {topics[i % 6]}",
            "text": f"The {topics[i % 6]} study found {findings[i % 5]} water quality results in {2000 + i}.",
        }
        for i in range(60)
    ]
    api.add_documents(collection, docs, refresh=True)
    api.wait_encoded(collection, timeout=300)
    query = "water quality study results"
    whole = ids(api.search(collection, query, size=50, cutoff=False))  # the fused windows, uncut
    paged = [
        i
        for page in range(5)
        for i in ids(api.search(collection, query, size=10, cutoff=False, **{"from": page * 10}))
    ]
    assert len(whole) == 50
    assert paged == whole
    assert len(set(paged)) == 50


def test_killed_worker_loses_nothing(api: ApiClient, collection: str, worker) -> None:
    worker.ensure_running()
    words = "river forest harbor glacier desert city study water quality results survey method".split()

    def round_of(start: int) -> list[dict[str, str]]:  # ~120 words each: a round takes the worker seconds
        return [
            {"id": f"k{i}", "text": " ".join(words[(i * j) % len(words)] for j in range(1, 121))}
            for i in range(start, start + 240)
        ]

    sent, deadline = 0, time.monotonic() + 300
    while True:  # kill in the middle: some batches done, some not
        counts = api.collection(collection)["documents"]
        if counts.get("encoded", 0) >= 16 and counts.get("pending", 0) > 0:
            break
        if counts.get("encoded", 0) == sent:  # nothing sent yet, or a fast worker finished: another round
            api.add_documents(collection, round_of(sent))
            sent += 240
        assert time.monotonic() < deadline, counts
        time.sleep(0.2)
    worker.kill()
    assert api.collection(collection)["documents"].get("pending", 0) > 0
    worker.start()
    counts = api.wait_encoded(collection, timeout=300)
    assert counts.get("encoded") == sent, counts
    assert counts.get("failed", 0) == 0


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "fragment"),
    [
        (
            "POST",
            "/v1/collections/{c}/documents",
            {"data": b'{"text": "unterminated', "headers": {"Content-Type": "application/json"}},
            400,
            "malformed JSON",
        ),
        (
            "POST",
            "/v1/collections/{c}/documents",
            {"json": {"title": "", "text": ""}},
            400,
            "title or a text",
        ),
        ("POST", "/v1/collections/{c}/documents", {"json": {"text": 5}}, 400, "text"),
        ("POST", "/v1/collections/{c}/documents", {"json": [1, 2]}, 400, "JSON object"),
        (
            "POST",
            "/v1/collections/{c}/documents",
            {
                "data": b'{"text": "t", "metadata": {"x": NaN}}',
                "headers": {"Content-Type": "application/json"},
            },
            400,
            "NaN",
        ),
        ("POST", "/v1/collections/{c}/documents", {"data": b""}, 400, "empty"),
        (
            "POST",
            "/v1/collections/{c}/documents",
            {"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
            400,
            "UTF-8",
        ),
        ("POST", "/v1/collections/{c}/documents", {"data": b"x" * (9 * 1024 * 1024)}, 413, "large"),
        ("POST", "/v1/collections/nope-missing/documents", {"json": {"text": "hi"}}, 404, "does not exist"),
        ("POST", "/v1/collections/nope-missing/search", {"json": {"query": "hi"}}, 404, "does not exist"),
        ("GET", "/v1/collections/{c}/documents/absent", {}, 404, "not found"),
        ("POST", "/v1/collections", {"json": {"name": "Bad Name!"}}, 400, "invalid collection name"),
        ("POST", "/v1/collections", {"json": {"name": "x", "encoders": ["nope"]}}, 400, "unknown encoders"),
        (
            "POST",
            "/v1/collections/{c}/search",
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "malformed JSON",
        ),
        ("POST", "/v1/collections/{c}/search", {"json": {"query": "x", "size": "ten"}}, 400, "size"),
        ("POST", "/v1/collections/{c}/search", {"json": {"query": "x", "mode": "magic"}}, 400, "mode"),
        ("POST", "/v1/collections/{c}/search", {"json": {"query": "x", "size": 1000}}, 400, "size"),
        (
            "POST",
            "/v1/collections/{c}/search",
            {"json": {"query": "x", "filters": {"script": "1"}}},
            400,
            "filter",
        ),
        ("POST", "/v1/collections/{c}/search", {"json": {"query": "x", "profile": "nope"}}, 400, "profile"),
        ("POST", "/v1/collections/{c}/search", {"json": {"query": "x", "unknown": 1}}, 400, "unknown"),
        (
            "POST",
            "/v1/collections/{c}/search",
            {
                "data": b'{"query": "x", "boosts": {"title": NaN}}',
                "headers": {"Content-Type": "application/json"},
            },
            400,
            "NaN",
        ),
        (
            "POST",
            "/v1/collections/{c}/search",
            {"json": {"query": "x", "boosts": {"title": -1}}},
            400,
            "boosts.title",
        ),
        ("POST", "/v1/collections/{c}/search", {"json": {}}, 400, "nothing to search"),
        ("DELETE", "/v1/collections/{c}/search", {}, 405, "not allowed"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    api_url: str, collection: str, method, path, kwargs, status, fragment
) -> None:
    resp = requests.request(method, api_url + path.format(c=collection), timeout=30, **kwargs)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert fragment.lower() in error["message"].lower(), error


@pytest.mark.parametrize(
    "query",
    [
        '" OR 1=1 --',
        "*:* AND NOT title:(x",
        "{{7*7}} ${jndi:ldap://x}",
        "<script>alert(1)</script>",
        "\\\\ / ~ ^ [ ] { } ( ) ! ? : &&",
        "a" * 4000,
        "the of and",
    ],
)
def test_hostile_queries_are_just_text(api: ApiClient, collection: str, query: str) -> None:
    api.add_documents(collection, DOCS[:2], refresh=True)
    result = api.search(collection, query, mode="lexical", highlight=True)
    assert isinstance(result["hits"], list)


def test_requeue_recovers_lost_messages(
    api: ApiClient, api_url: str, collection: str, worker, settings
) -> None:  # noqa: ANN001
    import redis

    worker.kill()
    try:
        api.add_documents(collection, DOCS, refresh=True)
        broker = redis.Redis.from_url(settings.broker.broker_url)
        assert broker.llen("mmsearch.text") >= 1  # its batch, on the text queue (maybe behind others')
        broker.delete("mmsearch.text")  # the queued batches are lost
    finally:
        worker.start()
    resp = requests.post(
        f"{api_url}/v1/collections/{collection}/requeue", params={"older_than": 0}, timeout=30
    )
    assert resp.status_code == 200 and resp.json()["requeued"] == len(DOCS)
    assert api.wait_encoded(collection, timeout=300).get("encoded") == len(DOCS)

"""Fine-tuning and re-encode jobs: their rules without services, then end to end on real SciFact text.

End to end, a slice of SciFact (the positives of a few training queries plus filler) is ingested; the
text model is fine-tuned on those training judgments for two tiny steps; a re-encode job then moves the
collection to its next generation while searches run and documents arrive in and leave the old index. A
re-encode with the same model moves the vectors instead of encoding again (a mapping upgrade).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from client.api import ApiClient, ApiClientError
from core.config import EngineSettings, ModelSettings, Settings
from core.es import Client, engine_of, scan
from encoders.text import resolve_model_path
from encoders.training import CARD, TrainConfig, version_name
from evaluation.training import fine_tune, held_queries, judged_pairs, split_queries
from ingest.beir import iter_jsonl
from ingest.documents import new_document
from tests.scifact import QRELS, write_slice
from workers.reencode import ReencodeError, carried_meta, check_model_ref, generation

QUERIES, DOCS = 12, 40
PROBE = "vitamin D deficiency and bone fractures"


def test_version_names_keep_the_original_base() -> None:
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert version_name("all-MiniLM-L6-v2", "docs", now) == "all-MiniLM-L6-v2-ft-docs-20240506-070809"
    tuned_twice = version_name("/models/all-MiniLM-L6-v2-ft-docs-20240101-000000/", "news", now)
    assert tuned_twice == "all-MiniLM-L6-v2-ft-news-20240506-070809"


def test_judged_pairs_are_positive_known_and_capped() -> None:
    qrels = {"q1": {"a": 1, "b": 0, "c": 2}, "q2": {"d": 1}, "q3": {"e": 1}}
    pairs = judged_pairs({"q1": "one", "q2": "two"}, qrels, None, seed=1)
    assert sorted(pairs) == [("q1", "a"), ("q1", "c"), ("q2", "d")]  # no 0 grade, no query without text
    assert len(judged_pairs({"q1": "one", "q2": "two"}, qrels, 2, seed=1)) == 2


def test_bench_train_configs_and_split() -> None:
    from bench.train_configs import parse_configs

    first, second, third = parse_configs("1:2e-5, 3:1e-4:2, 1:2e-4:3:hybrid")
    assert (first.epochs, first.learning_rate, first.hard_negatives) == (1, 2e-5, TrainConfig.hard_negatives)
    assert (second.epochs, second.learning_rate, second.hard_negatives) == (3, 1e-4, 2)
    assert (third.hard_negatives, third.negatives_from) == (3, "hybrid")
    with pytest.raises(ValueError, match="lexical or hybrid"):
        parse_configs("1:1e-4:2:random")
    qrels = {f"q{i}": {"d": 1} for i in range(10)}
    train_ids, held_ids = split_queries(qrels, {q: "text" for q in qrels if q != "q9"}, holdout=0.25)
    assert len(train_ids) == 7 and len(held_ids) == 2 and not set(train_ids) & set(held_ids)
    assert "q9" not in train_ids + held_ids  # a judged query without text cannot be run
    same = dict.fromkeys(qrels, "t")
    assert split_queries(qrels, same, 0.2) == split_queries(qrels, same, 0.2)
    assert split_queries(qrels, same, 0.2, seed=1) != split_queries(qrels, same, 0.2)
    assert split_queries(qrels, same, 0.0)[1] == []


def test_held_queries_come_from_a_card_trained_on_the_same_judgments(tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.tsv"
    card = {"split": {"qrels": str(qrels.resolve()), "seed": 13, "holdout": 0.2, "fit": 8, "held": ["q1"]}}
    assert held_queries(card, qrels) == ["q1"]
    assert held_queries(card, tmp_path / "other.tsv") is None  # other judgments: nothing was seen
    assert held_queries(None, qrels) is None and held_queries({"version": "v"}, qrels) is None


def test_model_refs_name_models_or_paths_under_the_models_roots(tmp_path: Path) -> None:
    settings = Settings(
        engine=EngineSettings(data_dir=tmp_path), models=ModelSettings(models_dir=tmp_path / "shared-models")
    )
    for ref in (
        "all-MiniLM-L6-v2",
        str(tmp_path / "models" / "m"),
        str(tmp_path / "shared-models" / "m"),
    ):
        check_model_ref(settings, ref, encoder="text")
    for ref in (
        "/etc",
        "../../etc",
        str(tmp_path / "models" / ".." / "elsewhere"),
        str(tmp_path),
        "org/some-model",
    ):
        with pytest.raises(ReencodeError):
            check_model_ref(settings, ref, encoder="text")


def test_a_new_generation_inherits_extractors_not_encoders_nor_state() -> None:
    """Profiles and jobs live in the state index under the collection's name, not in `_meta`."""
    kept = {"extractors": ["ocr"], "passages": []}
    meta = {"collection": "c", "encoders": {"text": {}}, "profiles": {"default": {}}, "jobs": {"j": {}}}
    assert carried_meta({**meta, **kept}) == kept
    assert generation("mmsearch-c-000041") == 41


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slice(tmp_path_factory.mktemp("scifact-slice"), QUERIES, DOCS)


@pytest.fixture(scope="module")
def small(api: ApiClient, slice_dir: Path) -> Iterator[str]:
    """A collection of the slice, encoded by the base model."""
    name = f"t-ft-{uuid.uuid4().hex[:8]}"
    api.create_collection(name)
    docs = [
        {"id": str(r["_id"]), "title": r.get("title") or None, "text": r["text"]}
        for r in iter_jsonl(slice_dir / "corpus.jsonl.gz")
    ]
    assert not api.add_documents(name, docs, refresh=True)["errors"]
    assert api.wait_encoded(name, timeout=300).get("encoded") == len(docs)
    yield name
    api.delete_collection(name)


@pytest.fixture(scope="module")
def tuned(api: ApiClient, settings: Settings, small: str, slice_dir: Path) -> Iterator[tuple[str, dict]]:
    """(model ref, card) of a model fine-tuned for at most two epochs of two steps of four pairs, on the
    queries a seeded split did not hold back (scored after each epoch)."""
    config = TrainConfig(epochs=2, batch_size=4, max_pairs=8, max_seq_length=64)
    ref, card = fine_tune(api, settings, small, slice_dir, qrels_path=slice_dir / QRELS, config=config)
    yield ref, card
    shutil.rmtree(model_path(settings, ref), ignore_errors=True)


def model_path(settings: Settings, ref: str) -> Path:
    return Path(resolve_model_path(ref, settings.models.models_dir))


@pytest.mark.integration
@pytest.mark.slow
def test_train_saves_a_model_that_differs_from_its_base(settings: Settings, tuned: tuple[str, dict]) -> None:
    from sentence_transformers import SentenceTransformer

    ref, card = tuned
    path = model_path(settings, ref)
    assert json.loads((path / CARD).read_text()) == card
    assert card["base_model"] == "all-MiniLM-L6-v2" and card["loss"] == "MultipleNegativesRankingLoss"
    assert card["pairs"] == 8 and card["steps"] == 4 and card["hard_negatives"] == 1
    split = card["split"]
    assert split["held"] and split["fit"] + len(split["held"]) == QUERIES
    assert held_queries(card, Path(split["qrels"])) == split["held"]
    held = card["held_out"]
    assert [e["epoch"] for e in held["epochs"]] == [1, 2] and 0 <= held["before"] <= 1
    assert held["after"] == pytest.approx(max(e["ndcg@10"] for e in held["epochs"]), abs=1e-3)
    model = SentenceTransformer(str(path), device="cpu")
    base = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2", None), device="cpu")
    assert model.max_seq_length == base.max_seq_length  # trained at 64 tokens, encodes as the base did
    texts = [PROBE, "statins lower cardiovascular risk"]
    new, old = model.encode(texts), base.encode(texts)
    assert new.shape == old.shape
    assert not np.allclose(new, old, atol=1e-4)


class SearchLoop(threading.Thread):
    """Hybrid searches in a loop for the length of a job, counting failures."""

    def __init__(self, base_url: str, collection: str) -> None:
        super().__init__(daemon=True)
        self.client = ApiClient(base_url)  # its own session: requests sessions are not thread-safe
        self.collection = collection
        self.stop = threading.Event()
        self.answered = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                assert self.client.search(self.collection, PROBE, size=5)["hits"]
                self.answered += 1
            except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
                self.failures.append(repr(exc))
            time.sleep(0.2)


def wait_for(api: ApiClient, path: str, done: Any, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api.request("GET", path)
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


@pytest.mark.integration
@pytest.mark.slow
def test_reencode_switches_generation_without_losing_writes(
    api: ApiClient, api_url: str, es: Client, small: str, tuned: tuple[str, dict]
) -> None:
    ref, _ = tuned
    before = api.collection(small)
    total = before["documents"]["total"]
    ids = [h["id"] for h in api.search(small, "cell", mode="lexical", size=3)["hits"]]
    searches = SearchLoop(api_url, small)
    searches.start()
    try:
        job = api.request("POST", f"/v1/collections/{small}/reencode", json={"models": {"text": ref}})
        path = f"/v1/collections/{small}/jobs/{job['id']}"
        assert job["status"] == "copying" and job["target_index"].endswith("-000002")
        assert api.collection(small)["jobs"][job["id"]]["status"] == "copying"
        api.add_documents(small, [{"id": "early", "text": "Added through the API as the copy starts."}])
        api.request("DELETE", f"/v1/collections/{small}/documents/{ids[0]}")

        job = wait_for(api, path, lambda j: j["status"] != "copying")
        assert job["status"] == "encoding", job
        # After the copy's scan: what a writer holding the old index name does until the switch.
        late = new_document(small, "late", title="Late", content="Written to the old index after the copy.")
        es.index(index=before["index"], id="late", document=late, refresh=True)
        es.delete(index=before["index"], id=ids[1], refresh=True)

        job = wait_for(api, path, lambda j: j["status"] in ("done", "failed", "cancelled"))
    finally:
        searches.stop.set()
        searches.join()

    assert job["status"] == "done", job
    assert job["caught_up"] >= 1 and job["removed"] >= 1
    es.indices.refresh(index=job["target_index"])
    api.wait_encoded(small, timeout=120)  # what the last replay copied may still be pending
    after = api.collection(small)
    assert after["index"] == job["target_index"]
    assert list(es.indices.get_alias(name=after["alias"])) == [job["target_index"]]
    assert after["encoders"]["text"]["model"] == ref
    assert after["documents"] == {"encoded": total, "total": total}  # +early +late -2 deleted
    versions = es.search(
        index=after["alias"], size=0, aggs={"v": {"terms": {"field": "ingest.encoders.text"}}}
    )["aggregations"]["v"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in versions] == [(f"text@{ref}", total)]
    for doc_id in ("early", "late"):
        assert api.document(small, doc_id)["source"]["ingest"]["status"] == "encoded"
    for doc_id in ids[:2]:
        with pytest.raises(ApiClientError) as err:
            api.document(small, doc_id)
        assert err.value.status == 404
    assert searches.answered > 0 and not searches.failures, searches.failures
    assert job["retired"]["index"] == before["index"]
    with pytest.raises(ApiClientError) as err:
        api.request("DELETE", path)
    assert err.value.status == 409  # only a job before its switch can be cancelled


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("models", "status"),
    [
        ({"text": "/etc"}, 400),  # a server path outside the models directories
        ({"text": "../../etc"}, 400),
        ({"clip": "anything"}, 400),  # not an encoder of this collection
        ({}, 400),
        ({"text": "no-such-model-anywhere"}, 400),  # cannot be loaded (hubs are offline here)
    ],
)
def test_reencode_rejects_bad_requests(api: ApiClient, small: str, models: dict, status: int) -> None:
    with pytest.raises(ApiClientError) as err:
        api.request("POST", f"/v1/collections/{small}/reencode", json={"models": models})
    assert err.value.status == status
    assert not [j for j in api.collection(small)["jobs"].values() if j["status"] not in ("done", "cancelled")]


@pytest.mark.integration
@pytest.mark.slow
def test_unknown_job_and_collection_are_404(api: ApiClient, small: str) -> None:
    for path in (f"/v1/collections/{small}/jobs/nope", "/v1/collections/no-such-collection/jobs"):
        with pytest.raises(ApiClientError) as err:
            api.request("GET", path)
        assert err.value.status == 404


@pytest.mark.integration
@pytest.mark.slow
def test_deleting_a_collection_mid_reencode_leaves_no_index(
    api: ApiClient, es: Client, tuned: tuple[str, dict]
) -> None:
    name = f"t-del-{uuid.uuid4().hex[:8]}"
    api.create_collection(name)
    docs = [{"id": str(i), "text": f"Short note number {i} about bone density."} for i in range(5)]
    api.add_documents(name, docs, refresh=True)
    api.wait_encoded(name, timeout=120)
    job = api.request("POST", f"/v1/collections/{name}/reencode", json={"models": {"text": tuned[0]}})
    assert es.indices.exists(index=job["target_index"])
    api.delete_collection(name)
    time.sleep(3)  # the job's next step runs into the deleted collection and must not recreate it
    assert not es.indices.get(index=f"mmsearch-{name}*", allow_no_indices=True, ignore_unavailable=True)


def stored_vectors(es: Client, alias: str) -> dict[str, dict[str, Any]]:
    """Each document's encoding time, vector and passage vectors, as stored."""
    body = {"query": {"match_all": {}}, "_source": engine_of(es).source_with_vectors()}
    return {
        hit["_id"]: {
            "encoded_at": hit["_source"]["ingest"]["encoded_at"],
            "vector": hit["_source"]["vectors"]["text"],
            "passages": [p["vectors"]["text"] for p in hit["_source"].get("passages", [])],
        }
        for hit in scan(es, index=alias, query=body)
    }


@pytest.mark.integration
@pytest.mark.slow
def test_reencode_with_the_same_model_moves_the_vectors_instead_of_encoding_again(
    api: ApiClient, es: Client, slice_dir: Path
) -> None:
    """What a collection made before a mapping change (e.g. passage vectors quantised anew) runs: the new
    generation has today's mapping, and every document its old vectors, encoded at the same moment."""
    name = f"t-keep-{uuid.uuid4().hex[:8]}"
    api.create_collection(name)
    rows = list(islice(iter_jsonl(slice_dir / "corpus.jsonl.gz"), 8))
    long_text = "\n\n".join(row["text"] for row in rows)  # far past the encoder's window: passages
    docs = [{"id": "long", "title": "Collected abstracts", "text": long_text}]
    docs += [{"id": str(row["_id"]), "text": row["text"]} for row in rows[:3]]
    try:
        assert not api.add_documents(name, docs, refresh=True)["errors"]
        assert api.wait_encoded(name, timeout=300).get("encoded") == 4
        before = api.collection(name)
        vectors = stored_vectors(es, before["alias"])
        assert len(vectors["long"]["passages"]) > 1

        model = before["encoders"]["text"]["model"]
        job = api.request("POST", f"/v1/collections/{name}/reencode", json={"models": {"text": model}})
        assert job["keep_vectors"] is True
        path = f"/v1/collections/{name}/jobs/{job['id']}"
        job = wait_for(api, path, lambda j: j["status"] in ("done", "failed", "cancelled"))
        assert job["status"] == "done", job

        after = api.collection(name)
        assert after["index"] == job["target_index"] != before["index"]
        assert after["documents"] == {"encoded": 4, "total": 4}
        assert stored_vectors(es, after["alias"]) == vectors  # not one document encoded again
        mapping = es.indices.get_mapping(index=after["index"])[after["index"]]["mappings"]
        passage_field = mapping["properties"]["passages"]["properties"]["vectors"]["properties"]["text"]
        if engine_of(es).is_opensearch:
            assert passage_field["method"]["parameters"]["encoder"]["name"] == "sq"
        else:  # passages are int8 now (a nested kNN over bbq is not rescored); documents stay bbq
            assert passage_field["index_options"]["type"] == "int8_hnsw"
            document_field = mapping["properties"]["vectors"]["properties"]["text"]
            assert document_field["index_options"]["type"] == "bbq_hnsw"
        hit = api.search(name, rows[6]["text"][:300], mode="vector", size=1)["hits"][0]
        assert hit["id"] == "long" and hit["passages"][0]["text"] in long_text  # found by its passage
    finally:
        api.delete_collection(name)

"""Cheaper vector plans, measured on an encoded collection without re-encoding anything.

Today a vector search on a collection with passages runs two kNN per text encoder: one over whole-document
vectors and one over the nested passages (search.plan), merged at each document's best score. Compared:

- `two sub-queries` (today) on the collection as stored, and on the copy below (the same ranking: a short
  document's one passage scores as its document vector; the same index layout as the next plan);
- `passages only`: one nested kNN on a copy where each short document (no passages) gets one passage
  holding its own encoder text and its document vector (the vector the encoder gives that text: checked
  on a sample, `agreement`), so the passage kNN alone covers every document;
- on a copy without any passages (a collection of short documents): `two sub-queries` vs `document kNN
  only`, the saving of skipping the nested kNN where no document has passages.

Each plan is the API's own (search.plan via `SearchService.plan`, the collection's default profile) with
sub-queries left out, sent directly in one `_msearch` with precomputed query vectors and fused by the
API's fusion (bench.query). Latency on `n` queries, 1 and 4 clients; quality (nDCG@10, Recall@100) on
every judged query of `qrels`. The source collection is only read; copies are named `<prefix>-...`.

  python -m bench.vector_plan --collection scifact --dataset DIR --qrels FILE [--prefix query] [--n 200]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.common import Report, query_texts, save, show
from bench.engines import copy_collection
from bench.query import Direct, Target, direct_search, interleaved, query_vectors
from core.access import ADMIN
from core.config import Settings, get_settings
from core.es import Client, make_client
from encoders import get_encoder
from evaluation import runs
from ingest.beir import find, load_qrels, load_queries
from ingest.lifecycle import encoder_text
from mappings import catalog
from mappings.catalog import Collection
from search.plan import PASSAGES
from search.schema import SearchRequest
from search.service import SearchService

MODES = ("vector", "hybrid")
THREADS = (1, 4)
SIZE = 100  # hits per query: Recall@100 needs them


@dataclass(frozen=True)
class Variant:
    """A plan: which collection it searches and which of the API's sub-queries it leaves out."""

    label: str
    collection: str
    drop: tuple[str, ...] = ()


def single_passage(source: dict[str, Any]) -> dict[str, Any]:
    """A stored document whose passage kNN also finds it when short: one passage, its own text and vector."""
    if source.get("passages") or not source.get("vectors"):
        return dict(source)
    text = encoder_text(source)
    passage = {"text": text, "start": 0, "end": len(text), "vectors": dict(source["vectors"])}
    return {**source, "passages": [passage]}


def without_passages(source: dict[str, Any]) -> dict[str, Any]:
    """A stored document as a collection of short documents holds it: no passages."""
    return {key: value for key, value in source.items() if key != "passages"}


def ensure_copy(es: Client, settings: Settings, name: str, target: str, *, transform: Any) -> dict[str, Any]:
    """The copy `target` of `name` (documents through `transform`), made once: kept when it has as many."""
    alias = catalog.alias_for(settings, target)
    want = catalog.status_counts(es, catalog.alias_for(settings, name))
    if es.indices.exists_alias(name=alias):
        if catalog.status_counts(es, alias) == want:
            return {"documents": want["total"], "seconds": "kept"}
        catalog.delete(es, settings, target)
    return copy_collection(es, es, settings, name, target_name=target, transform=transform)


def agreement(es: Client, collection: Collection, sample: int = 8) -> float:
    """Lowest cosine, over a sample of short documents, between each stored document vector and the text
    encoder's vector of the text its single passage holds (1.0: the passage vector is exactly right)."""
    body = {"bool": {"must_not": [{"nested": {"path": "passages", "query": {"match_all": {}}}}]}}
    resp = es.search(
        index=collection.alias,
        query=body,
        size=sample,
        source={"includes": ["title", "content", "vectors"], "exclude_vectors": False},
    )
    lowest = 1.0
    for name, desc in collection.encoders.items():
        if "text" not in desc.get("query_kinds", []):
            continue
        sources = [
            hit["_source"] for hit in resp["hits"]["hits"] if name in hit["_source"].get("vectors", {})
        ]
        fresh = get_encoder(name, desc.get("model")).encode([encoder_text(s) for s in sources], kind="text")
        for source, vector in zip(sources, fresh, strict=True):
            stored = np.asarray(source["vectors"][name], dtype=np.float32)
            cosine = float(stored @ vector / (np.linalg.norm(stored) * np.linalg.norm(vector)))
            lowest = min(lowest, cosine)
    return round(lowest, 5)


def directs(
    service: SearchService,
    collection: Collection,
    texts: list[str],
    vectors: list[dict[str, list[float]]],
    *,
    mode: str,
    drop: tuple[str, ...],
) -> list[Direct]:
    """The API's plan for each text with the `drop`ped sub-queries left out."""
    out = []
    for text, vector in zip(texts, vectors, strict=True):
        req = SearchRequest(query=text, mode=mode, size=SIZE)
        profile, bodies = service.plan(collection, req, vector, principal=ADMIN, passages=collection.passages)
        out.append(Direct(profile.fusion, {k: v for k, v in bodies.items() if k not in drop}))
    return out


def quality(es: Client, plans: list[Direct], alias: str, judged: dict[str, Any]) -> dict[str, float]:
    """nDCG@10 and Recall@100 of the plans' fused lists on the judged queries (4 clients)."""
    with ThreadPoolExecutor(4) as pool:
        hits = list(pool.map(partial(direct_search, es, alias), plans))
    ranked = {
        q: runs.ranked_run(h.doc_id for h in found[:SIZE])
        for q, found in zip(judged["ids"], hits, strict=True)
    }
    return runs.scores(judged["qrels"], ranked, ["ndcg@10", "recall@100"])


def measure(
    es: Client,
    service: SearchService,
    variants: list[Variant],
    *,
    queries: dict[str, Any],
    judged: dict[str, Any],
) -> list[dict[str, Any]]:
    """Per mode: each variant's quality, then their latencies (1 and 4 clients) taking turns."""
    rows = []
    for mode in MODES:
        targets: dict[str, Target] = {}
        scored = {}
        for variant in variants:
            collection = catalog.get(es, service.settings, variant.collection)
            key = f"{variant.label} | {variant.collection}"
            plans = directs(service, collection, *judged["texts"], mode=mode, drop=variant.drop)
            scored[key] = quality(es, plans, collection.alias, judged)
            latency_plans = directs(service, collection, *queries["latency"], mode=mode, drop=variant.drop)
            targets[key] = (partial(direct_search, es, collection.alias), latency_plans)
        for threads in THREADS:
            for key, row in interleaved(targets, threads).items():
                label, collection_name = key.split(" | ")
                rows.append(
                    {
                        "plan": label,
                        "collection": collection_name,
                        "mode": mode,
                        "clients": threads,
                        **row,
                        "nDCG@10": round(scored[key]["ndcg@10"], 4),
                        "R@100": round(scored[key]["recall@100"], 4),
                    }
                )
    return rows


def run(
    collection_name: str, dataset: Path, qrels_path: Path, *, prefix: str = "query", n: int = 200
) -> Report:
    settings = get_settings()
    es = make_client(settings)
    single, bare = f"{prefix}-single-passage", f"{prefix}-no-passages"
    copies = {
        single: ensure_copy(es, settings, collection_name, single, transform=single_passage),
        bare: ensure_copy(es, settings, collection_name, bare, transform=without_passages),
    }
    collection = catalog.get(es, settings, collection_name)
    texts = query_texts(dataset, n)
    qrels = load_qrels(qrels_path)
    judged_texts = runs.judged_queries(load_queries(find(dataset, "queries")), qrels)
    queries = {"latency": (texts, query_vectors(collection, texts))}
    judged_list = list(judged_texts.values())
    judged = {
        "ids": list(judged_texts),
        "texts": (judged_list, query_vectors(collection, judged_list)),
        "qrels": qrels,
    }
    passage_knn = [f"{PASSAGES}{e}" for e in collection.passages]
    doc_knn = [f"vector:{e}" for e in collection.passages]
    variants = [
        Variant("two sub-queries (today)", collection_name),
        Variant("two sub-queries (today)", single),  # the same ranking as on the source: same vectors
        Variant("passages only", single, tuple(doc_knn)),
        Variant("two sub-queries (today)", bare),
        Variant("document kNN only", bare, tuple(passage_knn)),
    ]
    service = SearchService(es, settings)
    rows = measure(es, service, variants, queries=queries, judged=judged)
    return Report(
        "vector_plan",
        f"vector plans on {collection_name!r}: latency on {n} queries, quality on {len(qrels)} judged ones",
        rows,
        [
            f"copies: {copies}; agreement (lowest cosine, stored document vector vs the encoder on the "
            f"single passage's text): {agreement(es, catalog.get(es, settings, single))}",
            "direct = the API's plan (search.plan, default profile, precomputed vectors) in one _msearch + "
            f"the API's fusion; size {SIZE}; the relevance cut-off is not applied;",
            "latency: the plans take turns 20 queries at a time (bench.query.interleaved); Elasticsearch "
            "and the benchmark client share this machine's CPUs with whatever else runs.",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.vector_plan", description=__doc__.split("\n")[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--qrels", type=Path, required=True)
    parser.add_argument("--prefix", default="query")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    report = run(args.collection, args.dataset, args.qrels, prefix=args.prefix, n=args.n)
    show(report, Console())
    print(f"JSON: {save(report)}", file=sys.stderr)


if __name__ == "__main__":
    main()

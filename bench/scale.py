"""Scale: search latency, index size and kNN recall at 10k / 100k / 1M documents, per vector index type.

Built from an encoded collection (SciFact through the real pipeline): its documents are repeated with their
real text and real text-encoder vectors. Copy 0 of a document keeps its vector; later copies add small
Gaussian noise and are renormalised (cosine ~0.95 to the original), so a million vectors are a million
distinct points clustered like a real corpus's, instead of ~190 identical copies of each (HNSW degrades on
exact duplicates, and recall@10 has no meaning among ties). Each (index type, size) is a collection of its
own, created with the product's mapping (only the vector field's `index_options` differ; no passages: the
whole-document vector is what is measured, and the source's nested passage vectors would multiply the
vectors per document by ~3 on SciFact) and bulk-loaded straight into Elasticsearch; latency is measured
through the API, recall with the API's kNN body against exact brute force over the very vectors indexed.

  python -m bench.scale --collection scifact --dataset DIR [--sizes 10000,100000,1000000]
                        [--types int8_hnsw,bbq_hnsw] [--candidates 100,200,400,800]
                        [--phase build|measure|all] [--source-url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch
from rich.console import Console

from bench.common import Report, latency_row, query_texts, save, show, spawned_api, timed_calls
from core.config import get_settings
from core.es import Client, engine_of, make_client, scan, streaming_bulk
from encoders import get_encoder
from mappings import catalog
from mappings.render import index_body
from search import plan
from search.schema import Profile, SearchRequest

FIELD = "text"
NOISE_COS = 0.95  # cosine of a copy to its original
SEED = 13
K = 10
MODES = ("lexical", "vector", "hybrid")
# Off-heap bytes per vector that HNSW search wants in the page cache (Elasticsearch's kNN tuning guide).
VECTOR_RAM = {"hnsw": lambda d: 4 * (d + 12), "int8_hnsw": lambda d: d + 4, "bbq_hnsw": lambda d: d / 8 + 14}


def source_corpus(es: Client, alias: str) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The encoded documents of the source collection, sorted by id, and their unit text vectors."""
    hits = scan(
        es,
        index=alias,
        query={"query": {"term": {"ingest.status": "encoded"}}, "_source": {"exclude_vectors": False}},
        size=500,
    )
    docs = sorted((hit["_source"] for hit in hits), key=lambda d: d["doc_id"])
    for doc in docs:
        doc.pop("passages", None)
    matrix = np.asarray([d["vectors"][FIELD] for d in docs], dtype=np.float32)
    return docs, matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def vectors(base: np.ndarray, size: int, chunk: int = 50_000) -> Iterator[np.ndarray]:
    """The `size` indexed vectors in order, chunk by chunk: row i is copy i // n of document i % n."""
    n, dims = base.shape
    sigma = np.sqrt((1 / NOISE_COS**2 - 1) / dims)  # |noise|^2 = dims * sigma^2 sets the cosine
    for start in range(0, size, chunk):
        rows = np.arange(start, min(start + chunk, size))
        out = base[rows % n].copy()
        noisy = rows >= n
        rng = np.random.default_rng([SEED, start])
        out[noisy] += rng.normal(0.0, sigma, size=(int(noisy.sum()), dims)).astype(np.float32)
        yield out / np.linalg.norm(out, axis=1, keepdims=True)


def name_of(index_type: str, size: int) -> str:
    return f"bench-scale-{index_type.replace('_', '-')}-{size}"


def create(es: Client, name: str, index_type: str, model: str) -> str:
    """The product's collection body with another `index_options` on the text vector field."""
    settings = get_settings()
    body = index_body(name, [get_encoder(FIELD, model)], settings, engine_of(es), passages=False)
    body["mappings"]["properties"]["vectors"]["properties"][FIELD]["index_options"] = {"type": index_type}
    body["settings"]["index"]["refresh_interval"] = "-1"  # bulk load; refreshed once at the end
    index = catalog.physical_index(settings, name, 1)
    es.indices.create(index=index, **body, aliases={catalog.alias_for(settings, name): {}})
    return index


def actions(
    index: str, name: str, docs: list[dict[str, Any]], base: np.ndarray, *, size: int
) -> Iterator[dict]:
    n = len(docs)
    i = 0
    for chunk in vectors(base, size):
        for row in chunk:
            doc = dict(docs[i % n])
            doc_id = f"{doc['doc_id']}~{i // n}"
            doc.update(doc_id=doc_id, collection=name, vectors={FIELD: row.tolist()})
            yield {"_index": index, "_id": doc_id, "_source": doc}
            i += 1


def build(es: Client, docs: list[dict], base: np.ndarray, index_type: str, *, size: int, model: str) -> dict:
    name = name_of(index_type, size)
    alias = catalog.alias_for(get_settings(), name)
    if es.indices.exists_alias(name=alias) and es.count(index=alias)["count"] == size:
        return {"name": name, "built s": "kept"}
    if es.indices.exists_alias(name=alias):
        catalog.delete(es, get_settings(), name)
    started = time.perf_counter()
    index = create(es, name, index_type, model)
    for ok, item in streaming_bulk(
        es, actions(index, name, docs, base, size=size), chunk_size=1000, request_timeout=600, max_retries=5
    ):
        if not ok:
            raise RuntimeError(f"bulk failed: {item}")
    es.indices.put_settings(index=index, settings={"index": {"refresh_interval": None}})
    es.indices.refresh(index=index, request_timeout=3600)
    return {"name": name, "built s": round(time.perf_counter() - started)}


def exact_top(base: np.ndarray, size: int, queries: np.ndarray) -> np.ndarray:
    """Ids (row numbers) of the exact top K by cosine over all `size` indexed vectors."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    offset = 0
    for chunk in vectors(base, size):
        scores = queries @ chunk.T
        rows = np.arange(offset, offset + len(chunk))[None, :].repeat(len(queries), 0)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_rows = np.concatenate([best_rows, rows], axis=1)
        top = np.argsort(-all_scores, axis=1)[:, :K]
        best_scores = np.take_along_axis(all_scores, top, 1)
        best_rows = np.take_along_axis(all_rows, top, 1)
        offset += len(chunk)
    return best_rows


def recall(
    es: Client,
    alias: str,
    docs: list[dict],
    exact: np.ndarray,
    *,
    qvecs: np.ndarray,
    num_candidates: int,
) -> tuple[float, float]:
    """Recall@10 of the API's kNN sub-query (default profile, `num_candidates`) against exact search: of
    the very copies, and of the source documents (any copy of each abstract in the exact top 10 counts;
    at 1M each abstract has ~190 near-copies, so the exact top 10 is mostly copies of one or two)."""
    n = len(docs)
    profile = Profile(num_candidates=num_candidates)
    found, documents = 0, 0.0
    for qvec, rows in zip(qvecs, exact, strict=True):
        req = SearchRequest(mode="vector", size=K, highlight=False)
        encoders = {FIELD: {"element_type": "float"}}
        body = plan.subqueries(req, profile, {FIELD: qvec.tolist()}, encoders, window=K, engine=engine_of(es))
        body = body[f"vector:{FIELD}"] | {"_source": False}
        hits = es.search(index=alias, **body)["hits"]["hits"]
        want = {f"{docs[r % n]['doc_id']}~{r // n}" for r in rows}
        found += len(want & {h["_id"] for h in hits})
        sources = {docs[r % n]["doc_id"] for r in rows}
        documents += len(sources & {h["_id"].split("~")[0] for h in hits}) / len(sources)
    return round(found / (K * len(qvecs)), 4), round(documents / len(qvecs), 4)


def measure(
    es: Client,
    client: Any,
    docs: list[dict],
    base: np.ndarray,
    *,
    index_type: str,
    size: int,
    texts: list[str],
    qvecs: np.ndarray,
    candidates: list[int],
) -> list[dict[str, Any]]:
    name = name_of(index_type, size)
    alias = catalog.alias_for(get_settings(), name)
    stats = es.indices.stats(index=alias, metric="store,segments")["_all"]["primaries"]
    common = {
        "index": index_type,
        "documents": size,
        "segments": stats["segments"]["count"],
        "disk MB": round(stats["store"]["size_in_bytes"] / 2**20),
        "vector RAM MB": round(VECTOR_RAM[index_type](base.shape[1]) * size / 2**20),
    }
    exact = exact_top(base, size, qvecs)
    for nc in candidates:
        copies, documents = recall(es, alias, docs, exact, qvecs=qvecs, num_candidates=nc)
        if nc == candidates[0]:
            common |= {"recall@10": copies, "doc recall@10": documents}
        else:
            common[f"recall nc{nc}"] = copies
    rows = []
    for mode in MODES:
        client.search(name, texts[0], mode=mode)  # warm-up, not counted
        lat, wall = timed_calls(lambda t, m=mode: client.search(name, t, mode=m), texts, 1)
        rows.append({**common, "mode": mode, **latency_row(lat, wall)})
    return rows


def run(args: argparse.Namespace) -> Report:
    settings = get_settings()
    es = make_client(settings)
    source_es = Elasticsearch(args.source_url) if args.source_url else es
    source = catalog.get(source_es, settings, args.collection)
    model = source.encoders[FIELD].get("model")
    docs, base = source_corpus(source_es, source.alias)
    sizes = [int(s) for s in args.sizes.split(",")]
    types = args.types.split(",")
    candidates = [int(c) for c in args.candidates.split(",")]
    built = []
    if args.phase in ("build", "all"):
        for index_type in types:
            for size in sizes:
                built.append(
                    {
                        "index": index_type,
                        "documents": size,
                        **build(es, docs, base, index_type, size=size, model=model),
                    }
                )
                print(built[-1], flush=True)
    rows: list[dict[str, Any]] = []
    if args.phase in ("measure", "all"):
        texts = query_texts(args.dataset, args.queries)
        qvecs = np.asarray(get_encoder(FIELD, model).encode(texts, kind="text"), dtype=np.float32)
        qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
        with spawned_api({}) as client:
            for index_type in types:
                for size in sizes:
                    rows += measure(
                        es,
                        client,
                        docs,
                        base,
                        index_type=index_type,
                        size=size,
                        texts=texts,
                        qvecs=qvecs,
                        candidates=candidates,
                    )
    return Report(
        "scale",
        f"search at scale: {len(docs)} encoded documents of {args.collection!r} repeated, "
        f"{args.queries} queries, 1 client, size 10, default profile",
        rows or built,
        [
            f"copies add Gaussian noise to the real vectors (cosine {NOISE_COS} to the original), "
            "renormalised; text is repeated as is;",
            f"recall@10 = the API's kNN body (k 10, num_candidates {candidates[0]}, rescore_vector "
            "oversample 3) vs exact cosine over the indexed vectors; doc recall: any copy of the right "
            "abstract counts; recall ncN: the same with num_candidates N; vector RAM = Elasticsearch's "
            "off-heap estimate per vector (int8: dims+4 B, bbq: dims/8+14 B) times documents;",
            "no force-merge (segments shown); bulk with refresh off, one refresh at the end.",
            *(f"built {b['name']}: {b['built s']} s" for b in built),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collection", required=True, help="an encoded collection to repeat")
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR directory (queries)")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--types", default="int8_hnsw,bbq_hnsw")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--candidates", default="100", help="num_candidates to measure recall at (the first: the default's)"
    )
    parser.add_argument("--phase", choices=("build", "measure", "all"), default="all")
    parser.add_argument("--source-url", help="Elasticsearch holding the source collection, if another")
    args = parser.parse_args()
    report = run(args)
    show(report, Console(width=None if sys.stdout.isatty() else 200))
    print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()

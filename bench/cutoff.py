"""Where a result set should end, measured on SciFact's training judgments (`python -m bench.cutoff`):
cross-validated F1 of the returned set per mode, learned against a fixed top 10, the best fixed score
threshold and the default rule; and the issue's demo queries with and without the cut.

The subset: every abstract judged for a training query plus `others` more drawn with a fixed seed (the
whole corpus takes too long to encode on a small CPU)."""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.common import ROOT, Report, results_dir, save, show
from client.api import ApiClient
from evaluation import cutoff as fitting
from evaluation import tuning
from evaluation.runs import ensure_collection, judged_queries
from ingest.beir import find, iter_jsonl, load_qrels, load_queries
from search.schema import Cutoff, Profile

QRELS = "qrels-train.tsv"
DEMO_QUERIES = ("how do oceans suffer from warming", "budget report", "rain tomorrow")


def write_subset(source: Path, out: Path, *, others: int = 500, seed: int = 13) -> Path:
    """A BEIR folder: the training queries, their judgments, their judged abstracts and `others` more."""
    out.mkdir(parents=True, exist_ok=True)
    qrels = load_qrels(source / QRELS)
    judged = {doc for docs in qrels.values() for doc in docs}
    rows = list(iter_jsonl(find(source, "corpus")))
    rest = sorted(row["_id"] for row in rows if row["_id"] not in judged)
    random.Random(seed).shuffle(rest)  # a prefix: a smaller subset lies inside a larger one
    keep = judged | set(rest[:others])
    with gzip.open(out / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows if row["_id"] in keep)
    queries = [row for row in iter_jsonl(find(source, "queries")) if row["_id"] in qrels]
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (out / QRELS).write_text((source / QRELS).read_text())
    return out


def judged_lists(
    client: ApiClient, collection: str, subset: Path, *, reuse: bool = False
) -> dict[str, list[fitting.Judged]]:
    """Every training query's lexical and kNN windows through the API, and their fusion (the default
    profile), as `evaluation.cutoff` fits them. The windows are saved beside the results; `reuse` reads
    them back instead of asking the API again (to refit only)."""
    qrels = load_qrels(subset / QRELS)
    cache = results_dir() / f"cutoff-windows-{collection}.json"
    if reuse and cache.exists():
        saved = json.loads(cache.read_text())
        names, comps = saved["names"], tuning.Components(lexical={1.0: saved["lexical"]})
        comps.vector = {(name, 100): saved["vector"][name] for name in names}
    else:
        queries = judged_queries(load_queries(find(subset, "queries")), qrels)
        names = tuning.vector_subqueries(client, collection)
        grid = tuning.Grid(title_boosts=(1.0,), num_candidates=(100,))
        comps = tuning.fetch_components(client, collection, queries, grid, vector_names=names)
        vector = {name: comps.vector[(name, 100)] for name in names}
        cache.write_text(json.dumps({"names": names, "lexical": comps.lexical[1.0], "vector": vector}))
    return fitting.judged_sets(comps, Profile(), names, qrels)


def fit_report(
    sets: dict[str, list[fitting.Judged]], *, folds: int, beta: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each list kind fitted and its baselines cross-validated: (the fitting report, the rules learned),
    each row with the mean number of hits its rule keeps."""
    rules, report = fitting.fit(sets, n_folds=folds, beta=beta)
    merit = {  # the merit rules each row of the hybrid report was scored under
        "learned": fitting.in_force(rules),
        "best_relative": fitting.in_force(rules),
        "default": fitting.in_force({}),
    }
    for kind, fitted in report.items():
        for key, row in fitted["cv"].items():
            lists = merit.get(key, {}) if kind == "hybrid" else {}
            row["returned"] = fitting.mean_size(sets[kind], Cutoff.model_validate(row["rule"]), lists)
    return report, {kind: rule.model_dump() for kind, rule in rules.items()}


def demo_rows(client: ApiClient, collection: str) -> list[dict[str, Any]]:
    """The issue's demo queries, hybrid: every hit without the cut, the hits that remain with it."""
    rows = []
    for query in DEMO_QUERIES:
        before = client.search(collection, query, size=100, cutoff=False)
        after = client.search(collection, query, size=100)
        kept = {hit["id"] for hit in after["hits"]}
        rows.append(
            {
                "query": query,
                "before": before["total"],
                "after": after["total"],
                "kept": [_label(h) for h in after["hits"]],
                "next dropped": [_label(h) for h in before["hits"] if h["id"] not in kept][:3],
                "cutoff": after["cutoff"],
            }
        )
    return rows


def _label(hit: dict[str, Any]) -> str:
    source = hit["source"]
    name = source.get("title") or source.get("source", {}).get("filename") or hit["id"]
    return f"{name} ({source.get('modality', '?')}, {hit['score']:.2f})"


def run(
    client: ApiClient,
    dataset: Path,
    *,
    collection: str = "scifact-cut",
    others: int = 500,
    folds: int = 5,
    betas: tuple[float, ...] = (1.0, 2.0),
    demo: str | None = "demo",
    reuse: bool = False,
) -> Report:
    """The subset loaded (and encoded) unless the collection holds it, the fit for each F-beta, the demo
    queries with and without the cut."""
    subset = write_subset(dataset, results_dir() / "scifact-subset", others=others)
    ensure_collection(client, collection, find(subset, "corpus"))
    counts = client.wait_encoded(collection, timeout=7200)
    sets = judged_lists(client, collection, subset, reuse=reuse)
    rows, learned = [], {}
    for beta in betas:
        report, learned[f"F{beta:g}"] = fit_report(sets, folds=folds, beta=beta)
        rows += [
            {
                "F": f"F{beta:g}",
                "mode": kind,
                "cut-off": fitting.LABELS[key],
                "rule (all queries)": fitting.describe(Cutoff.model_validate(row["rule"])),
                "CV mean": row["mean"],
                "± std": row["std"],
                "returned": row["returned"],
            }
            for kind, fitted in report.items()
            for key, row in fitted["cv"].items()
        ]
    demos = demo_rows(client, demo) if demo and client.collection_exists(demo) else []
    notes = [
        f"SciFact training judgments: {len(sets['lexical'])} queries over {counts.get('total')} "
        f"abstracts (every judged one + {others} others, seed 13), {folds}-fold CV; 'returned': mean hits "
        "kept on all queries by the rule chosen on all of them",
        f"learned rules (kept where they beat the default): {learned}",
        *(
            f"{d['query']!r}: {d['before']} -> {d['after']}: {d['kept']}; next dropped: {d['next dropped']}"
            for d in demos
        ),
    ]
    return Report("cutoff", "Relevance cut-off: F-beta of the returned set, cross-validated", rows, notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--collection", default="scifact-cut")
    parser.add_argument("--others", type=int, default=500)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--betas", default="1,2", help="F-beta to fit for, comma-separated.")
    parser.add_argument("--demo", default="demo", help="The `mmsearch demo` collection ('' to skip).")
    parser.add_argument("--reuse", action="store_true", help="Refit on the windows the last run saved.")
    args = parser.parse_args()
    console = Console()
    report = run(
        ApiClient.from_settings(),
        args.dataset,
        collection=args.collection,
        others=args.others,
        folds=args.folds,
        betas=tuple(float(b) for b in args.betas.split(",")),
        demo=args.demo or None,
        reuse=args.reuse,
    )
    show(report, console)
    console.print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()

"""Learn a collection's search profile (fusion, lexical boosts, kNN candidates) from training judgments.

Efficient and faithful: each sub-query's ranking is fetched once per query and per setting that changes
it (lexical boosts; kNN num_candidates) through the real API, as a single-sub-query search with
`explain`, which keeps every hit's rank and raw score. A hybrid search cannot return them completely:
its page (at most 100) is cut from the fused union of two windows, and min-max/z-score/L2 and
re-weighted RRF need the whole of each window. Every fusion candidate is then scored offline with the
very fusion code the API runs (`search.fusion.fuse`), so the saved profile ranks online exactly as it
did offline.
Model selection is k-fold cross-validation on nDCG@10: pick on the training folds, score the held-out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from client.api import ApiClient, ApiClientError
from evaluation.runs import Judgments, per_query, ranked_run, run_queries
from search.fusion import Ranking, fuse
from search.schema import Fusion, Profile

METRIC = "ndcg@10"
CUTOFF = 10

QueryRankings = dict[str, Ranking]  # sub-query name -> ranking, for one query
Progress = Callable[[], None] | None


@dataclass(frozen=True)
class Grid:
    """The candidates; the defaults (title/content 1/1, 100 candidates) are always fetched too."""

    title_boosts: tuple[float, ...] = (0.5, 1.0, 2.0)
    num_candidates: tuple[int, ...] = (100, 200)
    rrf_k: tuple[float, ...] = (10, 20, 40, 60, 100)
    lexical_weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    normalizations: tuple[str, ...] = ("minmax", "zscore", "l2")
    window: int = 100  # rank_window: each sub-query's list length (the API pages at most 100)

    def boosts(self) -> list[float]:
        return sorted(set(self.title_boosts) | {1.0})

    def candidates(self) -> list[int]:
        return sorted(set(self.num_candidates) | {100})

    def fusions(self, vector_names: list[str]) -> list[Fusion]:
        """Weighted RRF and linear fusion; the vector share of the weight is split evenly."""
        out = []
        for w in self.lexical_weights:
            weights = {"lexical": w, **{name: round((1 - w) / len(vector_names), 6) for name in vector_names}}
            out += [Fusion(method="rrf", k=k, weights=weights) for k in self.rrf_k]
            out += [
                Fusion(method="linear", weights=weights, normalization=norm) for norm in self.normalizations
            ]
        return out


@dataclass
class Components:
    """Per-query rankings of each sub-query under each setting, as the API returned them."""

    lexical: dict[float, dict[str, Ranking]] = field(default_factory=dict)  # title boost -> qid -> list
    vector: dict[tuple[str, int], dict[str, Ranking]] = field(default_factory=dict)  # (name, nc) -> ...

    def rankings(self, profile: Profile, vector_names: list[str], qid: str) -> QueryRankings:
        out = {"lexical": self.lexical[profile.boosts["title"]][qid]}
        for name in vector_names:
            out[name] = self.vector[(name, profile.num_candidates)][qid]
        return out


def describe(profile: Profile) -> str:
    f = profile.fusion
    weight = (f.weights or {}).get("lexical")
    method = f"rrf k={f.k:g}" if f.method == "rrf" else f"linear {f.normalization}"
    return (
        f"{method}, {'equal weights' if weight is None else f'lexical weight {weight:g}'}, "
        f"title^{profile.boosts['title']:g} content^{profile.boosts['content']:g}, "
        f"num_candidates {profile.num_candidates}"
    )


def vector_subqueries(client: ApiClient, collection: str) -> list[str]:
    """Sub-query names of the encoders a text query reaches (`vector:text`, ...)."""
    encoders = client.collection(collection)["encoders"]
    return [f"vector:{name}" for name, desc in encoders.items() if "text" in desc.get("query_kinds", [])]


def fetch_ranking(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    name: str,
    *,
    params: dict[str, Any],
    window: int,
    threads: int = 4,
    progress: Progress = None,
) -> dict[str, Ranking]:
    """One single-sub-query search per query: its passthrough explanation holds rank and raw score."""
    request = {**params, "explain": True, "size": window, "rank_window": window, "cutoff": False}
    responses, _ = run_queries(client, collection, queries, request, threads=threads, progress=progress)
    return {
        qid: [(h["id"], float(h["explanation"]["components"][name]["score"])) for h in resp["hits"]]
        for qid, resp in responses.items()
    }


def fetch_components(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    grid: Grid,
    *,
    vector_names: list[str],
    threads: int = 4,
    progress: Progress = None,
) -> Components:
    comps = Components()
    for title in grid.boosts():
        params = {"mode": "lexical", "boosts": {"title": title, "content": 1.0}}
        comps.lexical[title] = fetch_ranking(
            client,
            collection,
            queries,
            "lexical",
            params=params,
            window=grid.window,
            threads=threads,
            progress=progress,
        )
    for name in vector_names:
        encoder = name.removeprefix("vector:")
        for nc in grid.candidates():
            params = {"mode": "vector", "encoders": [encoder], "num_candidates": nc}
            comps.vector[(name, nc)] = fetch_ranking(
                client,
                collection,
                queries,
                name,
                params=params,
                window=grid.window,
                threads=threads,
                progress=progress,
            )
    return comps


def profiles(grid: Grid, vector_names: list[str]) -> list[Profile]:
    """Every candidate, the defaults first (so a tie keeps the defaults)."""
    out = [Profile(rank_window=grid.window)]
    for title in grid.boosts():
        for nc in grid.candidates():
            for spec in grid.fusions(vector_names):
                out.append(
                    Profile(
                        fusion=spec,
                        boosts={"title": title, "content": 1.0},
                        num_candidates=nc,
                        rank_window=grid.window,
                    )
                )
    return out


def fused_top(rankings: QueryRankings, spec: Fusion, size: int = CUTOFF) -> list[str]:
    """The API's own fusion dispatch (passthrough / linear / RRF), so offline equals online."""
    return [hit.doc_id for hit in fuse(rankings, spec)[:size]]


def score_matrix(
    qrels: Judgments,
    comps: Components,
    candidates: list[Profile],
    vector_names: list[str],
    *,
    progress: Progress = None,
) -> np.ndarray:
    """nDCG@10 of every candidate (rows) on every judged query (columns, in `qrels` order)."""
    qids = list(qrels)
    rows = []
    for profile in candidates:
        run = {
            qid: ranked_run(fused_top(comps.rankings(profile, vector_names, qid), profile.fusion))
            for qid in qids
        }
        rows.append(_row(qrels, run))
        if progress:
            progress()
    return np.vstack(rows)


def single_rankings(qrels: Judgments, rankings: dict[str, Ranking]) -> np.ndarray:
    """nDCG@10 of one sub-query alone (lexical-only or vector-only)."""
    return _row(qrels, {qid: ranked_run(d for d, _ in rankings[qid][:CUTOFF]) for qid in qrels})


def _row(qrels: Judgments, run: dict[str, dict[str, float]]) -> np.ndarray:
    values = per_query(qrels, run, METRIC)
    return np.array([values[qid] for qid in qrels])


def folds(n: int, k: int, seed: int = 13) -> list[np.ndarray]:
    """Shuffled, near-equal folds of query positions."""
    if not 2 <= k <= n:
        raise ValueError(f"need 2 <= folds <= queries, got {k} folds for {n} queries")
    return np.array_split(np.random.default_rng(seed).permutation(n), k)


def cross_validate(matrix: np.ndarray, splits: list[np.ndarray]) -> tuple[list[int], list[float]]:
    """Per fold: the best row on the other folds, and its score on this one."""
    chosen, held_out = [], []
    everything = np.arange(matrix.shape[1])
    for test in splits:
        train = np.setdiff1d(everything, test)
        best = int(np.argmax(matrix[:, train].mean(axis=1)))
        chosen.append(best)
        held_out.append(float(matrix[best, test].mean()))
    return chosen, held_out


def fixed_folds(row: np.ndarray, splits: list[np.ndarray]) -> list[float]:
    return [float(row[test].mean()) for test in splits]


def summary(per_fold: list[float], everything: np.ndarray) -> dict[str, Any]:
    return {
        "mean": round(float(np.mean(per_fold)), 4),
        "std": round(float(np.std(per_fold)), 4),
        "per_fold": [round(v, 4) for v in per_fold],
        "all_queries": round(float(everything.mean()), 4),
    }


@dataclass
class TuneResult:
    profile: Profile
    report: dict[str, Any]
    comps: Components
    vector_names: list[str]


def tune(
    client: ApiClient,
    collection: str,
    queries: dict[str, str],
    qrels: Judgments,
    *,
    n_folds: int = 5,
    grid: Grid | None = None,
    threads: int = 4,
    progress: Callable[[str, int], Progress] | None = None,
) -> TuneResult:
    """Cross-validated choice of a profile, then the profile fitted on every training judgment.

    `progress(stage, total)` may return a per-step callback for each stage."""
    grid = grid or Grid()
    if grid.window > 100:
        raise ValueError("window may not exceed 100 (the API's page size)")
    qrels = {qid: qrels[qid] for qid in queries}
    names = vector_subqueries(client, collection)
    if not names:
        raise ValueError(f"collection {collection!r} has no encoder that takes text queries: nothing to fuse")
    fetches = len(grid.boosts()) + len(names) * len(grid.candidates())
    step = progress("fetch rankings", fetches * len(queries)) if progress else None
    comps = fetch_components(
        client, collection, queries, grid, vector_names=names, threads=threads, progress=step
    )

    candidates = profiles(grid, names)
    step = progress("score candidates", len(candidates)) if progress else None
    matrix = score_matrix(qrels, comps, candidates, names, progress=step)
    splits = folds(len(qrels), n_folds)
    chosen, held_out = cross_validate(matrix, splits)
    best = int(np.argmax(matrix.mean(axis=1)))
    cv = cv_summaries(matrix, held_out, best, splits, rows=baselines(qrels, comps, names))
    # The search over the grid is only worth keeping if it generalises: when its cross-validated score
    # does not beat the defaults', the in-sample winner is noise and the defaults are saved instead.
    selected = "tuned" if cv["tuned"]["mean"] > cv["defaults"]["mean"] else "defaults"
    if selected == "defaults":
        best = 0
    report = {
        "metric": METRIC,
        "collection": collection,
        "queries": len(qrels),
        "folds": n_folds,
        "candidates": len(candidates),
        "grid": asdict(grid),
        "cv": cv,
        "fold_choices": [describe(candidates[i]) for i in chosen],
        "chosen": describe(candidates[best]),
        "selected": selected,
    }
    scores = profile_scores(cv, selected, n_folds, len(qrels))
    profile = candidates[best].model_copy(update={"scores": scores})
    return TuneResult(profile, report, comps, names)


def baselines(qrels: Judgments, comps: Components, names: list[str]) -> dict[str, np.ndarray]:
    """Per-query nDCG@10 of each sub-query alone: lexical, then every vector field at 100 candidates."""
    return {
        "lexical": single_rankings(qrels, comps.lexical[1.0]),
        **{name: single_rankings(qrels, comps.vector[(name, 100)]) for name in names},
    }


def cv_summaries(
    matrix: np.ndarray,
    held_out: list[float],
    best: int,
    splits: list[np.ndarray],
    *,
    rows: dict[str, np.ndarray],
) -> dict[str, dict[str, Any]]:
    """Cross-validated scores of the tuned choice, the defaults (row 0) and each single sub-query."""
    return {
        "tuned": summary(held_out, matrix[best]),
        "defaults": summary(fixed_folds(matrix[0], splits), matrix[0]),
        **{name: summary(fixed_folds(row, splits), row) for name, row in rows.items()},
    }


def profile_scores(
    cv: dict[str, dict[str, Any]], selected: str, n_folds: int, queries: int
) -> dict[str, Any]:
    """What the saved profile records of how it was chosen and how well it scored."""
    return {
        "metric": METRIC,
        "selected": selected,
        "cv_mean": cv[selected]["mean"],
        "cv_std": cv[selected]["std"],
        "folds": n_folds,
        "queries": queries,
        "fit_all": cv[selected]["all_queries"],
        "baselines_cv": {name: cv[name]["mean"] for name in cv if name != "tuned"},
        "tuned_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_profile(client: ApiClient, collection: str, name: str, profile: Profile) -> dict[str, Any]:
    return client.request(
        "PUT", f"/v1/collections/{collection}/profiles/{name}", json=profile.model_dump(mode="json")
    )


def verify_online(
    client: ApiClient,
    collection: str,
    name: str,
    result: TuneResult,
    *,
    queries: dict[str, str],
    sample: int = 20,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Do online searches with the saved profile return the offline top 10? Retries while API processes
    may still serve a cached collection description (a few seconds)."""
    qids = sorted(queries)[:sample]
    offline = {
        qid: fused_top(result.comps.rankings(result.profile, result.vector_names, qid), result.profile.fusion)
        for qid in qids
    }
    deadline = time.monotonic() + timeout
    while True:
        try:
            agree = [
                qid for qid in qids if _online_top(client, collection, name, queries[qid]) == offline[qid]
            ]
        except ApiClientError:  # the profile is not visible yet to this API process
            if time.monotonic() > deadline:
                raise
            agree = []
        if len(agree) == len(qids) or time.monotonic() > deadline:
            return {"queries": len(qids), "agree": len(agree), "disagree": sorted(set(qids) - set(agree))}
        time.sleep(1.0)


def _online_top(client: ApiClient, collection: str, profile: str, text: str) -> list[str]:
    return [
        h["id"] for h in client.search(collection, text, profile=profile, size=CUTOFF, cutoff=False)["hits"]
    ]

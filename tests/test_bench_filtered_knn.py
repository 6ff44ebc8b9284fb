"""The filtered-kNN benchmark's ground truth, without services: who may read what, and exact search over
only the allowed documents."""

from __future__ import annotations

import numpy as np

from bench.filtered_knn import SHARES, draws, exact_top, principal_for, readers_of
from core.access import read_filter


def test_each_principal_reads_its_share_and_the_shares_nest() -> None:
    shares = draws(20_000)
    for share in SHARES:
        terms = set(read_filter(principal_for(share))["terms"]["readers"])
        readable = [bool(terms & set(readers_of(float(d)))) for d in shares[:2000]]
        assert readable == [bool(d < share) for d in shares[:2000]]
        assert abs(float((shares < share).mean()) - share) < 0.01
    assert readers_of(0.005) == ["group:share-1pct", "group:share-10pct", "group:share-50pct"]
    assert readers_of(0.9) == ["group:nobody"] and principal_for(None) is None


def test_exact_search_ranks_only_allowed_documents() -> None:
    rng = np.random.default_rng(1)
    docs = rng.normal(size=(500, 8)).astype(np.float32)
    queries = docs[:3] + 0.01  # each query's nearest document is itself
    allowed = np.zeros(500, dtype=bool)
    allowed[[1, 2] + list(range(100, 130))] = True
    top = exact_top(docs, allowed, queries)
    assert all(len(ids) == 10 for ids in top)
    assert "d0" not in top[0] and "d1" in top[1] and "d2" in top[2]
    assert all(int(i[1:]) in {1, 2, *range(100, 130)} for ids in top for i in ids)

"""`bench.knn_recall`'s exact reference for passages: each document scored by its best passage."""

from __future__ import annotations

import numpy as np

from bench.knn_recall import best_passage_scores


def test_a_document_scores_by_its_best_passage_and_one_without_passages_by_none() -> None:
    passages = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    owners = np.array([0, 0, 1])  # document 0 holds two passages, document 1 one, document 2 none
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    best = best_passage_scores(passages, owners, 3, queries)
    np.testing.assert_allclose(best, [[1.0, 0.6, -1.0], [1.0, 0.8, -1.0]])

"""The query benchmarks' own arithmetic (no services): the ratios the goals name, targets taking turns,
and the copy that gives each short document one passage."""

from __future__ import annotations

from bench.query import API_WARM, DIRECT, DIRECT_PAGE, interleaved, with_ratios
from bench.vector_plan import single_passage, without_passages


def row(target: str, mode: str, p50: float) -> dict[str, object]:
    return {"target": target, "mode": mode, "clients": 1, "p50 ms": p50}


def test_ratios_compare_with_direct_of_the_same_mode_and_with_the_same_targets_lexical() -> None:
    rows = with_ratios(
        [
            row(API_WARM, "lexical", 20.0),
            row(API_WARM, "hybrid", 44.0),
            row(DIRECT, "lexical", 10.0),
            row(DIRECT, "hybrid", 40.0),
            row(DIRECT_PAGE, "hybrid", 55.0),
        ]
    )
    api_hybrid = rows[1]
    assert api_hybrid["x direct (p50)"] == 1.1 and api_hybrid["x direct+page (p50)"] == 0.8
    assert api_hybrid["x lexical (p50)"] == 2.2
    assert rows[0]["x direct+page (p50)"] == "-"  # no direct + page lexical row to compare with


def test_targets_take_turns_over_every_item() -> None:
    seen: list[tuple[str, int]] = []
    targets = {
        "a": (lambda item: seen.append(("a", item)), list(range(50))),
        "b": (lambda item: seen.append(("b", item)), list(range(50))),
    }
    rows = interleaved(targets, threads=1, chunk=20)
    assert sorted(seen) == sorted([("a", i) for i in range(50)] + [("b", i) for i in range(50)])
    assert [label for label, _ in seen[:21]] == ["a"] * 20 + ["b"]  # a's first chunk, then b's
    assert seen[40][0] == "b"  # the second turn starts with b
    assert set(rows) == {"a", "b"} and rows["a"]["QPS"] > 0


def test_a_short_document_gets_one_passage_with_its_own_text_and_vector() -> None:
    short = {"title": "Sleep", "content": "Infants sleep.", "vectors": {"text": [0.1, 0.2]}}
    copied = single_passage(short)
    assert copied["passages"] == [
        {"text": "Sleep. Infants sleep.", "start": 0, "end": 21, "vectors": {"text": [0.1, 0.2]}}
    ]
    assert "passages" not in short  # the stored source is not changed
    long = {**short, "passages": [{"text": "p", "vectors": {"text": [0.3, 0.4]}}]}
    assert single_passage(long) == long and "passages" not in without_passages(long)
    assert "passages" not in single_passage({"title": "pending", "content": "no vectors yet"})

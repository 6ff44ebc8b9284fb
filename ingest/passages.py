"""Long texts -> passages a text encoder can read whole, cut with the encoder's own tokenizer.

A text encoder reads its first `window` tokens and drops the rest, so a long document's one vector says
nothing about page 12. Such a document is cut into passages of at most `max_tokens` tokens:

- a paragraph (text between blank lines) that fits is never split, and a paragraph that fits in a
  passage of its own is not started at the end of a fuller one (so a passage rarely mixes topics);
- a longer paragraph is packed sentence by sentence, consecutive passages sharing up to `overlap` tokens
  (whole sentences) so an answer that straddles a cut is whole in one of them;
- a sentence longer than a passage is cut at token boundaries, with the same overlap.

Each passage keeps its character span over `content` and, where the document has them, the page it
starts and ends on (the page map of `ingest.pages`) and its start/end time (the timed phrase `segments`
of a transcript). Pure: the caller brings the
token spans, so tests run the real tokenizer and the worker encodes exactly what was cut here.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.pages import in_content_order, page_of

Span = tuple[int, int]
Tokenizer = Callable[[str], list[Span]]  # text -> character span of each token

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


@dataclass(frozen=True)
class Passage:
    start: int  # character offsets into the document's content
    end: int
    tokens: int

    def as_source(self, content: str) -> dict[str, Any]:
        return {"text": content[self.start : self.end], "start": self.start, "end": self.end}


def needs_passages(tokens: int, window: int) -> bool:
    """Passages only where the encoder would cut the text: shorter documents keep one vector, as before."""
    return tokens > window


def split(content: str, spans: Sequence[Span], max_tokens: int, overlap: int) -> list[Passage]:
    """Passages covering `content` (whose tokens are `spans`), at most `max_tokens` tokens each."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"need max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens}, {overlap}")
    starts = [s for s, _ in spans]
    out: list[Passage] = []
    current: list[Span] = []  # token ranges [first, end) of the whole paragraphs/sentences under way

    def flush() -> None:
        if current:
            first, last = current[0][0], current[-1][1]
            out.append(Passage(spans[first][0], spans[last - 1][1], last - first))
            current.clear()

    for para in _units(content, _PARAGRAPH):
        first, last = _token_range(starts, para)
        if first == last:
            continue
        used = (current[-1][1] - current[0][0]) if current else 0
        if used + (last - first) > max_tokens:
            flush()
        if last - first <= max_tokens:
            current.append((first, last))
            continue
        for sentence in _sentences(content, para, starts):
            done, after = _add_sentence(sentence, current, spans, max_tokens=max_tokens, overlap=overlap)
            out.extend(done)
            current[:] = after
        flush()  # a split paragraph ends its passage; the next paragraph starts fresh
    flush()
    return out


def _add_sentence(
    sentence: Span, current: list[Span], spans: Sequence[Span], *, max_tokens: int, overlap: int
) -> tuple[list[Passage], list[Span]]:
    """Pack one sentence (a token range) into the passage under way (`current`), carrying whole sentences
    over; returns (the passages it completed, the passage under way after it)."""
    first, last = sentence
    done: list[Passage] = []
    while last - first > max_tokens:  # a run-on "sentence": cut by tokens
        cut, current = _add_sentence(
            (first, first + max_tokens), current, spans, max_tokens=max_tokens, overlap=overlap
        )
        done.extend(cut)
        first += max_tokens - overlap
    if current and last - current[0][0] > max_tokens:
        start, end = current[0][0], current[-1][1]
        done.append(Passage(spans[start][0], spans[end - 1][1], end - start))
        carried: list[Span] = []
        for item in reversed(current):  # the tail of whole sentences that fits the overlap
            if end - item[0] > overlap or last - item[0] > max_tokens:
                break
            carried.insert(0, item)
        current = carried
    return done, [*current, (first, last)]


def _units(content: str, separator: re.Pattern[str], start: int = 0, end: int | None = None) -> list[Span]:
    """Character spans of `content[start:end]` between separator matches."""
    end = len(content) if end is None else end
    units, cursor = [], start
    for match in separator.finditer(content, start, end):
        if match.start() > cursor:
            units.append((cursor, match.start()))
        cursor = match.end()
    if cursor < end:
        units.append((cursor, end))
    return units


def _token_range(starts: Sequence[int], span: Span) -> tuple[int, int]:
    """Indices [first, last) of the tokens starting inside a character span."""
    return bisect.bisect_left(starts, span[0]), bisect.bisect_left(starts, span[1])


def _sentences(content: str, para: Span, starts: Sequence[int]) -> list[Span]:
    ranges = [_token_range(starts, s) for s in _units(content, _SENTENCE_END, *para)]
    return [(a, b) for a, b in ranges if b > a]


# --- where a passage sits: pages and times ----------------------------------------------------------


def segment_spans(content: str, segments: Sequence[Mapping[str, Any]]) -> list[tuple[int, int, float, float]]:
    """(start char, end char, start s, end s) of each timed transcript segment found in `content`, in
    order (a segment whose text is not found is skipped)."""
    out, cursor = [], 0
    for seg in segments:
        text = str(seg.get("text") or "").strip()
        at = content.find(text, cursor) if text and "start" in seg else -1
        if at >= 0:
            out.append((at, at + len(text), float(seg["start"]), float(seg.get("end", seg["start"]))))
            cursor = at + len(text)
    return out


def locate(
    passage: Passage,
    content: str,
    pages: Sequence[Mapping[str, Any]] = (),
    segments: Sequence[tuple[int, int, float, float]] = (),
) -> dict[str, Any]:
    """The passage's stored object: text, offsets, page, and times of the segments it overlaps."""
    out = passage.as_source(content)
    page = page_of(passage.start, pages)
    if page is not None:
        out["page"] = page
        last = page_of(passage.end - 1, pages)
        if last is not None and last != page:
            out["page_end"] = last
    timed = [seg for seg in segments if seg[0] < passage.end and seg[1] > passage.start]
    if timed:
        out["time_start"], out["time_end"] = timed[0][2], timed[-1][3]
    return out


def passages_for(
    content: str,
    tokenize: Tokenizer,
    window: int,
    overlap: int,
    *,
    max_passages: int,
    pages: Sequence[Mapping[str, Any]] = (),
    segments: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[dict[str, Any]], bool]:
    """(passage objects, whether passages were cut off at `max_passages`); none for a short content."""
    spans = tokenize(content)
    if not needs_passages(len(spans), window):
        return [], False
    found = split(content, spans, window, overlap)
    timed = segment_spans(content, segments) if segments else []
    ordered = in_content_order(pages)
    kept = [locate(p, content, ordered, timed) for p in found[:max_passages]]
    return kept, len(found) > max_passages

"""English analysis done by the product, so stemming works on every cluster alike.

The Elasticsearch build on Maven Central has no `analysis-common` module (no `english` analyzer, no
stemmer filters). Rather than two code paths with different scores, documents and queries are always
stemmed here (Snowball English via PyStemmer, English stopwords removed) and indexed into
`search_stemmed.*`, plain `standard`-analysed text fields. The original text stays in `title`/`content`
for unstemmed matching and highlighting.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET), so BM25 behaves like `english`.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    stemmer = Stemmer.Stemmer("english")
    stemmer.maxCacheSize = 100_000
    return stemmer


def stem_text(text: str) -> str:
    """Lower-case, tokenize, drop stopwords and possessives, stem: 'The studies show' -> 'studi show'."""
    tokens = [t for t in _TOKEN.findall(text.lower().replace("'s ", " ")) if t not in STOPWORDS]
    return " ".join(_stemmer().stemWords(tokens))

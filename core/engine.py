"""What differs between Elasticsearch and OpenSearch in index mappings and kNN queries, in one place.

Everything else (BM25 with `combined_fields`, `nested`, aliases, `_meta`, filters, highlighting, our own
fusion) is the same request on both engines. The differences (Elasticsearch | OpenSearch k-NN plugin):

- vector field: `dense_vector` + `bbq_hnsw` (384+ dims; `int8_hnsw` below, and for nested passages) |
  `knn_vector`, Lucene `hnsw` + `sq` encoder (int7);
- bit vector (pHash): `element_type: bit`, `l2_norm` | `data_type: binary`, `hamming`; both take the
  packed bits as signed bytes;
- kNN clause: top-level `knn` (`k`, `num_candidates`, `filter`) | `knn` query (`k`, `ef_search`, `filter`);
- rescoring quantised vectors: `rescore_vector.oversample` | `rescore.oversample_factor`;
- key/value metadata: `flattened` | `flat_object`; index settings: - | `index.knn: true`.

Scores agree: cosine is `(1 + cos) / 2` and bit vectors score `1 / (1 + hamming)` on both, so one fusion
(ours) gives the same ranking on either engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

EngineName = Literal["elasticsearch", "opensearch"]
Body = dict[str, Any]
Vector = list[float] | list[int] | str  # str: a hex string of packed bits (perceptual hashes)

# int8/int7 quantisation caps recall@10 at ~0.98; rescoring 3x candidates with the float vectors gives ~1.0.
RESCORE_OVERSAMPLE = 3.0
# From this many dimensions vectors are 1-bit quantised (bbq), Elasticsearch's own default since 9.1 (below
# it, one bit per dimension leaves too little to rank by). Measured by `bench.scale` (README): at a million
# 384-d vectors bbq finds the right documents as often as int8 in a sixth of the memory. Not for nested
# vectors (passages): Elasticsearch 9.2 does not rescore a nested kNN over bbq, so a parent kept its 1-bit
# estimate (off by up to 0.05) and 6 % of the exact top 100 went missing; int8 is rescored (`bench
# knn-recall`, README "Passages and quantisation").
BBQ_MIN_DIMS = 384
MAX_CANDIDATES = 10_000

_OS_SPACES = {
    "cosine": "cosinesimil",
    "l2_norm": "l2",
    "dot_product": "innerproduct",
    "max_inner_product": "innerproduct",
}


def signed_bytes(vector: Vector) -> list[int]:
    """Packed bits as OpenSearch's binary `knn_vector` takes them: one signed byte per 8 bits."""
    if isinstance(vector, str):
        return [b - 256 if b > 127 else b for b in bytes.fromhex(vector)]
    return [int(b) for b in vector]


@dataclass(frozen=True)
class Engine:
    """The dialect of one search engine: mapping and kNN request fragments, nothing that needs a client."""

    name: EngineName

    @property
    def is_opensearch(self) -> bool:
        return self.name == "opensearch"

    def index_settings(self) -> Body:
        """Extra `index` settings a collection's physical index needs."""
        return {"knn": True} if self.is_opensearch else {}

    def highlight_limit(self, chars: int) -> Body:
        """Highlight at most `chars` characters of a field (the option's name differs between engines)."""
        return {"max_analyzer_offset" if self.is_opensearch else "max_analyzed_offset": chars}

    def object_type(self) -> Body:
        """A field of arbitrary keys (metadata): each leaf searchable as `field.key`."""
        if self.is_opensearch:
            return {"type": "flat_object"}
        return {"type": "flattened", "depth_limit": 10, "ignore_above": 1024}

    @property
    def counts_object_keys(self) -> bool:
        """Whether a terms aggregation can count one key of the metadata object (`metadata.author`):
        yes on `flattened`; OpenSearch's `flat_object` answers such a count with internal objects."""
        return not self.is_opensearch

    def vector_mapping(self, dims: int, similarity: str, element_type: str, *, nested: bool = False) -> Body:
        """The field mapping of one encoder's vectors: quantised HNSW for floats, exact-hamming bits;
        `nested`: a field under a `nested` object (passages), which Elasticsearch never maps to bbq."""
        if not self.is_opensearch:
            if element_type == "bit":
                return {
                    "type": "dense_vector",
                    "element_type": "bit",
                    "dims": dims,
                    "similarity": "l2_norm",  # on bit vectors: 1 / (1 + hamming)
                    "index": True,
                    "index_options": {"type": "hnsw"},
                }
            return {
                "type": "dense_vector",
                "dims": dims,
                "similarity": similarity,
                "index": True,
                "index_options": {"type": "bbq_hnsw" if dims >= BBQ_MIN_DIMS and not nested else "int8_hnsw"},
            }
        method: Body = {"name": "hnsw", "engine": "lucene"}
        if element_type == "bit":
            method["space_type"] = "hamming"
            return {"type": "knn_vector", "dimension": dims, "data_type": "binary", "method": method}
        if similarity not in _OS_SPACES:
            raise ValueError(f"OpenSearch has no space type for similarity {similarity!r}")
        method["space_type"] = _OS_SPACES[similarity]
        method["parameters"] = {"encoder": {"name": "sq"}}  # Lucene's scalar quantisation, like int8_hnsw
        return {"type": "knn_vector", "dimension": dims, "method": method}

    def vector_value(self, vector: Vector, element_type: str) -> Vector:
        """A stored or query vector as this engine takes it (bit vectors: hex on ES, signed bytes on OS)."""
        if element_type == "bit" and self.is_opensearch:
            return signed_bytes(vector)
        return vector

    def knn_search(
        self,
        field: str,
        vector: Vector,
        k: int,
        num_candidates: int,
        *,
        filters: list[Body],
        quantised: bool,
        element_type: str = "float",
    ) -> Body:
        """The part of a search body that runs one filtered kNN: `{"knn": ...}` on ES, `{"query": ...}` on
        OpenSearch. Filters run inside the HNSW search on both, not after it."""
        candidates = min(max(num_candidates, k), MAX_CANDIDATES)
        value = self.vector_value(vector, element_type)
        if not self.is_opensearch:
            knn: Body = {"field": field, "query_vector": value, "k": k, "num_candidates": candidates}
            if quantised:
                knn["rescore_vector"] = {"oversample": RESCORE_OVERSAMPLE}
            if filters:
                knn["filter"] = filters
            return {"knn": knn}
        return {"query": {"knn": {field: self._os_knn(value, k, candidates, filters, quantised=quantised)}}}

    def nested_knn_search(
        self,
        path: str,
        field: str,
        vector: Vector,
        k: int,
        *,
        num_candidates: int,
        filters: list[Body],
        inner_hits: Body | None,
        quantised: bool,
    ) -> Body:
        """kNN over a `nested` field's vectors (e.g. passages): a parent scores as its best child, filters
        are on parent fields, `inner_hits` (None: none) returns the best children."""
        candidates = min(max(num_candidates, k), MAX_CANDIDATES)
        if not self.is_opensearch:
            body = self.knn_search(
                f"{path}.{field}", vector, k, num_candidates, filters=filters, quantised=quantised
            )
            if inner_hits is not None:
                body["knn"]["inner_hits"] = inner_hits
            return body
        knn = {f"{path}.{field}": self._os_knn(vector, k, candidates, filters, quantised=quantised)}
        nested: Body = {"path": path, "score_mode": "max", "query": {"knn": knn}}
        if inner_hits is not None:
            nested["inner_hits"] = inner_hits
        return {"query": {"nested": nested}}

    @staticmethod
    def _os_knn(value: Vector, k: int, candidates: int, filters: list[Body], *, quantised: bool) -> Body:
        # Lucene's HNSW explores `ef_search` candidates: Client's `num_candidates`.
        clause: Body = {"vector": value, "k": k, "method_parameters": {"ef_search": candidates}}
        if quantised:
            clause["rescore"] = {"oversample_factor": RESCORE_OVERSAMPLE}
        if filters:
            clause["filter"] = {"bool": {"filter": filters}}
        return clause

    def source_filter(self, *, keep: Sequence[str], drop: Sequence[str]) -> Body:
        """The `_source` option of a fetch that leaves out `drop` (the vectors among them) and returns
        `keep`. OpenSearch gets the kept fields by name: its k-NN plugin (derived source, on by default
        since 3.0) rebuilds every vector into a hit's source before an `excludes` filter drops them again,
        which made its page fetch 4x Elasticsearch's (SciFact, 100 hits); Elasticsearch never rebuilds a
        vector it is not asked for, so it keeps the shorter `excludes` form."""
        return {"includes": list(keep)} if self.is_opensearch else {"excludes": list(drop)}

    def source_with_vectors(self, includes: list[str] | None = None) -> Body | list[str] | bool:
        """The `_source` option of a search that must return the stored vectors (copies, exact search):
        Elasticsearch 9 leaves vectors out of `_source` unless `exclude_vectors: false`; OpenSearch has no
        such option and returns them as indexed."""
        if self.is_opensearch:
            return list(includes) if includes else True
        source: Body = {"exclude_vectors": False}
        if includes:
            source["includes"] = list(includes)
        return source


ELASTICSEARCH = Engine("elasticsearch")
OPENSEARCH = Engine("opensearch")
ENGINES: dict[str, Engine] = {"elasticsearch": ELASTICSEARCH, "opensearch": OPENSEARCH}

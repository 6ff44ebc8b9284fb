"""The one place a search-engine client is built (Elasticsearch or OpenSearch), so auth, TLS, timeouts
and the engine's dialect are settled once; plus the bulk/scan helpers and the error formatter for both."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import opensearchpy
from elasticsearch import ApiError, Elasticsearch
from elasticsearch import helpers as es_helpers
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer
from opensearchpy import helpers as os_helpers

from core.config import Settings, get_settings
from core.engine import ELASTICSEARCH, ENGINES, OPENSEARCH, Engine
from core.opensearch import FastJSONSerializer, OpenSearchClient, as_es_error, translate_errors

Client = Elasticsearch | OpenSearchClient
# Keywords of `elasticsearch.helpers.scan` that opensearch-py spells as URL parameters.
_SCAN_PARAMS = {
    "source": "_source",
    "source_includes": "_source_includes",
    "source_excludes": "_source_excludes",
}


POOL_SIZE = 10  # open connections kept per node (elastic-transport's default `connections_per_node`)


def _hosts(settings: Settings) -> list[str]:
    return [url.strip() for url in settings.engine.es_url.split(",") if url.strip()]


def _opensearch(settings: Settings) -> opensearchpy.OpenSearch:
    # Ten pooled connections per node, as the elasticsearch client keeps (opensearch-py keeps urllib3's
    # one: every concurrent request beyond it opened a connection and threw it away); orjson as it uses.
    kwargs: dict[str, Any] = {
        "timeout": 60,
        "retry_on_timeout": True,
        "max_retries": 3,
        "pool_maxsize": POOL_SIZE,
        "serializer": FastJSONSerializer(),
    }
    if settings.engine.elasticsearch_api_key:
        kwargs["headers"] = {"Authorization": f"ApiKey {settings.engine.elasticsearch_api_key}"}
    elif settings.engine.elasticsearch_username:
        kwargs["http_auth"] = (settings.engine.elasticsearch_username, settings.engine.elasticsearch_password)
    if settings.engine.elasticsearch_ca_certs:
        kwargs["ca_certs"] = settings.engine.elasticsearch_ca_certs
    return opensearchpy.OpenSearch(_hosts(settings), **kwargs)


def detect_engine(settings: Settings) -> Engine:
    """The configured engine; `auto` asks the cluster (OpenSearch says `distribution: opensearch` in its
    root info) and means Elasticsearch for the embedded stack or a cluster that does not answer."""
    if settings.engine.kind != "auto":
        return ENGINES[settings.engine.kind]
    if settings.engine.embedded_es:
        return ELASTICSEARCH
    try:
        with _opensearch(settings) as probe:
            info = probe.info(params={"request_timeout": 5})
    except opensearchpy.exceptions.OpenSearchException:
        return ELASTICSEARCH
    return OPENSEARCH if info.get("version", {}).get("distribution") == "opensearch" else ELASTICSEARCH


class OrjsonNdjsonSerializer(NdjsonSerializer, OrjsonSerializer):
    """`_msearch` and `_bulk` lines through orjson: the client's own NDJSON serializer uses `json`, which
    spends ~1 ms of a search writing the query vectors."""


# The elasticsearch client writes and reads JSON with the standard library unless told otherwise; these
# also replace its compatibility-mode (`application/vnd.elasticsearch+json`) serializers.
ORJSON_SERIALIZERS = {
    OrjsonSerializer.mimetype: OrjsonSerializer(),
    OrjsonNdjsonSerializer.mimetype: OrjsonNdjsonSerializer(),
}


def make_client(settings: Settings, engine: Engine | None = None) -> Client:
    engine = engine or detect_engine(settings)
    if engine.is_opensearch:
        return OpenSearchClient(_opensearch(settings))
    kwargs: dict = {
        "request_timeout": 60,
        "retry_on_timeout": True,
        "max_retries": 3,
        "serializers": ORJSON_SERIALIZERS,
    }
    if settings.engine.elasticsearch_api_key:
        kwargs["api_key"] = settings.engine.elasticsearch_api_key
    elif settings.engine.elasticsearch_username:
        kwargs["basic_auth"] = (
            settings.engine.elasticsearch_username,
            settings.engine.elasticsearch_password,
        )
    if settings.engine.elasticsearch_ca_certs:
        kwargs["ca_certs"] = settings.engine.elasticsearch_ca_certs
    return Elasticsearch(_hosts(settings), **kwargs)


@lru_cache
def get_client() -> Client:
    return make_client(get_settings())


def engine_of(client: Client) -> Engine:
    """The dialect of the engine behind a client made by `make_client`."""
    return OPENSEARCH if isinstance(client, OpenSearchClient) else ELASTICSEARCH


def streaming_bulk(
    client: Client, actions: Iterable[dict[str, Any]], **kwargs: Any
) -> Iterator[tuple[bool, Any]]:
    """`elasticsearch.helpers.streaming_bulk` on either engine (same keywords, same item shape)."""
    if isinstance(client, OpenSearchClient):
        return translate_errors(os_helpers.streaming_bulk(client.raw, actions, **kwargs))
    return es_helpers.streaming_bulk(client, actions, **kwargs)


def bulk(client: Client, actions: Iterable[dict[str, Any]], **kwargs: Any) -> tuple[int, Any]:
    """`elasticsearch.helpers.bulk` on either engine."""
    if isinstance(client, OpenSearchClient):
        try:
            return os_helpers.bulk(client.raw, actions, **kwargs)
        except opensearchpy.exceptions.OpenSearchException as exc:
            raise as_es_error(exc) from exc
    return es_helpers.bulk(client, actions, **kwargs)


def scan(client: Client, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """`elasticsearch.helpers.scan` on either engine: every hit of a query, by scroll."""
    if isinstance(client, OpenSearchClient):
        kwargs = {_SCAN_PARAMS.get(key, key): value for key, value in kwargs.items()}
        return translate_errors(os_helpers.scan(client.raw, **kwargs))
    return es_helpers.scan(client, **kwargs)


def error_reason(error: Any) -> str:
    """The innermost reason of an engine's error body or `ApiError`: the outer ones often only say
    `x_content_parse_exception` / "failed to parse", the cause says what to change."""
    if isinstance(error, ApiError):
        body = error.body if isinstance(error.body, dict) else {}
        error = body.get("error") or error.message
    if not isinstance(error, dict):
        return str(error)
    while isinstance(error.get("caused_by"), dict):
        error = error["caused_by"]
    return str(error.get("reason") or error.get("type") or error)

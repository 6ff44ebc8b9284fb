"""The one place an Elasticsearch client is built, so auth, TLS and timeouts are configured once."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from core.config import Settings, get_settings


def make_client(settings: Settings) -> Elasticsearch:
    kwargs: dict = {"request_timeout": 60, "retry_on_timeout": True, "max_retries": 3}
    if settings.elasticsearch_api_key:
        kwargs["api_key"] = settings.elasticsearch_api_key
    elif settings.elasticsearch_username:
        kwargs["basic_auth"] = (settings.elasticsearch_username, settings.elasticsearch_password)
    if settings.elasticsearch_ca_certs:
        kwargs["ca_certs"] = settings.elasticsearch_ca_certs
    hosts = [url.strip() for url in settings.es_url.split(",") if url.strip()]
    return Elasticsearch(hosts, **kwargs)


@lru_cache
def get_client() -> Elasticsearch:
    return make_client(get_settings())


def error_reason(error: Any) -> str:
    """The innermost reason of an Elasticsearch error body or `ApiError`: the outer ones often only say
    `x_content_parse_exception` / "failed to parse", the cause says what to change."""
    if isinstance(error, ApiError):
        body = error.body if isinstance(error.body, dict) else {}
        error = body.get("error") or error.message
    if not isinstance(error, dict):
        return str(error)
    while isinstance(error.get("caused_by"), dict):
        error = error["caused_by"]
    return str(error.get("reason") or error.get("type") or error)

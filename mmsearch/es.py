"""The one place an Elasticsearch client is built, so auth, TLS and timeouts are configured once."""

from __future__ import annotations

from functools import lru_cache

from elasticsearch import Elasticsearch

from mmsearch.config import Settings, get_settings


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

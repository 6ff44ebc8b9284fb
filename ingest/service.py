"""The write path: every way documents enter or leave a collection, one call each.

Each call validates, extracts, indexes, stores blobs and enqueues, in that order, so the HTTP blueprints,
the CLI and the crawler share one behaviour instead of each wiring six modules together. The engine client,
the settings and the queue are handed in (`enqueue` is the Celery side's, given by whoever builds the
service), which keeps this package below the workers. The principal of a request enters here (and in
`search.service` for reads) and nowhere else: a collection it may not use does not exist for it, and a
document it may not read is a `DocumentNotFound`, never a 403. So do the priority of a write
(`ingest.priority`, decided from its size and kind) and a collection's quota (`ingest.quota`, checked before
anything is written).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from elasticsearch import NotFoundError

from core.access import (
    READERS_FIELD,
    DocumentNotFound,
    Principal,
    check_readers,
    may_read,
    read_filter,
    read_filters,
)
from core.config import Settings
from core.errors import Conflict, MmsearchError
from core.es import Client, bulk, scan, streaming_bulk
from ingest.blobrefs import release, shas_of
from ingest.blobstore import BlobStore
from ingest.bulk import WritesUnavailable, index_many
from ingest.documents import from_json, idempotent_id, parse_documents
from ingest.lifecycle import requeue_update, sha256_of
from ingest.priority import Priority, priority_for
from ingest.quota import check as check_quota
from ingest.quota import incoming, quota_of
from ingest.uploads import FileDocuments, Place, Upload, file_documents
from mappings import catalog, metastore
from mappings.catalog import Collection, CollectionNotFound

# (index, (document id, modality) pairs, priority) -> the number of encode tasks sent.
Enqueue = Callable[[str, Iterable[tuple[str, str]], Priority], int]
MANIFEST_FIELDS = ("path", "size", "mtime", "sha256")
MAX_PROFILES = 100  # search profiles per collection
# Refusing an id held by a document the caller may not read (writing it would replace that document).
HIDDEN_ID = "this id is held by a document the caller may not read; choose another id"


def hidden_upload(upload: Upload) -> FileDocuments:
    """The outcome of a file sent with an id held by a document the caller may not read."""
    refused = {"filename": upload.filename, "id": upload.doc_id, "status": "rejected", "http_status": 409}
    return FileDocuments({**refused, "error": HIDDEN_ID})


class UploadRejected(MmsearchError):
    """Every file of an upload was refused; the status is the worst of theirs (e.g. 415 or 422)."""


@dataclass(frozen=True)
class Indexed:
    """JSON documents written: their ids, each refused one by position and reason, the tasks sent."""

    ids: list[str]
    errors: list[dict[str, Any]]
    tasks: int


@dataclass(frozen=True)
class FilesIndexed:
    """One outcome per file (and per attachment inside it), and the encode tasks sent."""

    files: list[dict[str, Any]]
    tasks: int

    @property
    def partial(self) -> bool:
        return any(outcome["status"] == "rejected" for outcome in self.files)


@dataclass(frozen=True)
class Deleted:
    deleted: list[str]
    not_found: list[str]
    blobs_deleted: int


class IngestService:
    """Documents and files in, documents out, collections made and removed: the write path's one door."""

    def __init__(self, es: Client, settings: Settings, enqueue: Enqueue) -> None:
        self.es = es
        self.settings = settings
        self.enqueue = enqueue
        self.blobs = BlobStore.from_settings(settings)

    def collection(self, name: str, *, principal: Principal, fresh: bool = False) -> Collection:
        """The collection (cached for a few seconds unless `fresh`), or `CollectionNotFound` (a 404), also
        when the principal may not use it."""
        if not principal.may_use(name):
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return catalog.CACHE.get(self.es, self.settings, name, fresh=fresh)

    # --- documents -------------------------------------------------------------------------------------

    def add_documents(
        self,
        name: str,
        body: bytes,
        content_type: str | None,
        *,
        principal: Principal,
        key: str | None = None,
        refresh: bool = False,
    ) -> Indexed:
        """One JSON document, an array or NDJSON. Valid documents land; invalid ones are reported by
        position. With an idempotency `key`, documents without an id get ids derived from the key and their
        position, so a retried request replaces what its first try wrote instead of duplicating it.
        Documents naming no readers get the collection's default ones."""
        collection = self.collection(name, principal=principal)
        parsed = parse_documents(
            body,
            content_type,
            self.settings.limits.max_documents_per_request,
            self.settings.limits.max_text_chars,
        )
        bodies = {
            position: from_json(
                collection.name,
                doc,
                idempotent_id(key, position) if key else None,
                default_readers=collection.default_readers,
            )
            for position, doc in parsed.docs
        }
        explicit = [body["doc_id"] for body in bodies.values()] if not principal.admin else []
        hidden = _hidden(self._stored(collection, explicit), principal)
        taken = [
            {"position": p, "id": body["doc_id"], "error": HIDDEN_ID}
            for p, body in bodies.items()
            if body["doc_id"] in hidden
        ]
        bodies = {p: b for p, b in bodies.items() if b["doc_id"] not in hidden}
        check_quota(
            self.es, self.settings, collection, incoming(list(bodies.values())), tell_usage=principal.admin
        )
        priority = priority_for(len(bodies), self.settings)
        try:
            ids, failed = index_many(self.es, collection.index, bodies.values(), refresh=refresh)
        except WritesUnavailable as exc:  # what was written is queued; the rest is the client's to resend
            self.enqueue(collection.index, ((i, "text") for i in exc.written), priority)
            raise
        position_of = {body["doc_id"]: position for position, body in bodies.items()}
        errors = parsed.errors + taken + [{"position": position_of.get(e["id"]), **e} for e in failed]
        errors.sort(key=lambda e: e["position"] if e["position"] is not None else -1)
        return Indexed(ids, errors, self.enqueue(collection.index, ((i, "text") for i in ids), priority))

    def add_files(
        self,
        name: str,
        uploads: Sequence[Upload],
        *,
        principal: Principal,
        dedup: bool = True,
        refresh: bool = False,
    ) -> FilesIndexed:
        """Files extracted and indexed (text searchable at once), their bytes stored once their documents
        are, the blobs of the versions they replaced released, and encoding queued. Raises `UploadRejected`
        when no file was accepted. Files naming no readers get the collection's default ones; a mail's
        attachments get the mail's."""
        collection = self.collection(name, principal=principal)
        stored = self._stored(collection, [u.doc_id for u in uploads if u.doc_id])
        hidden = _hidden(stored, principal)
        place = self._place(collection, principal)
        found = [
            hidden_upload(upload)
            if upload.doc_id in hidden
            else file_documents(
                collection.name,
                upload,
                self.settings,
                place=place,
                dedup=dedup,
                default_readers=tuple(collection.default_readers),
            )
            for upload in uploads
        ]
        docs = [doc for one in found for doc in one.docs]
        check_quota(self.es, self.settings, collection, incoming(docs), tell_usage=principal.admin)
        previous = _readable_shas(stored, principal)  # the versions this upload replaces
        modality = {doc["doc_id"]: doc["modality"] for doc in docs}
        crawl = any((u.origin or {}).get("root") for u in uploads)  # a crawl is bulk however small its batch
        priority = priority_for(len(docs), self.settings, bulk=crawl)
        try:
            ids, errors = index_many(self.es, collection.index, docs, refresh=refresh)
        except WritesUnavailable as exc:  # the written ones get their bytes and a task; then the 503
            self._store_blobs(found, exc.written, previous)
            self.enqueue(collection.index, ((i, modality[i]) for i in exc.written), priority)
            raise
        self._store_blobs(found, ids, previous)
        outcomes = [
            {**one.outcome, **({"replaced": True} if one.outcome.get("id") in previous else {})}
            for one in found
        ] + [{"id": e["id"], "status": "rejected", "http_status": 500, "error": e["error"]} for e in errors]
        tasks = self.enqueue(collection.index, ((i, modality[i]) for i in ids), priority)
        rejected = [o for o in outcomes if o["status"] == "rejected"]
        if rejected and len(rejected) == len(outcomes):
            message = "; ".join(f"{o.get('filename') or o.get('id')}: {o['error']}" for o in rejected)
            raise UploadRejected(message, status=max(o["http_status"] for o in rejected))
        return FilesIndexed(outcomes, tasks)

    def delete_document(self, name: str, doc_id: str, *, principal: Principal, refresh: bool = False) -> int:
        """Delete one document (`DocumentNotFound` when absent or not the principal's to read) and its
        stored file when no other document references the same bytes; returns the number of blobs deleted."""
        collection = self.collection(name, principal=principal)
        source = self._readable(collection, doc_id, principal, ["source.sha256"])
        self.es.delete(index=collection.index, id=doc_id, refresh=refresh)
        return len(release(self.es, self.settings, [sha256_of(source)]))

    def delete_documents(
        self, name: str, ids: Iterable[str], *, principal: Principal, refresh: bool = False
    ) -> Deleted:
        """Delete many documents in one bulk request (a crawl's deleted files), then the blobs that nothing
        references any more. Ids not found, or not the principal's to read, are listed, not an error."""
        collection = self.collection(name, principal=principal)
        wanted = [i for i in ids if i]
        stored = _readable_shas(self._stored(collection, wanted), principal)
        hidden = [i for i in wanted if i not in stored] if not principal.admin else []
        actions = (
            {"_op_type": "delete", "_index": collection.index, "_id": i} for i in wanted if i not in hidden
        )
        outcomes = list(streaming_bulk(self.es, actions, raise_on_error=False, refresh=refresh))
        return Deleted(
            deleted=[item["delete"]["_id"] for ok, item in outcomes if ok],
            not_found=[item["delete"]["_id"] for ok, item in outcomes if not ok] + hidden,
            blobs_deleted=len(release(self.es, self.settings, stored.values())),
        )

    def set_readers(
        self, name: str, doc_id: str, readers: list[str], *, principal: Principal, refresh: bool = False
    ) -> list[str]:
        """Replace who may read a document (checked terms) by a partial update: no re-encode; its passages
        (nested in it) follow at once, and so do a mail's attachments (`metadata.parent_id`). Returns the
        ids updated. `DocumentNotFound` when absent or not the principal's to read."""
        readers = check_readers(readers)
        collection = self.collection(name, principal=principal)
        self._readable(collection, doc_id, principal, [])
        children = scan(
            self.es,
            index=collection.alias,
            query={"query": {"term": {"metadata.parent_id": doc_id}}},
            _source=False,
        )
        ids = [doc_id, *(hit["_id"] for hit in children)]
        actions = (
            {"_op_type": "update", "_index": collection.index, "_id": i, "doc": {READERS_FIELD: readers}}
            for i in ids
        )
        bulk(self.es, actions, raise_on_error=False, refresh="wait_for" if refresh else False)
        return ids

    def requeue(self, name: str, *, principal: Principal, status: str, older_than: int) -> tuple[int, int]:
        """Send documents to the workers again: `pending` ones queued over `older_than` seconds ago (lost
        messages, e.g. a purged queue) or the `failed` ones after fixing the cause; only those the
        principal may read. Returns (documents, tasks)."""
        collection = self.collection(name, principal=principal, fresh=True)
        query = {
            "bool": {
                "filter": [
                    {"term": {"ingest.status": status}},
                    {"range": {"ingest.queued_at": {"lte": f"now-{older_than}s"}}},
                    *read_filters(principal),
                ]
            }
        }
        hits = scan(self.es, index=collection.index, query={"query": query}, _source=["modality"])
        docs = [(hit["_id"], hit["_source"].get("modality", "text")) for hit in hits]
        if status == "failed":  # workers encode pending documents only
            actions = (
                {"_op_type": "update", "_index": collection.index, "_id": i, "doc": requeue_update()}
                for i, _ in docs
            )
            bulk(self.es, actions, raise_on_error=False, refresh="wait_for")
        return len(docs), self.enqueue(collection.index, docs, Priority.BULK)

    def manifest(self, name: str, root: str, *, principal: Principal) -> Iterator[dict[str, Any]]:
        """`{id, path, size, mtime, sha256, readers}` of every document crawled from `root` that the
        principal may read: what the next crawl of that folder compares the disk with. A read: it writes
        nothing (collections made before crawls had no `source.root` field and simply list nothing)."""
        collection = self.collection(name, principal=principal)
        hits = scan(
            self.es,
            index=collection.alias,
            query={
                "query": {"bool": {"filter": [{"term": {"source.root": root}}, *read_filters(principal)]}}
            },
            _source=[*(f"source.{f}" for f in MANIFEST_FIELDS), READERS_FIELD],
            size=2000,
        )
        for hit in hits:
            source = hit["_source"].get("source", {})
            readers = hit["_source"].get(READERS_FIELD)
            yield {"id": hit["_id"], **{f: source.get(f) for f in MANIFEST_FIELDS}, READERS_FIELD: readers}

    # --- collections -----------------------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        *,
        principal: Principal,
        encoders: list[str] | None = None,
        models: dict[str, str] | None = None,
        extractors: list[str] | None = None,
        passages: bool = True,
        default_readers: list[str] | None = None,
        quota: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """A new collection (a name the principal may not use: 404, as for any of its routes); `quota` may
        set `max_documents` and `max_bytes` (0: unlimited; unset: the global default)."""
        if not principal.may_use(name):
            raise CollectionNotFound(f"collection {name!r} does not exist")
        catalog.create(
            self.es,
            self.settings,
            name,
            encoders,
            models=models,
            extractors=extractors,
            passages=passages,
            default_readers=default_readers,
            quota=quota,
        )
        return self.describe_collection(name, principal=principal)

    def describe_collection(self, name: str, *, principal: Principal) -> dict[str, Any]:
        """What the collection is, and its documents counted among those the principal may read."""
        info = self.collection(name, principal=principal, fresh=True)
        return {
            "name": info.name,
            "alias": info.alias,
            "index": info.index,
            "encoders": info.encoders,
            "extractors": info.extractors,
            "passages": info.passages,
            "default_readers": info.default_readers,
            "profiles": sorted(info.profiles),
            "documents": catalog.status_counts(self.es, info.alias, read_filter(principal)),
            "quota": asdict(quota_of(info, self.settings)),
            "jobs": info.jobs,
        }

    def profiles(self, name: str, *, principal: Principal) -> dict[str, Any]:
        """The collection's search profiles, read afresh (a PUT by another API process shows at once)."""
        return self.collection(name, principal=principal, fresh=True).profiles

    def put_profile(self, name: str, profile: str, body: dict[str, Any], *, principal: Principal) -> bool:
        """Save one profile (replacing only that name); True when it is new. A collection holds at most
        `MAX_PROFILES` (a count checked before the write: two racing PUTs may pass it by one)."""
        stored = self.profiles(name, principal=principal)  # fresh; 404: no such collection
        if profile not in stored and len(stored) >= MAX_PROFILES:
            raise Conflict(
                f"collection {name!r} has {len(stored)} search profiles, the most it may have "
                f"({MAX_PROFILES}); delete one first"
            )
        created = metastore.put(self.es, self.settings, name, kind=metastore.PROFILE, name=profile, body=body)
        catalog.CACHE.invalidate(name)
        return created

    def delete_profile(self, name: str, profile: str, *, principal: Principal) -> bool:
        """Remove one profile; False when the collection has none of that name."""
        self.collection(name, principal=principal, fresh=True)  # 404: no such collection
        deleted = metastore.delete(self.es, self.settings, name, kind=metastore.PROFILE, name=profile)
        catalog.CACHE.invalidate(name)
        return bool(deleted)

    def list_collections(self, *, principal: Principal) -> list[str]:
        """The names of the collections the principal may use (the others do not exist for it)."""
        return [name for name in catalog.list_names(self.es, self.settings) if principal.may_use(name)]

    def delete_collection(self, name: str, *, principal: Principal) -> dict[str, Any]:
        """Delete the collection's indices and state, then the stored files no other collection references."""
        if not principal.may_use(name):
            raise CollectionNotFound(f"collection {name!r} does not exist")
        alias = catalog.alias_for(self.settings, name)
        shas = set(shas_of(self.es, alias))  # every generation holds the same files
        indices = catalog.delete(self.es, self.settings, name)
        blobs = release(self.es, self.settings, shas)
        return {"deleted": name, "indices": indices, "blobs_deleted": len(blobs)}

    # --- steps -----------------------------------------------------------------------------------------

    def _stored(self, collection: Collection, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The documents among `ids` that exist (realtime): the blob each references and its readers."""
        if not ids:
            return {}
        includes = ["source.sha256", READERS_FIELD]
        found = self.es.mget(index=collection.alias, ids=ids, source_includes=includes)["docs"]
        return {d["_id"]: d["_source"] for d in found if d.get("found")}

    def _place(self, collection: Collection, principal: Principal) -> Place:
        """Where a deduplicated file goes: its sha256 as id, or, when a document the principal may not read
        holds that id, an id of the same bytes and these readers. The upload neither replaces the hidden
        document nor learns that it exists, and sending it again is still a duplicate."""

        def place(sha256: str, readers: tuple[str, ...]) -> tuple[str, bool]:
            tag = hashlib.sha256("\n".join(sorted(readers)).encode()).hexdigest()[:16]
            candidates = [sha256, f"{sha256}.{tag}"]
            stored = self._stored(collection, candidates)
            hidden = _hidden(stored, principal)
            for doc_id in candidates:
                if doc_id not in hidden:
                    return doc_id, doc_id in stored  # absent: write it here; readable: a duplicate
            raise Conflict(f"the file of sha256 {sha256} cannot be stored for these readers: give it an id")

        return place

    def _readable(
        self, collection: Collection, doc_id: str, principal: Principal, includes: list[str]
    ) -> dict[str, Any]:
        """A document's source by id (realtime) when the principal may read it, else `DocumentNotFound`:
        the same answer as for a missing id."""
        try:
            found = self.es.get(index=collection.alias, id=doc_id, source_includes=[*includes, READERS_FIELD])
        except NotFoundError:
            raise DocumentNotFound() from None
        if not may_read(principal, found["_source"].get(READERS_FIELD)):
            raise DocumentNotFound()
        return found["_source"]

    def _store_blobs(
        self, found: list[FileDocuments], ids: list[str], previous: dict[str, str | None]
    ) -> None:
        """Store the bytes of the documents indexed (only now, so a blob release racing this upload sees the
        reference or finds the blob touched), then release the blobs of the versions they replaced."""
        data = {doc_id: blob for one in found for doc_id, blob in one.data.items()}
        new_sha = {doc_id: self.blobs.put(data[doc_id]).sha256 for doc_id in ids}
        replaced = (sha for doc_id, sha in previous.items() if doc_id in new_sha and sha != new_sha[doc_id])
        release(self.es, self.settings, replaced)


def _hidden(stored: dict[str, dict[str, Any]], principal: Principal) -> set[str]:
    """The stored documents (`IngestService._stored`) the principal may not read: writing their ids would
    replace what it cannot see, so they are refused."""
    return {doc_id for doc_id, source in stored.items() if not may_read(principal, source.get(READERS_FIELD))}


def _readable_shas(stored: dict[str, dict[str, Any]], principal: Principal) -> dict[str, str | None]:
    """The blob each stored document the principal may read references."""
    hidden = _hidden(stored, principal)
    return {doc_id: sha256_of(source) for doc_id, source in stored.items() if doc_id not in hidden}

"""A file becomes index documents: extracted, hashed, and an e-mail's attachments made child documents.

Nothing here touches the engine: where a deduplicated file goes, and whether it is already stored, is asked
through `place`, so the ingest service decides how to look it up and this stays a pure step from bytes to
documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.access import EVERYONE
from core.config import Settings
from ingest.documents import new_document
from ingest.extract import extract
from ingest.mail import Attachment
from media.filetypes import IngestError

# (the file's sha256, its readers) -> (the id to write it under, whether that id already holds a document
# the uploader can read: then the upload is a duplicate and nothing is written).
Place = Callable[[str, tuple[str, ...]], tuple[str, bool]]
# What a filename may not hold: control characters (a CR/LF would end up in a Content-Disposition header).
_CONTROL = dict.fromkeys(range(0x20), " ") | {0x7F: " "}


def clean_filename(name: str | None) -> str | None:
    """The name without control characters, so serving the file later can always name it."""
    if name is None:
        return None
    return name.translate(_CONTROL).strip() or None


@dataclass(frozen=True)
class Upload:
    """One file as the client sent it, with what the client says about it."""

    data: bytes
    filename: str | None
    mime: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    doc_id: str | None = None  # the client's id: replaces that document (else the sha256 when deduplicating)
    origin: Mapping[str, Any] | None = None  # where a crawled file lives: source.{root,path,mtime}
    readers: tuple[str, ...] | None = None  # checked reader terms; None: the collection's default


@dataclass(frozen=True)
class FileDocuments:
    """What one file gives: its outcome for the response, the index documents to write (none, the file's,
    its attachments'), and the bytes of each by document id (stored once its document is indexed)."""

    outcome: dict[str, Any]
    docs: tuple[dict[str, Any], ...] = ()
    data: Mapping[str, bytes] = field(default_factory=dict)


def file_documents(
    collection: str,
    upload: Upload,
    settings: Settings,
    *,
    place: Place,
    dedup: bool = True,
    default_readers: tuple[str, ...] = (EVERYONE,),
) -> FileDocuments:
    """One file extracted into its document (id: the client's, else its sha256 when deduplicating), and an
    e-mail's attachments into child documents `<parent id>.<n>` with `metadata.parent_id`, extracted like
    uploads of their own (one level: attachments of an attached mail are counted, not indexed). The file's
    readers (its own, else `default_readers`) are its attachments' too."""
    readers = upload.readers if upload.readers is not None else default_readers
    upload = replace(upload, readers=readers)
    parent, attachments = _one_file(collection, upload, settings, place=place, dedup=dedup)
    if not parent.docs:
        return parent
    parent_id = parent.docs[0]["doc_id"]
    children = [
        _one_file(
            collection,
            Upload(
                attachment.data,
                clean_filename(attachment.filename),
                attachment.mime,
                {"parent_id": parent_id, "attachment_number": number},
                doc_id=f"{parent_id}.{number}",
                readers=readers,
            ),
            settings,
            place=lambda doc_id, _readers: (doc_id, False),
            dedup=False,
        )[0]
        for number, attachment in enumerate(attachments, start=1)
    ]
    outcome = {**parent.outcome, **({"attachments": [c.outcome for c in children]} if children else {})}
    return FileDocuments(
        outcome,
        parent.docs + tuple(doc for child in children for doc in child.docs),
        {k: v for one in (parent, *children) for k, v in one.data.items()},
    )


def _one_file(
    collection: str,
    upload: Upload,
    settings: Settings,
    *,
    place: Place,
    dedup: bool,
) -> tuple[FileDocuments, list[Attachment]]:
    """The file's own document, and the attachments found in it (for the caller to make children of)."""
    outcome: dict[str, Any] = {"filename": upload.filename, "size": len(upload.data)}
    try:
        found = extract(upload.data, upload.filename, upload.mime, settings)
    except IngestError as exc:
        rejected = {**outcome, "status": "rejected", "http_status": exc.status, "error": str(exc)}
        return FileDocuments(rejected), []
    sha256 = hashlib.sha256(upload.data).hexdigest()
    doc_id = upload.doc_id
    outcome.update(sha256=sha256, mime=found.mime, modality=found.modality, mislabelled=found.mislabelled)
    if doc_id is None and dedup:
        doc_id, stored = place(sha256, tuple(upload.readers or (EVERYONE,)))
        if stored:
            return FileDocuments({**outcome, "id": doc_id, "status": "duplicate"}), []
    doc = new_document(
        collection,
        doc_id,
        title=found.title,
        content=found.content,
        modality=found.modality,
        metadata={**found.metadata, **upload.metadata},
        source={
            "uri": f"blob:{sha256}",
            "filename": upload.filename,
            "mime": found.mime,
            "size": len(upload.data),
            "sha256": sha256,
            **(upload.origin or {}),
        },
        pages=found.pages,
        readers=upload.readers if upload.readers is not None else (EVERYONE,),
    )
    outcome.update(id=doc["doc_id"], status="pending")
    return FileDocuments(outcome, (doc,), {doc["doc_id"]: upload.data}), list(found.attachments)

"""E-mail (`.eml`, RFC 5322) -> headers as metadata, the body as text, attachments as files of their own.

The standard library's `email` parser with the modern policy does the MIME work. The body is the
text/plain part, or the HTML part's visible text when there is none. Each attachment comes back as bytes
with its filename, for the caller to ingest like an upload of that file (a child document).
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, cast

MAX_ATTACHMENTS = 50  # more are counted in `attachments_skipped`, not ingested


@dataclass
class Attachment:
    filename: str | None
    mime: str  # as the mail declares it; detection from the bytes decides
    data: bytes


@dataclass
class Mail:
    subject: str | None
    body: str
    html_body: str | None  # the HTML part when there is no plain text one, for the caller to strip
    metadata: dict[str, Any]
    attachments: list[Attachment]


def parse_mail(data: bytes) -> Mail:
    message = cast(EmailMessage, email.message_from_bytes(data, policy=policy.default))  # policy's class
    plain = message.get_body(preferencelist=("plain",))
    html = None if plain is not None else message.get_body(preferencelist=("html",))
    attachments, skipped = [], 0
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        if len(attachments) >= MAX_ATTACHMENTS:
            skipped += 1
            continue
        attachments.append(Attachment(part.get_filename(), part.get_content_type(), payload))
    metadata = {
        "email_from": _header(message, "from"),
        "email_to": _header(message, "to"),
        "email_cc": _header(message, "cc"),
        "email_date": _date(message),
        "email_message_id": _header(message, "message-id"),
        "email_in_reply_to": _header(message, "in-reply-to"),
        "attachment_count": len(attachments) + skipped,
        "attachments_skipped": skipped or None,
    }
    return Mail(
        subject=_header(message, "subject"),
        body=_text(plain) if plain is not None else "",
        html_body=_text(html) if html is not None else None,
        metadata=metadata,
        attachments=attachments,
    )


def _header(message: EmailMessage, name: str) -> str | None:
    """A header decoded to text (RFC 2047 words included); a malformed one as its raw string."""
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):  # the header parser's failures on hostile input
        value = message.get_all(name, failobj=[None])[0]
    return str(value) if value is not None else None


def _date(message: EmailMessage) -> str | None:
    raw = _header(message, "date")
    try:
        return parsedate_to_datetime(raw).isoformat() if raw else None
    except (TypeError, ValueError):
        return None


def _text(part: Any) -> str:
    """A text part's content in its declared charset (undecodable bytes replaced, never an error)."""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown or wrong charset
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")

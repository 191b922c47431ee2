"""The attachment model every channel shares, and what an adapter can send.

An outbound attachment is a dict (docs/attachments.md):

``type``
    ``image``, ``document``, ``audio``, ``video``, ``sticker`` (or ``location``, ``contact``…,
    which no adapter sends as media). Without it the type is read from ``contentType``.
``contentType``, ``name``, ``size``
    As the client or the upload store says.
``contentUrl``
    An absolute http(s) URL the provider fetches (the gateway turns its own ``/uploads/…``
    URLs into signed absolute ones before an adapter sees them), or
``media_id``
    A file already uploaded to the provider (a Meta media id), sent by id.

An adapter declares what it can send in ``media``: attachment type → ``MediaSpec`` (the
largest size and the content types the provider accepts). ``choose`` checks an activity
against it and names the reason when it cannot be sent, so the delivery fails at once instead
of being retried into the same refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

MB = 1_048_576
MEDIA_KINDS = ("image", "document", "audio", "video", "sticker")


class MediaSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider accepts for one attachment type: at most ``max_bytes``; content types
    in ``content_types`` (empty: any); whether the message carries a caption."""

    max_bytes: int
    content_types: frozenset[str] = frozenset()
    caption: bool = True


class Chosen(msgspec.Struct, frozen=True, kw_only=True):
    """The one attachment an activity sends, checked: its type, where it is, its name."""

    kind: str
    link: str | None = None
    media_id: str | None = None
    name: str | None = None
    content_type: str | None = None


def kind_of(attachment: Mapping[str, Any]) -> str | None:
    """The attachment's type: ``type`` when it says one, else from ``contentType``."""
    kind = attachment.get("type")
    if isinstance(kind, str) and kind:
        return kind.lower()
    ctype = content_type(attachment)
    if ctype is None:
        return None
    major = ctype.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "document"


def content_type(attachment: Mapping[str, Any]) -> str | None:
    value = attachment.get("contentType") or attachment.get("content_type")
    if isinstance(value, str) and value:
        return value.split(";", 1)[0].strip().lower()
    return None


def size_of(attachment: Mapping[str, Any]) -> int | None:
    value = attachment.get("size")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def choose(media: Mapping[str, MediaSpec], attachments: list[Any], text: str | None,
           provider: str) -> Chosen | str | None:
    """The attachment to send, None for a text-only activity, or why it cannot be sent."""
    if not attachments:
        return None
    if not media:
        return f"{provider} channels send text only; the activity has attachments"
    if len(attachments) > 1:
        return (f"{provider} sends one file per message; the activity has {len(attachments)} "
                "attachments (post one activity per file)")
    att = attachments[0]
    if not isinstance(att, dict):
        return "an attachment must be an object"
    kind = kind_of(att)
    spec = media.get(kind or "")
    if kind is None or spec is None:
        return (f"{provider} cannot send attachments of type {kind!r} "
                f"(it sends {', '.join(sorted(media))})")
    ctype = content_type(att)
    if spec.content_types and ctype is not None and ctype not in spec.content_types:
        return (f"{provider} {kind} messages accept {', '.join(sorted(spec.content_types))}, "
                f"not {ctype}")
    size = size_of(att)
    if size is not None and size > spec.max_bytes:
        return (f"the {kind} is {size} bytes; {provider} accepts at most {spec.max_bytes} bytes "
                f"for {kind} messages")
    if text and text.strip() and not spec.caption:
        return (f"{provider} {kind} messages carry no caption: send the text as its own "
                "activity")
    media_id = att.get("media_id")
    link = att.get("contentUrl") or att.get("url")
    name = att.get("name") if isinstance(att.get("name"), str) and att.get("name") else None
    if isinstance(media_id, str) and media_id:
        return Chosen(kind=kind, media_id=media_id, name=name, content_type=ctype)
    if isinstance(link, str) and link.startswith(("https://", "http://")):
        return Chosen(kind=kind, link=link, name=name, content_type=ctype)
    return ("the attachment needs an absolute contentUrl (http/https) the provider can fetch, "
            "an upload_id, or a provider media_id")

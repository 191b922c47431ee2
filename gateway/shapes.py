"""JSON shapes shared by the API, the sockets and the domain (which must not import each
other): the legacy ``new_activity`` payload, the Converger activity, the watermark codec, and a
delivery (or an alert) in each size it is shown in, all cut from its one stored row."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from store.models import Activity, Delivery


def legacy_payload(a: Activity) -> dict[str, Any]:
    """The original's 4-key ``new_activity`` payload (docs/realtime.md), plus ``seq`` so
    clients can order and de-duplicate; and, only for what a plain text message lacks, its
    ``type`` (typing, template…), ``attachments`` and a template's ``metadata`` (issue 19)."""
    out: dict[str, Any] = {"id": a.id, "text": a.text, "sender": a.sender,
                           "inserted_at": a.inserted_at, "seq": a.seq}
    if a.type != "message":
        out["type"] = a.type
    if a.attachments:
        out["attachments"] = a.attachments
    if a.type == "template":
        out["metadata"] = a.metadata
    return out


def converger_activity(a: Activity) -> dict[str, Any]:
    """The whole activity in the Converger API's shape (docs/realtime.md), also on live socket
    pushes, where the original sent a 4-field stub that clients had to complete with a GET. The
    Direct Line fields a client sent (``a.extra``) are added; an activity without them has
    exactly the original's keys."""
    out: dict[str, Any] = {
        "id": a.id, "type": a.type, "from": {"id": a.sender}, "text": a.text,
        "timestamp": a.inserted_at, "attachments": a.attachments,
        "conversationId": a.conversation_id, "channelData": a.metadata,
    }
    if a.extra:
        for key, value in a.extra.items():
            if key == "from":
                out["from"].update(value)
            elif key not in out:
                out[key] = value
    return out


CHANNEL_ID = "directline"
BOT_ROLE = "bot"


def directline_activity(a: Activity, url: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The activity in Direct Line 3.0's shape: ``conversation.id``, ``channelId``, ``from``
    with its ``role`` (``bot`` unless a client said otherwise: anything not posted by a Direct
    Line client comes from the bot's side), nulls and empty members left out. ``url`` turns a
    stored upload path (``/uploads/…``) into an absolute, signed URL a browser can fetch."""
    out = converger_activity(a)
    del out["conversationId"]
    out["conversation"] = {"id": a.conversation_id}
    out["channelId"] = CHANNEL_ID
    out["from"].setdefault("role", BOT_ROLE)
    if out["text"] is None:
        del out["text"]
    if not out["channelData"]:
        del out["channelData"]
    if url is not None and out["attachments"]:
        out["attachments"] = [
            {**att, "contentUrl": url(att["contentUrl"])}
            if isinstance(att, dict) and isinstance(att.get("contentUrl"), str)
            and att["contentUrl"].startswith("/uploads/") else att
            for att in out["attachments"]
        ]
    return out


def encode_watermark(activity_id: str) -> str:
    """URL-safe Base64, no padding, of the activity id string (the original's format, so
    watermarks stay opaque and interchangeable)."""
    return base64.urlsafe_b64encode(activity_id.encode()).decode().rstrip("=")


def decode_watermark(wm: str | None) -> str | None:
    """The activity id a watermark names, or None when it names none (then: everything)."""
    if not wm:
        return None
    try:
        raw = base64.urlsafe_b64decode(wm + "=" * (-len(wm) % 4)).decode()
        return str(uuid.UUID(raw))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


# -- a delivery (and an alert): every shape is cut from the stored row ---------------------------
PRIVATE = frozenset({"claim_token"})  # a worker's lease on the row: never in an answer
# What ``?include=deliveries`` puts under each activity, and what the ``delivery_status`` event
# says of a delivery (as ``delivery_id`` and the rest).
DELIVERY_SUMMARY = ("id", "channel_id", "status", "attempts", "last_error", "sent_at",
                    "delivered_at", "read_at")
DELIVERY_STATUS = ("id", "activity_id", "channel_id", "status", "sent_at", "delivered_at",
                   "read_at")


def public(row: msgspec.Struct) -> dict[str, Any]:
    """A stored row as the management API shows it: every field but the ``PRIVATE`` ones."""
    out: dict[str, Any] = msgspec.to_builtins(row)
    for name in PRIVATE:
        out.pop(name, None)
    return out


def public_struct(name: str, model: type[msgspec.Struct], doc: str) -> type[msgspec.Struct]:
    """The type of ``public(row)`` for a row of ``model`` (for the OpenAPI document)."""
    fields = [(f.name, f.type) for f in msgspec.structs.fields(model) if f.name not in PRIVATE]
    made = msgspec.defstruct(name, fields, kw_only=True)
    made.__doc__ = doc
    return made


def delivery_summary(d: Delivery) -> dict[str, Any]:
    return {name: getattr(d, name) for name in DELIVERY_SUMMARY}


def delivery_status(d: Delivery) -> dict[str, Any]:
    """The ``delivery_status`` event's payload (docs/realtime.md)."""
    return {("delivery_id" if name == "id" else name): getattr(d, name)
            for name in DELIVERY_STATUS}

"""Activity shapes shared by the Converger API and the sockets (which must not import each
other): the legacy ``new_activity`` payload, the Converger activity, and the watermark codec."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from store.models import Activity


def legacy_payload(a: Activity) -> dict[str, Any]:
    """The original's 4-key ``new_activity`` payload (reference §8.2), plus ``seq`` so clients
    can order and de-duplicate."""
    return {"id": a.id, "text": a.text, "sender": a.sender, "inserted_at": a.inserted_at,
            "seq": a.seq}


def converger_activity(a: Activity) -> dict[str, Any]:
    """The whole activity in the Converger API's shape (reference §6), also on live socket
    pushes (the original sent a 4-field stub there, quirk 13)."""
    return {
        "id": a.id, "type": a.type, "from": {"id": a.sender}, "text": a.text,
        "timestamp": a.inserted_at, "attachments": a.attachments,
        "conversationId": a.conversation_id, "channelData": a.metadata,
    }


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

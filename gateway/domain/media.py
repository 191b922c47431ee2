"""Attachments on their way out (adapters/media.py has the model): a file in the gateway's
upload store is named by a relative ``/uploads/<tenant>/<file>`` URL, which a provider cannot
fetch, so before an adapter sees the activity it becomes an absolute signed URL (good for an
hour without credentials: ``Tokens.signed_upload_url``) on the server's public address."""

from __future__ import annotations

import sqlite3
from typing import Any

from adapters.media import MEDIA_KINDS, kind_of
from store import media as media_store

from ..context import Gateway
from .errors import Unprocessable


def base_url(gw: Gateway) -> str:
    s = gw.settings
    return s.public_url.rstrip("/") or f"http://{s.host}:{s.port}"


def public_links(gw: Gateway, tenant_id: str, attachments: list[Any]) -> list[Any]:
    """``attachments`` with this tenant's ``/uploads/…`` URLs made absolute and signed."""
    prefix = f"/uploads/{tenant_id}/"
    out: list[Any] = []
    for att in attachments:
        url = att.get("contentUrl") if isinstance(att, dict) else None
        if isinstance(url, str) and url.startswith(prefix) and "/" not in url[len(prefix):] \
                and "?" not in url:
            att = {**att, "contentUrl": gw.tokens.signed_upload_url(base_url(gw), url)}
        out.append(att)
    return out


# Inbound attachments that name a provider's file: Meta's media id, Telegram's file_id, Slack's
# url_private, an Infobip or Twilio media URL (Infobip's locations carry a url too: only media
# types count), or a mail's file kept inline (content_base64) until it is in the upload store.
FETCH_KEYS = ("media_id", "file_id", "url_private", "content_base64")
FETCH_KINDS = frozenset({*MEDIA_KINDS, "voice", "photo", "file"})


# The channel types whose inbound files are downloaded in the background (gateway/workers/
# media.py; POST …/attachments/:n/fetch still fetches one on request).
FETCHED_TYPES = frozenset({"whatsapp_meta", "whatsapp_infobip", "telegram", "slack",
                           "sms_twilio", "email_smtp", "email_sendgrid"})


def mark_pending(channel_type: str, attachments: list[Any]) -> tuple[list[Any], list[int]]:
    """The attachments with ``status: "pending"`` on each one the gateway will download, and
    their indexes."""
    out: list[Any] = []
    fetch: list[int] = []
    if channel_type not in FETCHED_TYPES:
        return attachments, fetch
    for i, att in enumerate(attachments):
        if isinstance(att, dict) and (
                any(att.get(k) for k in FETCH_KEYS)
                or (att.get("url") and str(att.get("type", "")).lower() in FETCH_KINDS)):
            att = {**att, "status": "pending"}
            fetch.append(i)
        out.append(att)
    return out, fetch


def resolve_uploads_tx(conn: sqlite3.Connection, tenant_id: str, conversation_id: str,
                       attachments: list[Any]) -> list[Any]:
    """Attachments that reference an upload (``{"upload_id": …}``) completed from the upload
    store: ``type``, ``contentType``, ``name``, ``size``, ``contentUrl``. An upload of another
    tenant or conversation, or none, is 422 ``unknown_upload``."""
    if not any(isinstance(a, dict) and "upload_id" in a for a in attachments):
        return attachments
    out: list[Any] = []
    for att in attachments:
        if isinstance(att, dict) and "upload_id" in att:
            uid = att["upload_id"]
            row = media_store.upload(conn, tenant_id, uid) if isinstance(uid, str) else None
            if row is None or row["conversation_id"] != conversation_id:
                raise Unprocessable(f"no upload {uid!r} in this conversation", "unknown_upload")
            att = {"contentType": row["content_type"], "name": row["name"], "size": row["size"],
                   **{k: v for k, v in att.items() if k not in ("contentUrl", "size")},
                   "contentUrl": f"/uploads/{tenant_id}/{row['file_name']}"}
            att.setdefault("type", kind_of(att))
        out.append(att)
    return out

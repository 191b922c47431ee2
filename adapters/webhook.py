"""Webhook: send the activity as JSON to a URL, signed (Standard Webhooks; docs/delivery.md,
"Webhook requests and how to verify them"); receive messages and status receipts from the same
kind of endpoint (docs/delivery.md, "Inbound webhooks")."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import msgspec

from .base import (
    BaseAdapter,
    ChannelInfo,
    DeliveryResult,
    InboundError,
    InboundMessage,
    OutboundActivity,
    StatusUpdate,
    retry_after,
)
from .signing import check_standard_signature, converger_signature, standard_signature

_encode = msgspec.json.Encoder().encode
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Standard Webhooks' replay window: a signed request older (or newer) than this is refused.
TOLERANCE_SECONDS = 300


def valid_http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def body_of(activity: OutboundActivity) -> bytes:
    """The documented JSON body (docs/delivery.md), keys in the original's order: receivers
    written for the original parse it unchanged. An activity with Direct Line fields (an
    Adaptive Card's ``value``, an event's ``name``, …) has them under ``extra``, last."""
    body: dict[str, Any] = {
        "id": activity.id, "type": activity.type, "sender": activity.sender,
        "text": activity.text, "attachments": activity.attachments,
        "metadata": activity.metadata, "conversation_id": activity.conversation_id,
        "tenant_id": activity.tenant_id, "timestamp": activity.timestamp,
    }
    if activity.extra:
        body["extra"] = activity.extra
    return _encode(body)


RESPONSE_BODY_CAP = 65_536  # bytes of a 2xx body read (and dropped) before hanging up


async def drain(content: Any, cap: int) -> None:
    """Read and drop a response body, at most ``cap`` bytes. The body of a 2xx means nothing
    to us; reading it lets a small one's connection be reused, while a huge or endless one is
    cut off (the unread connection is closed, not pooled) instead of filling memory."""
    left = cap
    while left > 0:
        chunk = await content.read(min(left, 16_384))
        if not chunk:
            return
        left -= len(chunk)


def signed_headers(secret: str, delivery_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, delivery_id, timestamp, body),
        "x-converger-signature": converger_signature(secret, body),
    }


def _str(payload: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


async def post_signed(
    session: Any, url: str, secret: str, msg_id: str, body: bytes, *,
    method: str = "POST", headers: Mapping[str, str] | None = None,
) -> DeliveryResult:
    """Send ``body`` signed with ``secret`` (``webhook-id`` = ``msg_id``, the same on every
    attempt). 2xx is success; 410 will never succeed (not retried); anything else, a timeout or
    a connection error is retried, after ``Retry-After`` when given. Shared by the webhook
    channel and the gateway's own signed webhooks (health alerts)."""
    # Configured headers first: the signature headers cannot be overridden by config.
    sent = {**(headers or {}), **signed_headers(secret, msg_id, body, int(time.time()))}
    try:
        # Never follow a redirect: it would re-send the body and its signature elsewhere.
        async with session.request(method, url, data=body, headers=sent,
                                   allow_redirects=False) as resp:
            if 200 <= resp.status < 300:
                await drain(resp.content, RESPONSE_BODY_CAP)
                return DeliveryResult(ok=True)
            # The answer's body is not kept: the error is read by the tenant, and a body
            # echoed from wherever the URL points would leak it (issue 13).
            return DeliveryResult(
                ok=False,
                error=f"webhook returned status {resp.status}",
                retryable=resp.status != 410,
                retry_after=retry_after(resp.headers.get("retry-after")),
            )
    except TimeoutError:
        return DeliveryResult(ok=False, error="webhook request failed: timeout")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        return DeliveryResult(ok=False, error=f"webhook request failed: {reason}")


class WebhookAdapter(BaseAdapter):
    type: ClassVar[str] = "webhook"
    delivers: ClassVar[bool] = True

    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        url = config.get("url")
        if not isinstance(url, str) or not url:
            return "webhook config requires a 'url' field"
        if not valid_http_url(url):
            return "webhook config 'url' must be a valid HTTP/HTTPS URL"
        method = config.get("method", "POST")
        if not isinstance(method, str) or method.upper() not in ("POST", "PUT", "PATCH"):
            return "webhook config 'method' must be one of POST, PUT, PATCH"
        headers = config.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            return "webhook config 'headers' must be an object of strings"
        # aiohttp refuses to send these (header injection): every delivery would fail.
        if any(_CONTROL.search(k) or not k for k in headers) or any(
            _CONTROL.search(v) for v in headers.values()
        ):
            return "webhook config 'headers' must not contain control characters or empty names"
        return None

    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        """One attempt. 2xx is success; 410 will never succeed (not retried); anything else,
        a timeout or a connection error is retried, after ``Retry-After`` when given."""
        config = channel.config
        return await post_signed(
            session, config["url"], channel.secret, activity.delivery_id, body_of(activity),
            method=str(config.get("method", "POST")).upper(), headers=config.get("headers", {}))

    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """``sender`` (or ``from``, default ``external``), ``text`` (or ``message``/``body``),
        ``type``, ``metadata``, ``attachments``; ``message_id`` (or ``id``) dedupes retries."""
        if not isinstance(payload, dict):
            raise InboundError("webhook payload must be a JSON object")
        metadata = payload.get("metadata")
        attachments = payload.get("attachments")
        conversation_id = payload.get("conversation_id")
        return [InboundMessage(
            sender=_str(payload, "sender", "from") or "external",
            text=_str(payload, "text", "message", "body"),
            type=_str(payload, "type") or "message",
            metadata=metadata if isinstance(metadata, dict) else {},
            attachments=attachments if isinstance(attachments, list) else [],
            external_id=_str(payload, "message_id", "id"),
            conversation_id=conversation_id if isinstance(conversation_id, str) else None,
        )]

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        """``{"delivery_id"|"provider_message_id", "status", "timestamp"?, "error"?}``."""
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            return None
        error = payload.get("error")
        error = error if isinstance(error, str) else None
        if isinstance(payload.get("delivery_id"), str):
            return [StatusUpdate(status=payload["status"], delivery_id=payload["delivery_id"],
                                 timestamp=payload.get("timestamp"), error=error)]
        if isinstance(payload.get("provider_message_id"), str):
            return [StatusUpdate(status=payload["status"],
                                 provider_message_id=payload["provider_message_id"],
                                 timestamp=payload.get("timestamp"), error=error)]
        return None

    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """A sender may sign the Standard Webhooks way too; checked when it did (None if not)."""
        signature = headers.get("webhook-signature")
        if signature is None:
            return None
        msg_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        # isascii: str.isdigit() accepts "²", which int() refuses.
        if not (stamp.isascii() and stamp.isdigit()) or abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
            return False
        return check_standard_signature(channel.secret, msg_id, stamp, body, signature)

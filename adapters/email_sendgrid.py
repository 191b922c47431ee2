"""E-mail through SendGrid (docs/channels/email.md): the v3 Mail Send API out, Inbound Parse in,
the Event Webhook as receipts.

Outbound: ``POST {api_base_url}/v3/mail/send`` with the API key as a Bearer token; the same
threading headers as ``email_smtp`` (``Message-ID`` carrying the conversation, ``In-Reply-To``
and ``References`` answering the customer's latest mail, a ``Re:`` subject), text and minimal
HTML, attachments fetched from their URLs; the delivery id travels as a custom arg. SendGrid's
``X-Message-Id`` is the delivery's provider message id. Inbound: Inbound Parse posts each mail as
a multipart form (``headers``, ``from``, ``to``, ``subject``, ``text``, ``html``, ``envelope``,
``attachment-info`` and ``attachment1…``, or the whole MIME in ``email`` with *POST the raw,
full MIME message*), authenticated with HTTP basic auth in the URL SendGrid was given. Receipts:
the Event Webhook (a JSON array of events) posted to the channel's status URL, signed with
ECDSA (``X-Twilio-Email-Event-Webhook-Signature`` over the timestamp and the body, checked with
the channel's verification key).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Callable, Mapping
from email import policy
from email.parser import HeaderParser
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from . import common
from . import email_smtp as mail
from .base import (
    MESSAGES_ONLY,
    BaseAdapter,
    ChannelInfo,
    ConfigField,
    DeliveryResult,
    InboundError,
    InboundMessage,
    MediaError,
    MediaFile,
    OutboundActivity,
    StatusUpdate,
)
from .signing import header_bytes

DEFAULT_BASE_URL = "https://api.sendgrid.com"
REQUIRED = ("api_key", "from_address", "webhook_username", "webhook_password", "event_public_key")
# Settings sent in HTTP headers (no control characters).
HEADER_FIELDS = ("api_key", "from_name", "webhook_username", "webhook_password")
LABEL = "SendGrid API"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TOLERANCE_SECONDS = 600
# Event → receipt status. Others (processed, deferred, click, spamreport, unsubscribe, …) are
# kept as themselves, which the receipt rules ignore.
EVENTS = {"delivered": "delivered", "open": "read", "bounce": "failed", "dropped": "failed",
          "blocked": "failed"}
MAX_EVENTS = 1000

# The clock the replay window is checked against (tests replace it).
now: Callable[[], float] = time.time


class EmailSendgridAdapter(BaseAdapter):
    type: ClassVar[str] = "email_sendgrid"
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key", "webhook_password")
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY
    reply_context: ClassVar[bool] = True
    config_fields: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("api_key", "API key", "Settings → API Keys: a key with Mail Send access", True),
        ConfigField("from_address", "From address",
                    "A verified sender or an address of an authenticated domain", True),
        ConfigField("from_name", "From name", "Shown to customers, e.g. Example Support"),
        ConfigField("inbound_address", "Inbound address",
                    "The address on your Inbound Parse domain customers write to "
                    "(default: the From address)"),
        ConfigField("webhook_username", "Inbound Parse user name",
                    "Put https://user:password@… in the Inbound Parse destination URL", True),
        ConfigField("webhook_password", "Inbound Parse password", "", True),
        ConfigField("event_public_key", "Event Webhook verification key",
                    "Mail Settings → Event Webhook → Signed Event Webhook: the verification key",
                    True),
        ConfigField("api_base_url", "API base URL", f"Default {DEFAULT_BASE_URL}"),
    )

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, REQUIRED, "email_sendgrid"):
            return error
        for key in ("from_address", "inbound_address"):
            value = config.get(key)
            if value is not None and not (isinstance(value, str)
                                          and mail.ADDRESS_RE.fullmatch(value)):
                return f"email_sendgrid config '{key}' must be an e-mail address"
        if ":" in config["webhook_username"]:
            return "email_sendgrid config 'webhook_username' must not contain ':'"
        if _public_key(config["event_public_key"]) is None:
            return ("email_sendgrid config 'event_public_key' must be the Event Webhook "
                    "verification key (base64 of an EC public key)")
        name = config.get("from_name")
        if name is not None and not isinstance(name, str):
            return "email_sendgrid config 'from_name' must be a string"
        if error := common.bad_url(config, "api_base_url", "email_sendgrid"):
            return error
        return common.validate_common(config, "email_sendgrid", HEADER_FIELDS)

    # -- outbound -----------------------------------------------------------------------
    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        config = channel.config
        to = mail._recipient(activity)
        if to is None:
            return DeliveryResult(ok=False, retryable=False, error=(
                "no address to mail: set metadata 'email' (or 'to'), or reply in a conversation "
                "that began with a mail on this channel"))
        text = activity.text if isinstance(activity.text, str) and activity.text.strip() else ""
        files, links = await mail._attachments(session, config, activity)
        if not text and not files and not links:
            return DeliveryResult(ok=False, retryable=False,
                                  error="e-mail delivery needs a text or an attachment")
        message, message_id = mail.compose(config, activity, to, text, links, files)
        plain = message.get_body(("plain",))
        html_part = message.get_body(("html",))
        headers = {k: str(message[k]) for k in ("Message-ID", "In-Reply-To", "References")
                   if message[k] is not None}
        sender: dict[str, str] = {"email": config["from_address"]}
        if config.get("from_name"):
            sender["name"] = config["from_name"]
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": to}]}],
            "from": sender, "subject": str(message["Subject"]),
            "content": [
                {"type": "text/plain", "value": plain.get_content() if plain else text},
                {"type": "text/html", "value": html_part.get_content() if html_part else text},
            ],
            "headers": headers,
            "custom_args": {"converger_delivery_id": activity.delivery_id or activity.id},
        }
        if files:
            body["attachments"] = [
                {"content": base64.b64encode(content).decode(), "filename": name,
                 "type": ctype, "disposition": "attachment"} for name, ctype, content in files]
        url = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/") + "/v3/mail/send"
        answer = await common.post_json(
            session, url, {"Authorization": f"Bearer {config['api_key']}",
                           "Content-Type": "application/json"}, body, common.timeout_of(config))
        if isinstance(answer, str):
            return common.unreachable(LABEL, answer)
        status, resp_headers, raw = answer
        if status in (200, 202):
            sg_id = resp_headers.get("X-Message-Id") or None
            return DeliveryResult(ok=True, provider_message_id=sg_id,
                                  metadata={"message_id": message_id})
        return common.failure(LABEL, status, resp_headers, raw, _describe,
                              auth_statuses=(401, 403))

    # -- inbound ------------------------------------------------------------------------
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """One Inbound Parse post (the parsed fields, or the raw MIME in ``email``)."""
        if not isinstance(payload, dict):
            raise InboundError("unable to parse SendGrid Inbound Parse post: expected a form")
        envelope = _envelope(payload.get("envelope"))
        rcpts = [r for r in common.as_list(envelope.get("to")) if isinstance(r, str)]
        if not rcpts and isinstance(payload.get("to"), str):
            rcpts = [a for _, a in mail.getaddresses_safe(payload["to"])]
        mail_from = envelope.get("from") if isinstance(envelope.get("from"), str) else None
        raw = payload.get("email")
        if isinstance(raw, str) and raw.strip():
            return [mail.parse_mail(raw.encode("utf-8", "surrogateescape"), rcpts, mail_from)]
        head = payload.get("headers")
        sender = payload.get("from")
        if not isinstance(head, str) or not isinstance(sender, str):
            raise InboundError("unable to parse SendGrid Inbound Parse post: headers and from "
                               "are required")
        text = payload.get("text") if isinstance(payload.get("text"), str) else ""
        html = payload.get("html") if isinstance(payload.get("html"), str) else ""
        return [_parsed(payload, head, text or (mail.html_text(html) if html else ""),
                        rcpts, mail_from)]

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        """An Event Webhook post: a JSON array of events; None for anything else."""
        if not isinstance(payload, list) or not payload:
            return None
        updates = []
        for event in payload[:MAX_EVENTS]:
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                continue
            sg_id = common.as_str(event.get("sg_message_id"))
            delivery = common.as_str(event.get("converger_delivery_id"))
            if sg_id is None and delivery is None:
                continue
            kind: str = event["event"]
            reason = common.as_str(event.get("reason")) or common.as_str(event.get("response"))
            error = f"SendGrid {kind}" + (f": {reason[:300]}" if reason else "") \
                if EVENTS.get(kind) == "failed" else None
            stamp = event.get("timestamp")
            updates.append(StatusUpdate(
                status=EVENTS.get(kind) or kind,
                provider_message_id=sg_id.split(".filter", 1)[0] if sg_id else None,
                delivery_id=delivery if sg_id is None else None,
                timestamp=stamp if isinstance(stamp, int) and not isinstance(stamp, bool)
                and 0 < stamp < 10**11 else None,
                recipient_id=common.as_str(event.get("email")), error=error))
        return updates or None

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        own = channel.config.get("inbound_address") or channel.config.get("from_address")
        to = message.metadata.get("to")
        if not isinstance(own, str) or not isinstance(to, list) or not to:
            return True
        return own.lower() in [t.lower() for t in to if isinstance(t, str)]

    # -- verification -------------------------------------------------------------------
    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """The Event Webhook's ECDSA signature when the request carries one (receipts), else
        Inbound Parse's basic auth."""
        signature = common.header(headers, SIGNATURE_HEADER)
        stamp = common.header(headers, TIMESTAMP_HEADER)
        if signature is not None or stamp is not None:
            return _check_event_signature(channel.config, signature or "", stamp or "", body)
        user, password = channel.config.get("webhook_username"), channel.config.get("webhook_password")
        given = common.header(headers, "Authorization")
        if not isinstance(user, str) or not isinstance(password, str) or not given:
            return False
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return hmac.compare_digest(header_bytes(given), expected.encode())

    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        return await mail.EmailSmtpAdapter().fetch_media(session, channel, attachment, limit)


def sign_event(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The signature header SendGrid sends (base64 DER ECDSA-SHA256 of timestamp + body)."""
    return base64.b64encode(private_key.sign(timestamp.encode() + body,
                                             ec.ECDSA(hashes.SHA256()))).decode()


def _public_key(value: str) -> ec.EllipticCurvePublicKey | None:
    try:
        key = load_der_public_key(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def _check_event_signature(config: Mapping[str, Any], signature: str, stamp: str,
                           body: bytes) -> bool:
    key = _public_key(config.get("event_public_key") or "")
    if key is None or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    if abs(now() - int(stamp)) > TOLERANCE_SECONDS:
        return False
    try:
        der = base64.b64decode(header_bytes(signature), validate=True)
        key.verify(der, stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def _describe(body: Any) -> tuple[str | None, bool | None]:
    errors = common.as_list(common.as_dict(body).get("errors"))
    first = common.as_dict(errors[0]) if errors else {}
    message = common.as_str(first.get("message"))
    field = common.as_str(first.get("field"))
    if message and field:
        message = f"{message} ({field})"
    return message, None


def _envelope(value: Any) -> dict[str, Any]:
    if isinstance(value, str) and len(value) < 100_000:
        try:
            decoded = json.loads(value)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return value if isinstance(value, dict) else {}


def _parsed(payload: dict[str, Any], head: str, text: str, rcpts: list[str],
            mail_from: str | None) -> InboundMessage:
    """A mail from Inbound Parse's fields: the threading headers from ``headers``."""
    try:
        headers = HeaderParser(policy=policy.compat32).parsestr(head[:200_000])
        raw_head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()
                           if k.lower() in ("from", "subject", "message-id", "in-reply-to",
                                            "references", "to", "auto-submitted"))
    except Exception:  # the email package raises several kinds on broken headers
        raise InboundError("unable to parse SendGrid Inbound Parse headers") from None
    if "from:" not in raw_head.lower():
        raw_head += f"From: {payload['from']}\r\n"
    if "subject:" not in raw_head.lower() and isinstance(payload.get("subject"), str):
        raw_head += f"Subject: {payload['subject']}\r\n"
    raw = (raw_head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode(
        "utf-8", "surrogateescape")
    message = mail.parse_mail(raw, rcpts, mail_from)
    if not message.attachments:
        message.attachments = _files(payload)
    return message


def _files(payload: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i in range(1, 51):
        f = payload.get(f"attachment{i}")
        if not isinstance(f, dict):
            continue
        content = f.get("content")
        body = content if isinstance(content, bytes) else b""
        ctype = common.as_str(f.get("content_type")) or "application/octet-stream"
        att: dict[str, Any] = {"type": "image" if ctype.startswith("image/") else "file",
                               "name": (common.as_str(f.get("filename")) or f"attachment{i}")[:200],
                               "content_type": ctype, "size": len(body)}
        if len(body) <= mail.INLINE_LIMIT:
            att["content_base64"] = base64.b64encode(body).decode()
        out.append(att)
    return out


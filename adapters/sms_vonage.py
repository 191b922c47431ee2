"""SMS through the Vonage Messages API (docs/channels/vonage.md).

Outbound: ``POST {api_base_url}/v1/messages`` (``channel: sms``, ``message_type: text``) with a
JWT made from the Vonage application's id and private key (RS256), or HTTP basic auth with the
account's API key and secret. Inbound and status webhooks are JSON, signed by Vonage with a JWT
in ``Authorization: Bearer`` (HS256, keyed by the account's signature secret) whose
``payload_hash`` is the SHA-256 of the body; a missing, forged, tampered or stale one is
refused. Statuses: ``submitted`` → sent, ``delivered``, ``read``, ``rejected`` and
``undeliverable`` → failed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from . import common
from .base import (
    MESSAGES_ONLY,
    BaseAdapter,
    ChannelInfo,
    ConfigField,
    DeliveryResult,
    InboundError,
    InboundIgnored,
    InboundMessage,
    OutboundActivity,
    StatusUpdate,
)

DEFAULT_BASE_URL = "https://api.nexmo.com"
LABEL = "Vonage Messages API"
NUMBER_RE = re.compile(r"\+?[1-9]\d{6,14}")
SENDER_RE = re.compile(r"\+?[1-9]\d{6,14}|[A-Za-z0-9 ]{1,11}")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
STATUSES = {"submitted": "sent", "delivered": "delivered", "read": "read",
            "rejected": "failed", "undeliverable": "failed"}
TOLERANCE_SECONDS = 300
JWT_LIFETIME = 300
TEXT_LIMIT = 1000  # Vonage's SMS text limit (characters)

# The clock JWTs are made and checked with (tests replace it).
now: Callable[[], float] = time.time


class SmsVonageAdapter(BaseAdapter):
    type: ClassVar[str] = "sms_vonage"
    secret_fields: ClassVar[tuple[str, ...]] = ("private_key", "api_secret", "signature_secret")
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY
    config_fields: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("from", "From number", "Your Vonage number in E.164 (447700900001) or an "
                    "alphanumeric sender id", True),
        ConfigField("application_id", "Application id",
                    "Dashboard → Applications: the application with Messages enabled"),
        ConfigField("private_key", "Private key",
                    "The application's private key (PEM); with the application id it signs the "
                    "API's JWTs. Or use API key and secret below"),
        ConfigField("api_key", "API key", "Dashboard → API Settings (basic auth instead of a JWT)"),
        ConfigField("api_secret", "API secret", ""),
        ConfigField("signature_secret", "Signature secret",
                    "API Settings → Signed webhooks: the secret Vonage signs webhooks with "
                    "(HS256)", True),
        ConfigField("api_base_url", "API base URL", f"Default {DEFAULT_BASE_URL}"),
    )

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, ("from", "signature_secret"), "sms_vonage"):
            return error
        if not SENDER_RE.fullmatch(config["from"]):
            return "sms_vonage config 'from' must be a number like 447700900001 or a sender id"
        app, key = config.get("application_id"), config.get("private_key")
        api_key, secret = config.get("api_key"), config.get("api_secret")
        if app is not None or key is not None:
            if not (isinstance(app, str) and UUID_RE.fullmatch(app)):
                return "sms_vonage config 'application_id' must be the application's UUID"
            if not isinstance(key, str) or not _usable_key(key):
                return "sms_vonage config 'private_key' must be the application's RSA private " \
                       "key (PEM)"
        elif not (isinstance(api_key, str) and api_key and isinstance(secret, str) and secret):
            return ("sms_vonage config needs 'application_id' and 'private_key', or 'api_key' "
                    "and 'api_secret'")
        if isinstance(api_key, str) and ":" in api_key:
            return "sms_vonage config 'api_key' must not contain ':'"
        if error := common.bad_url(config, "api_base_url", "sms_vonage"):
            return error
        return common.validate_common(config, "sms_vonage", ("api_key", "api_secret"))

    # -- outbound -----------------------------------------------------------------------
    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        config = channel.config
        to = common.recipient(activity)
        if to is None:
            return common.no_recipient("Vonage")
        to = to.removeprefix("+")
        if not NUMBER_RE.fullmatch(to):
            return DeliveryResult(ok=False, retryable=False,
                                  error=f"Vonage SMS needs a phone number to send to, not {to!r}")
        if activity.attachments:
            return DeliveryResult(ok=False, retryable=False,
                                  error="Vonage SMS channels send text only; the activity has "
                                        "attachments")
        text = common.text_of(activity, "Vonage")
        if isinstance(text, DeliveryResult):
            return text
        body = {"message_type": "text", "channel": "sms", "to": to,
                "from": config["from"].removeprefix("+"), "text": text[:TEXT_LIMIT],
                "client_ref": (activity.delivery_id or activity.id)[:100]}
        url = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"
        headers = {"Authorization": authorization(config), "Content-Type": "application/json",
                   "Accept": "application/json"}
        answer = await common.post_json(session, url, headers, body, common.timeout_of(config))
        if isinstance(answer, str):
            return common.unreachable(LABEL, answer)
        status, resp_headers, raw = answer
        data = common.as_dict(common.decode_json(raw))
        message_uuid = common.as_str(data.get("message_uuid"))
        if status in (200, 202) and message_uuid:
            return DeliveryResult(ok=True, provider_message_id=message_uuid)
        return common.failure(LABEL, status, resp_headers, raw, _describe,
                              auth_statuses=(401, 403))

    # -- inbound ------------------------------------------------------------------------
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        if not isinstance(payload, dict):
            raise InboundError("unable to parse Vonage webhook: expected a JSON object")
        msg_uuid = common.as_str(payload.get("message_uuid"))
        sender = common.as_str(payload.get("from"))
        if not msg_uuid or not sender:
            raise InboundError("unable to parse Vonage webhook: message_uuid and from are "
                               "required")
        channel_name = payload.get("channel")
        if channel_name not in (None, "sms"):
            raise InboundIgnored(f"Vonage {channel_name!r} message ignored (an SMS channel)")
        kind = payload.get("message_type")
        if kind not in (None, "text"):
            raise InboundIgnored(f"Vonage message of type {kind!r} ignored (text only)")
        meta: dict[str, Any] = {"vonage_message_uuid": msg_uuid, "from": sender}
        for key in ("to", "timestamp"):
            value = common.as_str(payload.get(key))
            if value:
                meta[key] = value
        sms = common.as_dict(payload.get("sms"))
        for key in ("num_messages", "keyword"):
            value = common.as_str(sms.get(key))
            if value:
                meta[key] = value
        return [InboundMessage(sender=sender, text=common.as_str(payload.get("text")) or "",
                               metadata=meta, external_id=msg_uuid)]

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            return None
        msg_uuid = common.as_str(payload.get("message_uuid"))
        if not msg_uuid:
            return None
        status: str = payload["status"]
        error = None
        if STATUSES.get(status) == "failed":
            detail = common.as_dict(payload.get("error"))
            title = common.as_str(detail.get("title"))
            text = common.as_str(detail.get("detail"))
            error = f"Vonage {status}" + (f" {title}" if title else "") + \
                (f": {text[:300]}" if text else "")
        return [StatusUpdate(status=STATUSES.get(status) or status, provider_message_id=msg_uuid,
                             recipient_id=common.as_str(payload.get("to")),
                             timestamp=common.as_str(payload.get("timestamp")), error=error)]

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        own, to = channel.config.get("from"), message.metadata.get("to")
        if isinstance(own, str) and isinstance(to, str) and to:
            return to.removeprefix("+") == own.removeprefix("+")
        return True

    # -- verification -------------------------------------------------------------------
    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """``Authorization: Bearer <JWT>``: HS256 with the signature secret, ``iat`` within
        five minutes, ``payload_hash`` the SHA-256 of the body."""
        secret = channel.config.get("signature_secret")
        given = common.header(headers, "Authorization") or ""
        if not isinstance(secret, str) or not secret or not given.startswith("Bearer "):
            return False
        try:
            with warnings.catch_warnings():
                # Vonage chooses the secret's length; a short one is still the one it uses.
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                claims = jwt.decode(given[len("Bearer "):].strip(), secret, algorithms=["HS256"],
                                    options={"require": ["iat"], "verify_iat": False})
        except (jwt.PyJWTError, ValueError, UnicodeError):
            return False
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool) \
                or abs(now() - iat) > TOLERANCE_SECONDS:
            return False
        expected = claims.get("payload_hash")
        if body and not isinstance(expected, str):
            return False
        if isinstance(expected, str):
            return hmac.compare_digest(expected.lower().encode(),
                                       hashlib.sha256(body).hexdigest().encode())
        return True


def authorization(config: Mapping[str, Any]) -> str:
    """A Bearer JWT of the application (RS256), or basic auth with the API key."""
    app, key = config.get("application_id"), config.get("private_key")
    if isinstance(app, str) and isinstance(key, str):
        issued = int(now())
        token = jwt.encode({"application_id": app, "iat": issued, "exp": issued + JWT_LIFETIME,
                            "jti": str(uuid.uuid4())}, pem(key), algorithm="RS256")
        return f"Bearer {token}"
    raw = f"{config['api_key']}:{config['api_secret']}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def pem(value: str) -> str:
    """The private key as PEM, also when pasted into a one-line input (its newlines lost)."""
    m = re.fullmatch(r"\s*(-----BEGIN [A-Z ]+-----)\s*([A-Za-z0-9+/=\s]+?)\s*(-----END [A-Z ]+-----)\s*",
                     value)
    if m is None:
        return value
    body = re.sub(r"\s+", "", m.group(2))
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([m.group(1), *lines, m.group(3)]) + "\n"


def _usable_key(key: str) -> bool:
    try:
        jwt.encode({"probe": 1}, pem(key), algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        return False
    return True


def _describe(body: Any) -> tuple[str | None, bool | None]:
    data = common.as_dict(body)
    title = common.as_str(data.get("title"))
    detail = common.as_str(data.get("detail"))
    return (f"{title}: {detail}" if title and detail else title or detail), None

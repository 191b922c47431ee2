"""SMS and MMS through Twilio's Programmable Messaging (docs/channels/twilio.md).

Outbound: ``POST {api_base_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, form-encoded,
HTTP basic auth (account SID and auth token), from the channel's number (``From``) or its
Messaging Service (``MessagingServiceSid``), attachments as ``MediaUrl`` (MMS) and a
``StatusCallback`` at the channel's status URL. Inbound: Twilio's form-encoded webhook
(``From``, ``To``, ``Body``, ``MessageSid``, ``NumMedia``, ``MediaUrl{n}``…), verified with
``X-Twilio-Signature`` (base64 HMAC-SHA1 keyed by the auth token over the URL Twilio posted to
followed by every form field's name and value, sorted by name) and answered with an empty
TwiML ``<Response/>``. Status callbacks (``MessageStatus``) become receipts; Twilio's error
codes decide between failing at once and retrying.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

from . import common
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
from .media import MB, MediaSpec, choose
from .signing import header_bytes
from .webhook import valid_http_url

DEFAULT_BASE_URL = "https://api.twilio.com"
LABEL = "Twilio API"
ACCOUNT_SID_RE = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID_RE = re.compile(r"MG[0-9a-fA-F]{32}")
# An E.164 number, a short code, or an alphanumeric sender id.
FROM_RE = re.compile(r"\+[1-9]\d{6,14}|\d{3,8}|[A-Za-z0-9 ]{1,11}|whatsapp:\+[1-9]\d{6,14}")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA = 10  # Twilio accepts up to ten MediaUrl per message
MAX_REDIRECTS = 3  # a media URL redirects once, to the file's storage
# Twilio's MessageStatus → converger's receipt statuses. ``queued``, ``accepted``,
# ``scheduled``, ``sending`` and ``receiving``/``received`` are steps before a receipt: kept as
# themselves, which the receipt rules ignore (never applied, never an error).
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read",
            "undelivered": "failed", "failed": "failed", "canceled": "failed"}
# Error codes (REST API) worth a retry: Twilio's own trouble and its rate limits.
RETRYABLE_CODES = frozenset({20429, 20500, 20503, 30001, 30002})
# Error codes meaning the credentials do not work: the channel is unhealthy until fixed.
AUTH_CODES = frozenset({20003, 20005, 20006, 20008, 20403})


# MMS (US/Canada numbers): 5 MB per message; Twilio fetches each MediaUrl itself.
SENDS: dict[str, MediaSpec] = {
    "image": MediaSpec(max_bytes=5 * MB, content_types=frozenset({
        "image/jpeg", "image/png", "image/gif"})),
    "document": MediaSpec(max_bytes=5 * MB, content_types=frozenset({
        "application/pdf", "text/vcard", "text/x-vcard", "text/calendar"})),
    "audio": MediaSpec(max_bytes=5 * MB, content_types=frozenset({
        "audio/mpeg", "audio/mp4", "audio/ogg", "audio/amr", "audio/wav"})),
    "video": MediaSpec(max_bytes=5 * MB, content_types=frozenset({"video/mp4", "video/3gpp"})),
}


class SmsTwilioAdapter(BaseAdapter):
    type: ClassVar[str] = "sms_twilio"
    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY
    inbound_ack: ClassVar[tuple[str, str] | None] = ("text/xml", EMPTY_TWIML)
    media: ClassVar[Mapping[str, MediaSpec]] = SENDS
    config_fields: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("account_sid", "Account SID",
                    "Twilio Console → Account Info → Account SID (AC…)", True),
        ConfigField("auth_token", "Auth token",
                    "Account Info → Auth Token; it signs Twilio's webhooks too", True),
        ConfigField("from", "From number",
                    "The Twilio number messages are sent from, in E.164 (+14155550100); "
                    "or set a Messaging Service SID instead"),
        ConfigField("messaging_service_sid", "Messaging Service SID",
                    "MG…: send through a Messaging Service (its sender pool) instead of one number"),
        ConfigField("api_base_url", "API base URL", f"Default {DEFAULT_BASE_URL}"),
    )

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, ("account_sid", "auth_token"), "sms_twilio"):
            return error
        if not ACCOUNT_SID_RE.fullmatch(config["account_sid"]):
            return "sms_twilio config 'account_sid' must be the Account SID (AC and 32 hex digits)"
        sender, service = config.get("from"), config.get("messaging_service_sid")
        if sender is None and service is None:
            return "sms_twilio config needs 'from' (a Twilio number) or 'messaging_service_sid'"
        if sender is not None and not (isinstance(sender, str) and FROM_RE.fullmatch(sender)):
            return "sms_twilio config 'from' must be a number in E.164 form like +14155550100"
        if service is not None and not (isinstance(service, str)
                                        and SERVICE_SID_RE.fullmatch(service)):
            return "sms_twilio config 'messaging_service_sid' must be MG and 32 hex digits"
        if error := common.bad_url(config, "api_base_url", "sms_twilio"):
            return error
        return common.validate_common(config, "sms_twilio", ("auth_token",))

    def messages_url(self, config: Mapping[str, Any]) -> str:
        base = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/2010-04-01/Accounts/{config['account_sid']}/Messages.json"

    # -- outbound -----------------------------------------------------------------------
    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        config = channel.config
        to = common.recipient(activity)
        if to is None:
            return common.no_recipient("Twilio")
        text = activity.text if isinstance(activity.text, str) and activity.text.strip() else None
        if len(activity.attachments) > MAX_MEDIA:
            return DeliveryResult(ok=False, retryable=False, error=(
                f"Twilio sends at most {MAX_MEDIA} media files per message; the activity has "
                f"{len(activity.attachments)}"))
        media: list[str] = []
        for att in activity.attachments:
            chosen = choose(SENDS, [att], None, "Twilio")
            if isinstance(chosen, str):
                return DeliveryResult(ok=False, retryable=False, error=chosen)
            if chosen is not None and chosen.link is not None:
                media.append(chosen.link)
            elif chosen is not None:
                return DeliveryResult(ok=False, retryable=False,
                                      error="Twilio fetches media by URL; a media_id cannot be sent")
        if text is None and not media:
            return DeliveryResult(ok=False, retryable=False,
                                  error="Twilio delivery needs a non-empty text or an attachment URL")
        form: list[tuple[str, str]] = [("To", to)]
        if isinstance(config.get("messaging_service_sid"), str):
            form.append(("MessagingServiceSid", config["messaging_service_sid"]))
        else:
            form.append(("From", config["from"]))
        if text is not None:
            form.append(("Body", text))
        form.extend(("MediaUrl", url) for url in media)
        if channel.status_url:
            form.append(("StatusCallback", channel.status_url))
        answer = await common.post_form(session, self.messages_url(config), _auth_header(config),
                                        form, common.timeout_of(config))
        if isinstance(answer, str):
            return common.unreachable(LABEL, answer)
        status, headers, raw = answer
        data = common.as_dict(common.decode_json(raw))
        sid = common.as_str(data.get("sid"))
        if status in (200, 201) and sid:
            meta = {k: data[k] for k in ("status", "num_segments", "messaging_service_sid")
                    if isinstance(data.get(k), str)}
            return DeliveryResult(ok=True, provider_message_id=sid, metadata=meta)
        return _failure(status, headers, raw, data)

    # -- inbound ------------------------------------------------------------------------
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """One incoming-message webhook: the text and its media (``MediaUrl0…``)."""
        if not isinstance(payload, dict):
            raise InboundError("unable to parse Twilio webhook: expected a form")
        sid = _field(payload, "MessageSid") or _field(payload, "SmsMessageSid")
        sender = _field(payload, "From")
        if not sid or not sender:
            raise InboundError("unable to parse Twilio webhook: MessageSid and From are required")
        meta: dict[str, Any] = {"twilio_message_sid": sid, "from": sender}
        for key, name in (("To", "to"), ("AccountSid", "account_sid"),
                          ("MessagingServiceSid", "messaging_service_sid"),
                          ("NumSegments", "num_segments"), ("FromCountry", "from_country")):
            value = _field(payload, key)
            if value:
                meta[name] = value
        return [InboundMessage(sender=sender, text=_field(payload, "Body") or "", metadata=meta,
                               attachments=_media(payload), external_id=sid)]

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        """A status callback (``MessageStatus``) as a receipt; None for anything else."""
        if not isinstance(payload, dict):
            return None
        status = _field(payload, "MessageStatus")
        sid = _field(payload, "MessageSid") or _field(payload, "SmsSid")
        if not status or not sid or status in ("received", "receiving"):
            return None
        code = _field(payload, "ErrorCode")
        error = None
        if status in ("undelivered", "failed", "canceled"):
            message = _field(payload, "ErrorMessage")
            error = f"Twilio error {code}" + (f": {message}" if message else "") if code \
                else f"Twilio status {status}"
        return [StatusUpdate(status=STATUSES.get(status, status), provider_message_id=sid,
                             recipient_id=_field(payload, "To"), error=error)]

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        """To the channel's number (or its Messaging Service); a message naming neither the
        number nor the service is taken as the channel's (Twilio posts per number)."""
        to, service = message.metadata.get("to"), message.metadata.get("messaging_service_sid")
        own_service = channel.config.get("messaging_service_sid")
        if isinstance(own_service, str) and isinstance(service, str):
            return service == own_service
        own = channel.config.get("from")
        if isinstance(own, str) and isinstance(to, str) and to:
            return to == own
        return True

    # -- verification -------------------------------------------------------------------
    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """``X-Twilio-Signature`` over ``channel.request_url`` and the form fields (with the
        URL's default port both left out and put in, as Twilio's own validator does)."""
        token = channel.config.get("auth_token")
        given = common.header(headers, "X-Twilio-Signature")
        if not isinstance(token, str) or not token or not given:
            return False
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return False
        got = header_bytes(given)
        return any(hmac.compare_digest(got, sign(token, url, params).encode())
                   for url in _url_variants(channel.request_url))

    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        """An MMS file (``MediaUrl{n}``): a Media resource on Twilio's API host (or, for a
        channel whose ``api_base_url`` names another host, that host only), fetched with the
        account's credentials (Twilio enforces Basic auth on media URLs). Twilio answers with a
        redirect to the file's short-lived URL on its storage, followed (at most
        ``MAX_REDIRECTS``) without the credentials, which never leave the API's origin. A
        resource Twilio no longer has (404) is final."""
        url = attachment.get("url")
        if not isinstance(url, str) or not valid_http_url(url):
            return MediaError(kind="unsupported", error="the attachment has no Twilio media URL")
        base = channel.config.get("api_base_url") or DEFAULT_BASE_URL
        origin = _origin(base)
        if _origin(url) != origin:
            return MediaError(kind="unsupported", error="the media URL is not on Twilio's host")
        timeout = common.timeout_of(channel.config)
        for _ in range(MAX_REDIRECTS + 1):
            headers = _auth_header(channel.config) if _origin(url) == origin else {}
            got = await common.download(session, url, headers, limit, timeout, LABEL)
            if isinstance(got, MediaError):
                return got
            status, resp_headers, body = got
            location = resp_headers.get("Location")
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if not valid_http_url(url):
                    return MediaError(kind="provider", error=f"{LABEL} redirected to a non-HTTP URL")
                continue
            if status != 200:
                return MediaError(kind="expired" if status in (404, 410) else "provider",
                                  error=f"{LABEL} download returned {status}")
            return MediaFile(body=body, name=urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
                             or "media",
                             content_type=common.as_str(attachment.get("mime_type"))
                             or resp_headers.get("Content-Type") or "application/octet-stream")
        return MediaError(kind="provider", error=f"{LABEL} download: too many redirects")


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port made explicit."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def sign(auth_token: str, url: str, params: list[tuple[str, str]] | Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a form post of ``params`` to ``url``."""
    pairs = list(params.items()) if isinstance(params, Mapping) else params
    values: dict[str, set[str]] = {}
    for key, value in pairs:
        values.setdefault(key, set()).add(value)
    data = url + "".join(key + value for key in sorted(values) for value in sorted(values[key]))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8", "surrogatepass"),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its scheme's default port, and with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if default is None or not parts.hostname:
        return [url]
    host = parts.netloc.rpartition("@")[2]
    bare = host.rsplit(":", 1)[0] if port is not None else host
    without = urlunsplit(parts._replace(netloc=bare))
    variants = [url, without]
    if port is None or port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{bare}:{default}")))
    return variants


def _auth_header(config: Mapping[str, Any]) -> dict[str, str]:
    raw = f"{config['account_sid']}:{config['auth_token']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _failure(status: int, headers: Mapping[str, str], raw: bytes,
             data: dict[str, Any]) -> DeliveryResult:
    """Twilio's error body: ``{"code": 21211, "message": …, "more_info": …, "status": 400}``.
    Its code decides: an invalid or unsubscribed number fails at once; rate limits and
    Twilio's own trouble are retried; bad credentials mark the channel unhealthy."""
    code = data.get("code") if isinstance(data.get("code"), int) else None

    def describe(body: Any) -> tuple[str | None, bool | None]:
        message = common.as_str(common.as_dict(body).get("message"))
        if code is not None:
            message = f"error {code}: {message}" if message else f"error {code}"
            if code in RETRYABLE_CODES:
                return message, True
        return message, None

    result = common.failure(LABEL, status, headers, raw, describe, auth_statuses=(401,))
    if code is not None:
        result.metadata = {**result.metadata, "twilio_error_code": code}
        result.channel_unhealthy = result.channel_unhealthy or code in AUTH_CODES
    return result


def _field(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _media(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    count = _field(payload, "NumMedia") or "0"
    n = int(count) if count.isascii() and count.isdigit() and len(count) <= 2 else 0
    out: list[dict[str, Any]] = []
    for i in range(min(n, MAX_MEDIA)):
        url = _field(payload, f"MediaUrl{i}")
        if url is None or not valid_http_url(url):
            continue
        mime = _field(payload, f"MediaContentType{i}") or ""
        att: dict[str, Any] = {"type": "image" if mime.startswith("image/") else "file",
                               "url": url}
        if mime:
            att["mime_type"] = mime
        out.append(att)
    return out

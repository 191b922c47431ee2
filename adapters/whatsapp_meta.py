"""WhatsApp through Meta's Cloud API (Graph API).

Outbound: one text message per activity, ``POST {api_base_url}/{api_version}/{phone_number_id}/messages``
with the access token as a Bearer token. Inbound: Meta posts notifications (messages and
statuses alike) to the channel's inbound URL; every message of every change of every entry
becomes an InboundMessage, every status a StatusUpdate. Verification: the ``hub.*`` challenge
and, when the channel has an ``app_secret``, the ``X-Hub-Signature-256`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from . import common, templates
from .base import (
    MESSAGES_ONLY,
    ActionResult,
    BaseAdapter,
    ChannelInfo,
    DeliveryResult,
    InboundError,
    InboundMessage,
    MediaError,
    MediaFile,
    OutboundActivity,
    StatusUpdate,
)
from .media import MB, Chosen, MediaSpec, choose
from .signing import header_bytes

REQUIRED = ("phone_number_id", "access_token", "verify_token")
DEFAULT_BASE_URL = "https://graph.facebook.com"
# The newest Graph API version in Meta's changelog when this was written (released
# 2026-07-29); a channel pins another with ``api_version``. See docs/whatsapp.md.
DEFAULT_API_VERSION = "v26.0"
LABEL = "WhatsApp API"
OBJECT = "whatsapp_business_account"
STATUSES = ("sent", "delivered", "read", "failed")
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
MEDIA_FIELDS = ("id", "mime_type", "sha256", "caption", "filename", "voice", "animated", "url")
# What the Cloud API accepts (developers.facebook.com/docs/whatsapp/cloud-api/reference/media,
# "Supported media types"): size limits and content types per message type.
SENDS: dict[str, MediaSpec] = {
    "image": MediaSpec(max_bytes=5 * MB, content_types=frozenset({"image/jpeg", "image/png"})),
    "document": MediaSpec(max_bytes=100 * MB),
    "audio": MediaSpec(max_bytes=16 * MB, caption=False, content_types=frozenset({
        "audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"})),
    "video": MediaSpec(max_bytes=16 * MB, content_types=frozenset({"video/mp4", "video/3gpp"})),
    "sticker": MediaSpec(max_bytes=500 * 1024, caption=False,
                         content_types=frozenset({"image/webp"})),
}
UPLOAD_REUSE_SECONDS = 86_400.0  # a gateway upload's Meta media id is reused for a day
UPLOAD_CACHE_SIZE = 4096
TEMPLATE_PAGES = 20  # at most 2,000 templates a sync (a WABA may have 250 per number)
# Graph error codes that mean "later, not never" even when the HTTP status is a 4xx:
# throttling (4, 80007, 130429, 131048, 131056) and temporary service trouble (1, 2, 131000,
# 131016, 133004). Anything else in a 4xx is final.
RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004})


class WhatsAppMetaAdapter(BaseAdapter):
    """One instance per process (the registry's); it remembers the media ids of the gateway's
    own uploads it sent to Meta (``media_upload``), so a retry or a resend reuses the id."""

    type: ClassVar[str] = "whatsapp_meta"
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token", "app_secret")
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY | {"template"}
    media: ClassVar[Mapping[str, MediaSpec]] = SENDS
    actions: ClassVar[tuple[str, ...]] = ("sync_templates",)

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, REQUIRED, "whatsapp_meta"):
            return error
        if error := common.header_unsafe(config, ("access_token",), "whatsapp_meta"):
            return error
        secret = config.get("app_secret")
        if secret is not None and not isinstance(secret, str):
            return "whatsapp_meta config 'app_secret' must be a string"
        if error := common.bad_url(config, "api_base_url", "whatsapp_meta"):
            return error
        waba = config.get("business_account_id")
        if waba is not None and not (isinstance(waba, str) and waba.isdigit()):
            return "whatsapp_meta config 'business_account_id' must be the WABA id (digits)"
        version = config.get("api_version")
        if version is not None and not _valid_version(version):
            return "whatsapp_meta config 'api_version' must look like 'v26.0'"
        upload = config.get("media_upload")
        if upload is not None and not isinstance(upload, bool):
            return "whatsapp_meta config 'media_upload' must be true or false"
        return common.validate_common(config, "whatsapp_meta")

    # -- outbound -----------------------------------------------------------------------
    def messages_url(self, config: Mapping[str, Any]) -> str:
        base = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        version = config.get("api_version") or DEFAULT_API_VERSION
        return f"{base}/{version}/{config['phone_number_id']}/messages"

    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        """Send the activity (text, one media file with its caption, or a template); success
        only on 200, keeping Meta's message id. What Meta would refuse fails at once."""
        to = common.recipient(activity)
        if to is None:
            return common.no_recipient("WhatsApp")
        got = _content_of(activity)
        if isinstance(got, str):
            return DeliveryResult(ok=False, retryable=False, error=got)
        content, chosen = got
        config = channel.config
        meta: dict[str, Any] = {"recipient": to}
        if config.get("media_upload") is True and chosen is not None and chosen.link:
            uploaded = await self.uploaded_media(session, channel, chosen)
            if isinstance(uploaded, DeliveryResult):
                return uploaded
            part = content[chosen.kind]
            del part["link"]
            part["id"] = meta["whatsapp_media_id"] = uploaded
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                **content}
        headers = {
            "Authorization": f"Bearer {config['access_token']}",
            "Content-Type": "application/json",
        }
        answer = await common.post_json(
            session, self.messages_url(config), headers, body, common.timeout_of(config)
        )
        if isinstance(answer, str):
            return common.unreachable(LABEL, answer)
        status, resp_headers, raw = answer
        if status != 200:
            return common.failure(LABEL, status, resp_headers, raw, _describe_error,
                                  auth_statuses=(401,))
        data = common.as_dict(common.decode_json(raw))
        first = common.as_dict((common.as_list(data.get("messages")) or [None])[0])
        message_id = common.as_str(first.get("id"))
        if message_id:
            meta["whatsapp_message_id"] = message_id
        return DeliveryResult(ok=True, provider_message_id=message_id, metadata=meta)

    def __init__(self) -> None:
        # (Graph URL, phone number id, gateway upload path) → (media id, monotonic expiry)
        self._uploaded: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()

    def _upload_key(self, channel: ChannelInfo, link: str) -> tuple[str, str, str] | None:
        """The cache key of a link to one of the gateway's own uploads (immutable files: the
        name carries the upload id), None for any other link (whose content may change)."""
        base = channel.inbound_url.split("/api/v1/channels/", 1)[0]
        path = link.split("?", 1)[0]
        if not base or not path.startswith(base + "/uploads/"):
            return None
        return (self.graph_url(channel.config), str(channel.config["phone_number_id"]),
                path[len(base):])

    async def uploaded_media(self, session: Any, channel: ChannelInfo, chosen: Chosen
                             ) -> str | DeliveryResult:
        """``upload_media``, once per gateway upload for a day (Meta keeps an uploaded file 30
        days): a retry of the same delivery, or the same file sent again, reuses its id."""
        key = self._upload_key(channel, chosen.link or "")
        now = time.monotonic()
        if key is not None:
            hit = self._uploaded.get(key)
            if hit is not None and hit[1] > now:
                self._uploaded.move_to_end(key)
                return hit[0]
        got = await self.upload_media(session, channel.config, chosen)
        if key is not None and isinstance(got, str):
            self._uploaded[key] = (got, now + UPLOAD_REUSE_SECONDS)
            while len(self._uploaded) > UPLOAD_CACHE_SIZE:
                self._uploaded.popitem(last=False)
        return got

    async def upload_media(self, session: Any, config: Mapping[str, Any], chosen: Chosen
                           ) -> str | DeliveryResult:
        """With ``media_upload``: the file at ``link`` (the gateway's own signed upload URL, or
        any other) fetched here and uploaded to Meta — ``POST /{phone_number_id}/media``,
        multipart ``messaging_product``, ``type`` and ``file`` — so that Meta never has to reach
        the link itself; the media id Meta answers, or why the send fails."""
        kind, link, name = chosen.kind, chosen.link or "", chosen.name
        spec = SENDS[kind]
        shown = link.split("?", 1)[0]  # never the signature of a signed link in an error
        timeout = common.timeout_of(config)
        got = await common.get_capped(session, link, {}, spec.max_bytes, timeout)
        if got is None:
            return DeliveryResult(ok=False, retryable=False, error=(
                f"the {kind} at {shown} is over {spec.max_bytes} bytes, the most WhatsApp "
                f"accepts for {kind} messages"))
        if isinstance(got, str):
            return DeliveryResult(ok=False, retryable=True,
                                  error=f"fetching the {kind} at {shown} failed: {got}")
        status, file_headers, data = got
        if status != 200:
            return DeliveryResult(ok=False, retryable=status >= 500 or status in (408, 429),
                                  error=f"fetching the {kind} at {shown} returned {status}")
        served = (file_headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        ctype = chosen.content_type or (served if served and served != "application/octet-stream"
                                 else None) or "application/octet-stream"
        if spec.content_types and ctype not in spec.content_types:
            return DeliveryResult(ok=False, retryable=False, error=(
                f"WhatsApp {kind} messages accept {', '.join(sorted(spec.content_types))}, "
                f"not {ctype}"))
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", ctype)
        form.add_field("file", data, filename=name or shown.rsplit("/", 1)[-1] or kind,
                       content_type=ctype)
        answer = await common.post_form(
            session, f"{self.graph_url(config)}/{config['phone_number_id']}/media",
            {"Authorization": f"Bearer {config['access_token']}"}, form, timeout)
        if isinstance(answer, str):
            return common.unreachable(f"{LABEL} media upload", answer)
        status, resp_headers, raw = answer
        media_id = common.as_str(common.as_dict(common.decode_json(raw)).get("id"))
        if status != 200 or not media_id:
            return common.failure(f"{LABEL} media upload", status, resp_headers, raw,
                                  _describe_error)
        return media_id

    def graph_url(self, config: Mapping[str, Any]) -> str:
        base = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/{config.get('api_version') or DEFAULT_API_VERSION}"

    # -- management ---------------------------------------------------------------------
    async def run_action(
        self, session: Any, channel: ChannelInfo, name: str, inbound_url: str
    ) -> ActionResult:
        """``sync_templates``: every message template of the channel's WhatsApp Business
        Account (``GET /{waba}/message_templates``, page by page), as ``data.templates``."""
        if name != "sync_templates":
            return await super().run_action(session, channel, name, inbound_url)
        config = channel.config
        waba = config.get("business_account_id")
        if not waba:
            return ActionResult(ok=False, error="set the channel's business_account_id (the "
                                "WhatsApp Business Account id) to sync its templates")
        base = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        version = config.get("api_version") or DEFAULT_API_VERSION
        url: str | None = (f"{base}/{version}/{waba}/message_templates?"
                           "fields=name,language,status,category,components&limit=100")
        headers = {"Authorization": f"Bearer {config['access_token']}"}
        found: list[dict[str, Any]] = []
        for _ in range(TEMPLATE_PAGES):
            if url is None:
                break
            answer = await common.get_capped(session, url, headers, 4 * MB,
                                             common.timeout_of(config))
            if answer is None or isinstance(answer, str):
                return ActionResult(ok=False, error=f"{LABEL} request failed: "
                                    f"{answer or 'answer too large'}")
            status, _, raw = answer
            body = common.decode_json(raw)
            if status != 200:
                message, _ = _describe_error(body)
                return ActionResult(ok=False, error=f"{LABEL} returned {status}: "
                                    f"{message or '(no error message)'}")
            data = common.as_dict(body)
            found += [t for t in (_template(x) for x in common.as_list(data.get("data"))) if t]
            nxt = common.as_str(common.as_dict(data.get("paging")).get("next"))
            # Only Graph's own next page: never a URL elsewhere.
            url = nxt if nxt and nxt.startswith(base + "/") else None
        return ActionResult(ok=True, data={"templates": found, "count": len(found)})

    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        """``GET /{media_id}`` (the file's short-lived ``url``, ``mime_type``, ``sha256``,
        ``file_size``), then the file from that URL with the same token; the bytes must match
        Meta's sha256. An expired or unknown id is final; no answer is worth another try."""
        media_id = common.as_str(attachment.get("media_id"))
        if not media_id or not media_id.replace("_", "").isalnum():
            return MediaError(kind="unsupported", error="the attachment has no WhatsApp media id")
        config = channel.config
        base = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        version = config.get("api_version") or DEFAULT_API_VERSION
        headers = {"Authorization": f"Bearer {config['access_token']}"}
        timeout = common.timeout_of(config)
        meta = await common.get_capped(session, f"{base}/{version}/{media_id}", headers,
                                       65_536, timeout)
        if meta is None or isinstance(meta, str):
            return MediaError(kind="provider", error=f"{LABEL} request failed: "
                              f"{meta or 'answer too large'}")
        status, _, raw = meta
        info = common.as_dict(common.decode_json(raw))
        url = common.as_str(info.get("url"))
        if status != 200 or not url:
            message, _ = _describe_error(info)
            final = status in (400, 401, 403, 404, 410)
            return MediaError(kind="expired" if final else "provider",
                              error=f"{LABEL} returned {status} for media {media_id}: "
                                    f"{message or '(no error message)'}")
        size = info.get("file_size")
        if isinstance(size, int) and size > limit:
            return MediaError(kind="too_large", error=f"the file is {size} bytes; at most "
                                                      f"{limit} are kept")
        got = await common.download(session, url, headers, limit, timeout, LABEL)
        if isinstance(got, MediaError):
            return got
        status, resp_headers, body = got
        if status != 200:
            return MediaError(kind="expired" if status in (401, 403, 404, 410) else "provider",
                              error=f"{LABEL} download returned {status}")
        digest = common.as_str(info.get("sha256"))
        if digest and digest not in (hashlib.sha256(body).hexdigest(),
                                     base64.b64encode(hashlib.sha256(body).digest()).decode()):
            return MediaError(kind="mismatch", error="the file does not match Meta's sha256")
        ctype = (common.as_str(info.get("mime_type")) or common.as_str(attachment.get("mime_type"))
                 or resp_headers.get("Content-Type") or "application/octet-stream")
        served = (resp_headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if served and served != "application/octet-stream" and served != ctype.split(";")[0]:
            return MediaError(kind="mismatch", error=f"Meta said {ctype} but the file was "
                                                     f"served as {served}")
        name = common.as_str(attachment.get("filename")) or f"{media_id}"
        return MediaFile(body=body, content_type=ctype, name=name)

    # -- inbound ------------------------------------------------------------------------
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """Every message in the notification, in order; non-text content as attachments."""
        out = [
            _message(msg, value)
            for value in _values(payload)
            for msg in common.as_list(value.get("messages"))
            if _is_message(msg)
        ]
        if not out:
            if not _is_notification(payload):
                raise InboundError(
                    "unable to parse WhatsApp Meta webhook payload: expected a notification with "
                    "\"object\": \"whatsapp_business_account\" and an \"entry\" list"
                )
            raise InboundError(
                "unable to parse WhatsApp Meta webhook payload: the notification holds no messages"
            )
        return out

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        """Every status in the notification, or None when it carries none.

        A batched notification holding messages as well is not treated as a receipt: the
        inbound route applies receipts *instead of* parsing messages, and a customer's message
        must never be dropped (Meta would not resend it after our 2xx); its statuses are the
        lesser loss (a delivery stays at its last state)."""
        if not _is_notification(payload):
            return None
        if any(_is_message(m) for v in _values(payload) for m in common.as_list(v.get("messages"))):
            return None
        updates = [
            _status(s)
            for value in _values(payload)
            for s in common.as_list(value.get("statuses"))
            if isinstance(s, dict) and common.as_str(s.get("id")) and isinstance(s.get("status"), str)
        ]
        return updates or None

    # -- verification -------------------------------------------------------------------
    def verify_challenge(self, channel: ChannelInfo, query: Mapping[str, str]) -> tuple[int, str]:
        """Meta's subscription check: ``hub.mode=subscribe`` and the configured verify token."""
        expected = channel.config.get("verify_token")
        mode = query.get("hub.mode")
        token = query.get("hub.verify_token")
        if (
            mode == "subscribe"
            and isinstance(token, str)
            and isinstance(expected, str)
            and expected
            and hmac.compare_digest(header_bytes(token), expected.encode())
        ):
            return 200, query.get("hub.challenge") or ""
        return 403, "Verification failed"

    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the app
        secret>``; None when the channel has no app secret (nothing to check)."""
        secret = channel.config.get("app_secret")
        if not isinstance(secret, str) or not secret:
            return None
        given = common.header(headers, "X-Hub-Signature-256")
        if not given:
            return False
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header_bytes(given.strip().lower()), expected.encode())


    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        """Meta posts every number of an app to the app's one callback URL: a message whose
        ``metadata.phone_number_id`` is another number's is not this channel's."""
        number = message.metadata.get("phone_number_id")
        return number is None or str(number) == str(channel.config.get("phone_number_id"))


def _template(value: Any) -> dict[str, Any] | None:
    """A ``message_templates`` entry as stored: name, language, status, category, components."""
    t = common.as_dict(value)
    name, language = common.as_str(t.get("name")), common.as_str(t.get("language"))
    if not name or not language:
        return None
    return {"name": name, "language": language, "status": common.as_str(t.get("status")) or "",
            "category": common.as_str(t.get("category")),
            "components": [c for c in common.as_list(t.get("components")) if isinstance(c, dict)]}


def _content_of(activity: OutboundActivity) -> tuple[dict[str, Any], Chosen | None] | str:
    """The message fields after ``to`` — a template, a media message (caption from the text)
    or a text message — with the attachment sent, if any; or why the activity cannot be
    sent."""
    if activity.type == "template":
        tpl = templates.template_of(activity)
        if isinstance(tpl, str):
            return tpl
        out: dict[str, Any] = {"name": tpl.name, "language": {"code": tpl.language}}
        if tpl.components:
            out["components"] = tpl.components
        return {"type": "template", "template": out}, None
    chosen = choose(SENDS, activity.attachments, activity.text, "WhatsApp")
    if isinstance(chosen, str):
        return chosen
    if chosen is None:
        if isinstance(activity.text, str) and activity.text.strip():
            return {"type": "text", "text": {"body": activity.text}}, None
        return "WhatsApp delivery needs a non-empty text or one attachment"
    part: dict[str, Any] = ({"id": chosen.media_id} if chosen.media_id is not None
                            else {"link": chosen.link})
    if activity.text and activity.text.strip():
        part["caption"] = activity.text
    if chosen.kind == "document" and chosen.name:
        part["filename"] = chosen.name
    return {"type": chosen.kind, chosen.kind: part}, chosen


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body`` (for tests and tools)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _valid_version(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith("v"):
        return False
    major, _, minor = value[1:].partition(".")
    return major.isdigit() and (minor == "" or minor.isdigit())


def _describe_error(body: Any) -> tuple[str | None, bool | None]:
    """Graph errors: ``{"error": {"message", "type", "code", "error_subcode", "error_data"}}``."""
    error = common.as_dict(common.as_dict(body).get("error"))
    message = common.as_str(error.get("message"))
    code = error.get("code")
    details = common.as_str(common.as_dict(error.get("error_data")).get("details"))
    if message and details and details != message:
        message = f"{message} ({details})"
    if message and isinstance(code, int):
        message = f"{message} [code {code}]"
    retryable = True if isinstance(code, int) and code in RETRYABLE_CODES else None
    return message, retryable


def _is_notification(payload: Any) -> bool:
    """A WhatsApp Business Account notification (``object`` may be absent in hand-made ones)."""
    return (
        isinstance(payload, dict)
        and payload.get("object", OBJECT) == OBJECT
        and isinstance(payload.get("entry"), list)
    )


def _values(payload: Any) -> list[dict[str, Any]]:
    """The ``value`` of every change of every entry."""
    if not _is_notification(payload):
        return []
    return [
        change["value"]
        for entry in payload["entry"]
        for change in common.as_list(common.as_dict(entry).get("changes"))
        if isinstance(change, dict) and isinstance(change.get("value"), dict)
    ]


def _is_message(msg: Any) -> bool:
    return isinstance(msg, dict) and bool(common.as_str(msg.get("from")))


def _message(msg: dict[str, Any], value: dict[str, Any]) -> InboundMessage:
    sender = common.as_str(msg.get("from")) or ""
    raw_kind = msg.get("type")
    kind = raw_kind if isinstance(raw_kind, str) else "unknown"
    text, attachments, extra = _content(kind, msg)
    meta: dict[str, Any] = {
        "whatsapp_message_id": common.as_str(msg.get("id")),
        "whatsapp_type": kind,
        "timestamp": msg.get("timestamp"),
        "phone_number_id": common.as_dict(value.get("metadata")).get("phone_number_id"),
    }
    name = _profile_name(value, sender)
    if name:
        meta["profile_name"] = name
    context = common.as_dict(msg.get("context"))
    if common.as_str(context.get("id")):
        meta["reply_to"] = context["id"]
    meta.update(extra)
    return InboundMessage(
        sender=sender, text=text, type="message", metadata=meta, attachments=attachments,
        external_id=common.as_str(msg.get("id")),
    )


def _content(kind: str, msg: dict[str, Any]) -> tuple[str | None, list[Any], dict[str, Any]]:
    """(text, attachments, extra metadata) for one message of any type."""
    part = common.as_dict(msg.get(kind))
    if kind == "text":
        return common.as_str(part.get("body")) or "", [], {}
    if kind in MEDIA_TYPES:
        media = {"type": kind, **{k: part[k] for k in MEDIA_FIELDS if k in part}}
        if "id" in media:
            media["media_id"] = media.pop("id")
        return common.as_str(part.get("caption")), [media], {}
    if kind == "location":
        loc: dict[str, Any] = {"type": "location", **{
            k: part[k] for k in ("latitude", "longitude", "name", "address", "url") if k in part}}
        return common.as_str(part.get("name")) or common.as_str(part.get("address")), [loc], {}
    if kind == "contacts":
        return None, [{"type": "contacts", "contacts": common.as_list(msg.get("contacts"))}], {}
    if kind == "interactive":
        raw_type = part.get("type")
        reply_type = raw_type if isinstance(raw_type, str) else "unknown"
        reply = common.as_dict(part.get(reply_type))
        att: dict[str, Any] = {"type": "interactive", "reply_type": reply_type, **reply}
        return common.as_str(reply.get("title")), [att], {}
    if kind == "button":
        att = {"type": "button", **{k: part[k] for k in ("text", "payload") if k in part}}
        return common.as_str(part.get("text")), [att], {}
    if kind == "reaction":
        att = {"type": "reaction", "message_id": part.get("message_id"), "emoji": part.get("emoji")}
        return common.as_str(part.get("emoji")), [att], {"reaction_to": part.get("message_id")}
    # order, system, referral-only, unsupported, and types Meta adds later: kept, not dropped.
    att = {"type": kind}
    if part:
        att["data"] = part
    if isinstance(msg.get("errors"), list):
        att["errors"] = msg["errors"]
    return None, [att], {}


def _profile_name(value: dict[str, Any], wa_id: str) -> str | None:
    for contact in common.as_list(value.get("contacts")):
        contact = common.as_dict(contact)
        if contact.get("wa_id") == wa_id:
            return common.as_str(common.as_dict(contact.get("profile")).get("name"))
    return None


def _status(s: dict[str, Any]) -> StatusUpdate:
    status = s["status"] if s["status"] in STATUSES else "sent"
    error = None
    errors = common.as_list(s.get("errors"))
    if errors:
        first = common.as_dict(errors[0])
        error = common.as_str(first.get("title")) or common.as_str(first.get("message"))
        if error is None and first:
            error = f"error {first.get('code')}"
        details = common.as_str(common.as_dict(first.get("error_data")).get("details"))
        if error and details and details != error:
            error = f"{error}: {details}"
    return StatusUpdate(
        status=status,
        provider_message_id=common.as_str(s.get("id")),
        timestamp=s.get("timestamp"),
        recipient_id=common.as_str(s.get("recipient_id")),
        error=error,
    )

"""WhatsApp through Infobip.

Outbound: ``POST {base_url}/whatsapp/1/message/text`` with ``Authorization: App <api_key>``.
Inbound: Infobip posts ``{"results": [...]}`` to the channel's inbound URL, both for incoming
messages and for delivery and seen reports; every result is used. Infobip does not sign its
webhooks by default; its notification profiles can send HTTP Basic credentials, which the
channel checks when ``webhook_username``/``webhook_password`` are configured.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

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
from .media import MB, MediaSpec, choose
from .signing import header_bytes

REQUIRED = ("base_url", "api_key", "sender")
# Optional HTTP Basic credentials Infobip's notification profile sends with every webhook.
BASIC_FIELDS = ("webhook_username", "webhook_password")
LABEL = "Infobip API"
# Reference §10.5: Infobip status groups onto converger's delivery states.
STATUS_GROUPS = {
    "DELIVERED": "delivered",
    "SEEN": "read",
    "REJECTED": "failed",
    "UNDELIVERABLE": "failed",
    "PENDING": "sent",
}
# What Infobip's WhatsApp media endpoints accept (``/whatsapp/1/message/<type>``, by URL).
SENDS: dict[str, MediaSpec] = {
    "image": MediaSpec(max_bytes=5 * MB, content_types=frozenset({"image/jpeg", "image/png"})),
    "document": MediaSpec(max_bytes=100 * MB),
    "audio": MediaSpec(max_bytes=16 * MB, caption=False, content_types=frozenset({
        "audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"})),
    "video": MediaSpec(max_bytes=16 * MB, content_types=frozenset({"video/mp4", "video/3gpp"})),
    "sticker": MediaSpec(max_bytes=100 * 1024, caption=False,
                         content_types=frozenset({"image/webp"})),
}
MEDIA_TYPES = ("IMAGE", "VIDEO", "AUDIO", "VOICE", "DOCUMENT", "STICKER")


class WhatsAppInfobipAdapter(BaseAdapter):
    type: ClassVar[str] = "whatsapp_infobip"
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key", "webhook_password")
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY | {"template"}
    media: ClassVar[Mapping[str, MediaSpec]] = SENDS
    actions: ClassVar[tuple[str, ...]] = ("sync_templates",)

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, REQUIRED, "whatsapp_infobip"):
            return error
        if error := common.header_unsafe(config, ("api_key",), "whatsapp_infobip"):
            return error
        if error := common.bad_url(config, "base_url", "whatsapp_infobip"):
            return error
        basic = [config.get(k) for k in BASIC_FIELDS]
        if any(v is not None for v in basic) and not all(isinstance(v, str) and v for v in basic):
            return ("whatsapp_infobip config 'webhook_username' and 'webhook_password' must be "
                    "given together, as non-empty strings")
        if isinstance(basic[0], str) and ":" in basic[0]:
            return "whatsapp_infobip config 'webhook_username' must not contain ':'"
        return common.validate_common(config, "whatsapp_infobip")

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        """A message to another of the account's senders (``to``) is not this channel's."""
        to = message.metadata.get("to")
        if not isinstance(to, str | int) or isinstance(to, bool):
            return True
        return _number(to) == _number(channel.config.get("sender"))

    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """``Authorization: Basic`` with the channel's webhook credentials (constant-time
        compare); None when the channel has none configured (nothing to check)."""
        user, password = (channel.config.get(k) for k in BASIC_FIELDS)
        if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
            return None
        given = common.header(headers, "Authorization") or ""
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return hmac.compare_digest(header_bytes(given.strip()), expected.encode())

    # -- outbound -----------------------------------------------------------------------
    def text_url(self, config: Mapping[str, Any]) -> str:
        return config["base_url"].rstrip("/") + "/whatsapp/1/message/text"

    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        """Send the activity (text, one media file with its caption, or a template); any 2xx
        is success, keeping Infobip's message id. What Infobip would refuse fails at once."""
        to = common.recipient(activity)
        if to is None:
            return common.no_recipient("Infobip")
        config = channel.config
        request = _request_of(activity, config["sender"], to)
        if isinstance(request, str):
            return DeliveryResult(ok=False, retryable=False, error=request)
        path, body = request
        headers = {
            "Authorization": f"App {config['api_key']}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        answer = await common.post_json(
            session, config["base_url"].rstrip("/") + path, headers, body,
            common.timeout_of(config)
        )
        if isinstance(answer, str):
            return common.unreachable(LABEL, answer)
        status, resp_headers, raw = answer
        if not 200 <= status < 300:
            return common.failure(LABEL, status, resp_headers, raw, _describe_error,
                                  auth_statuses=(401,))
        message_id = _sent_message_id(common.decode_json(raw))
        meta: dict[str, Any] = {"recipient": to}
        if message_id:
            meta["infobip_message_id"] = message_id
        return DeliveryResult(ok=True, provider_message_id=message_id, metadata=meta)

    # -- management ---------------------------------------------------------------------
    async def run_action(
        self, session: Any, channel: ChannelInfo, name: str, inbound_url: str
    ) -> ActionResult:
        """``sync_templates``: the sender's templates (``GET /whatsapp/2/senders/{sender}/
        templates``) in the Cloud API's shape, as ``data.templates``."""
        if name != "sync_templates":
            return await super().run_action(session, channel, name, inbound_url)
        config = channel.config
        url = (config["base_url"].rstrip("/") + "/whatsapp/2/senders/"
               + quote(str(config["sender"]), safe="") + "/templates")
        headers = {"Authorization": f"App {config['api_key']}", "Accept": "application/json"}
        answer = await common.get_capped(session, url, headers, 4 * MB, common.timeout_of(config))
        if answer is None or isinstance(answer, str):
            return ActionResult(ok=False, error=f"{LABEL} request failed: "
                                f"{answer or 'answer too large'}")
        status, _, raw = answer
        body = common.decode_json(raw)
        if not 200 <= status < 300:
            message, _ = _describe_error(body)
            return ActionResult(ok=False, error=f"{LABEL} returned {status}: "
                                f"{message or '(no error message)'}")
        found = [t for t in (_template(x) for x in
                             common.as_list(common.as_dict(body).get("templates"))) if t]
        return ActionResult(ok=True, data={"templates": found, "count": len(found)})

    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        """The file at the attachment's ``url`` (Infobip's ``/whatsapp/1/senders/…/media/…``),
        with the API key; only on the channel's own ``base_url``, so the key never goes
        elsewhere."""
        url = common.as_str(attachment.get("url"))
        base = channel.config["base_url"].rstrip("/") + "/"
        if not url or not url.startswith(base):
            return MediaError(kind="unsupported",
                              error="the attachment has no Infobip media URL on the channel's "
                                    "base_url")
        headers = {"Authorization": f"App {channel.config['api_key']}"}
        got = await common.download(session, url, headers, limit,
                                    common.timeout_of(channel.config), LABEL)
        if isinstance(got, MediaError):
            return got
        status, resp_headers, body = got
        if status != 200:
            return MediaError(kind="expired" if status in (401, 403, 404, 410) else "provider",
                              error=f"{LABEL} download returned {status}")
        ctype = resp_headers.get("Content-Type") or "application/octet-stream"
        name = url.rstrip("/").rsplit("/", 1)[-1] or "file"
        return MediaFile(body=body, content_type=ctype.split(";")[0].strip(), name=name)

    # -- inbound ------------------------------------------------------------------------
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """Every incoming message in ``results``; non-text content as attachments."""
        out = [_message(r) for r in _results(payload) if _is_message(r)]
        if not out:
            if not (isinstance(payload, dict) and isinstance(payload.get("results"), list)):
                raise InboundError(
                    "unable to parse Infobip webhook payload: expected an object with a "
                    "\"results\" list"
                )
            raise InboundError(
                "unable to parse Infobip webhook payload: no incoming messages in 'results'"
            )
        return out

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        """Every delivery or seen report in ``results``, or None when there are none."""
        updates = [_status(r) for r in _results(payload) if _is_report(r)]
        return updates or None


def _template(value: Any) -> dict[str, Any] | None:
    """An Infobip template (``structure.header/body/footer/buttons``) in the Cloud API's
    ``message_templates`` shape, so one check serves both providers."""
    t = common.as_dict(value)
    name, language = common.as_str(t.get("name")), common.as_str(t.get("language"))
    if not name or not language:
        return None
    structure = common.as_dict(t.get("structure"))
    components: list[dict[str, Any]] = []
    header = common.as_dict(structure.get("header"))
    if header:
        fmt = common.as_str(header.get("format")) or "TEXT"
        comp: dict[str, Any] = {"type": "HEADER", "format": fmt.upper()}
        if common.as_str(header.get("text")):
            comp["text"] = header["text"]
        components.append(comp)
    body = structure.get("body")
    text = common.as_str(common.as_dict(body).get("text")) or common.as_str(body)
    if text:
        components.append({"type": "BODY", "text": text})
    footer = common.as_dict(structure.get("footer"))
    if common.as_str(footer.get("text")):
        components.append({"type": "FOOTER", "text": footer["text"]})
    return {"name": name, "language": language, "status": common.as_str(t.get("status")) or "",
            "category": common.as_str(t.get("category")), "components": components}


def _request_of(activity: OutboundActivity, sender: str, to: str
                ) -> tuple[str, dict[str, Any]] | str:
    """(path, JSON body) of the Infobip request that sends ``activity``, or why none can."""
    if activity.type == "template":
        use = templates.template_of(activity)
        if isinstance(use, str):
            return use
        data: dict[str, Any] = {"body": {"placeholders": [
            str(p.get("text", "")) for p in templates.parameters(use, "body")]}}
        header = templates.parameters(use, "header")
        if header:
            h = header[0]
            kind = str(h.get("type", "text")).lower()
            if kind == "text":
                data["header"] = {"type": "TEXT", "placeholder": str(h.get("text", ""))}
            else:
                found = h.get(kind)
                media: dict[str, Any] = found if isinstance(found, dict) else {}
                if not media.get("link"):
                    return "Infobip template headers need a media link (no media ids)"
                data["header"] = {"type": kind.upper(), "mediaUrl": media["link"]}
        content = {"templateName": use.name, "templateData": data, "language": use.language}
        return "/whatsapp/1/message/template", {
            "messages": [{"from": sender, "to": to, "content": content}]}
    chosen = choose(SENDS, activity.attachments, activity.text, "Infobip")
    if isinstance(chosen, str):
        return chosen
    if chosen is None:
        if isinstance(activity.text, str) and activity.text.strip():
            return "/whatsapp/1/message/text", {"from": sender, "to": to,
                                                "content": {"text": activity.text}}
        return "Infobip delivery needs a non-empty text or one attachment"
    if chosen.link is None:
        return "Infobip sends media by URL only: the attachment needs a contentUrl, not a media_id"
    part: dict[str, Any] = {"mediaUrl": chosen.link}
    if activity.text and activity.text.strip():
        part["caption"] = activity.text
    if chosen.kind == "document" and chosen.name:
        part["filename"] = chosen.name
    return f"/whatsapp/1/message/{chosen.kind}", {"from": sender, "to": to, "content": part}


def _number(value: Any) -> str:
    """A phone number compared as digits only (``+44 7860…`` and ``447860…`` are one)."""
    return "".join(ch for ch in str(value) if ch.isdigit())


def _describe_error(body: Any) -> tuple[str | None, bool | None]:
    """Infobip's two error shapes: ``{"requestError": {"serviceException": {"messageId",
    "text"}}}`` and the newer ``{"errorCode", "description", "violations": [...]}``."""
    data = common.as_dict(body)
    exc = common.as_dict(common.as_dict(data.get("requestError")).get("serviceException"))
    text = common.as_str(exc.get("text"))
    if text:
        fields = common.as_dict(exc.get("validationErrors"))
        if fields:
            text += " (" + "; ".join(f"{k}: {', '.join(map(str, common.as_list(v)))}"
                                      for k, v in fields.items()) + ")"
        code = common.as_str(exc.get("messageId"))
        return (f"{text} [{code}]" if code else text), None
    description = common.as_str(data.get("description"))
    if description:
        violations = [
            f"{v.get('property')}: {v.get('violation')}"
            for v in common.as_list(data.get("violations")) if isinstance(v, dict)
        ]
        if violations:
            description += " (" + "; ".join(violations) + ")"
        code = common.as_str(data.get("errorCode"))
        return (f"{description} [{code}]" if code else description), None
    return None, None


def _sent_message_id(body: Any) -> str | None:
    """``messageId`` of the single-message answer, or of ``messages[0]`` in the bulk shape."""
    data = common.as_dict(body)
    first = common.as_dict((common.as_list(data.get("messages")) or [None])[0])
    return common.as_str(first.get("messageId")) or common.as_str(data.get("messageId"))


def _results(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        return []
    return [r for r in common.as_list(payload.get("results")) if isinstance(r, dict)]


def _is_message(result: dict[str, Any]) -> bool:
    return bool(common.as_str(result.get("from"))) and isinstance(result.get("message"), dict)


def _is_report(result: dict[str, Any]) -> bool:
    """A delivery report carries a status group; a seen report a ``seenAt`` (older seen
    reports have no status object at all)."""
    if "message" in result or not common.as_str(result.get("messageId")):
        return False
    group = common.as_dict(result.get("status")).get("groupName")
    return isinstance(group, str) or bool(common.as_str(result.get("seenAt")))


def _message(result: dict[str, Any]) -> InboundMessage:
    message = result["message"]
    kind = message.get("type") if isinstance(message.get("type"), str) else "UNKNOWN"
    text, attachments = _content(kind.upper(), message)
    if text is None and kind.upper() == "TEXT":
        text = common.as_str(result.get("text")) or ""
    meta: dict[str, Any] = {
        "infobip_message_id": common.as_str(result.get("messageId")),
        "whatsapp_type": kind.lower(),
        "received_at": result.get("receivedAt"),
        "to": result.get("to"),
    }
    name = common.as_str(common.as_dict(result.get("contact")).get("name"))
    if name:
        meta["profile_name"] = name
    context = common.as_dict(message.get("context"))
    if common.as_str(context.get("id")):
        meta["reply_to"] = context["id"]
    if result.get("callbackData") is not None:
        meta["callback_data"] = result["callbackData"]
    return InboundMessage(
        sender=common.as_str(result.get("from")) or "", text=text, type="message", metadata=meta,
        attachments=attachments, external_id=common.as_str(result.get("messageId")),
    )


def _content(kind: str, message: dict[str, Any]) -> tuple[str | None, list[Any]]:
    """(text, attachments) for one incoming message of any type."""
    def pick(*keys: str) -> dict[str, Any]:
        return {k: message[k] for k in keys if k in message and message[k] is not None}

    if kind == "TEXT":
        return common.as_str(message.get("text")) or "", []
    if kind in MEDIA_TYPES:
        return common.as_str(message.get("caption")), [{"type": kind.lower(), **pick("url", "caption")}]
    if kind == "LOCATION":
        loc = {"type": "location", **pick("latitude", "longitude", "name", "address", "url")}
        return common.as_str(message.get("name")) or common.as_str(message.get("address")), [loc]
    if kind in ("CONTACT", "CONTACTS"):
        return None, [{"type": "contacts", "contacts": common.as_list(message.get("contacts"))}]
    if kind == "BUTTON":
        return common.as_str(message.get("text")), [{"type": "button", **pick("text", "payload")}]
    if kind.startswith("INTERACTIVE_"):
        reply = {"type": "interactive", "reply_type": kind.lower(),
                 **pick("id", "title", "description")}
        return common.as_str(message.get("title")), [reply]
    # ORDER, UNSUPPORTED and whatever Infobip adds later: kept, not dropped.
    data = {k: v for k, v in message.items() if k not in ("type", "context")}
    att: dict[str, Any] = {"type": kind.lower()}
    if data:
        att["data"] = data
    return common.as_str(message.get("text")), [att]


def _status(result: dict[str, Any]) -> StatusUpdate:
    group = common.as_dict(result.get("status")).get("groupName")
    if not isinstance(group, str):
        group = "SEEN"  # only a seenAt: an old-style seen report
    status = STATUS_GROUPS.get(group.upper(), "sent")
    if status == "read":
        timestamp = result.get("seenAt") or result.get("doneAt") or result.get("sentAt")
    else:
        timestamp = result.get("doneAt") or result.get("sentAt")
    error = common.as_dict(result.get("error"))
    # The sample reports carry {"groupName": "OK", "name": "NO_ERROR"}: that is not an error.
    is_error = error and error.get("groupId") not in (0, None) and error.get("name") != "NO_ERROR"
    detail = None
    if is_error:
        detail = common.as_str(error.get("description")) or common.as_str(error.get("name"))
    if status == "failed" and not detail:
        # REJECTED reports say why in the status, their error being NO_ERROR.
        detail = common.as_str(common.as_dict(result.get("status")).get("description"))
    return StatusUpdate(
        status=status,
        provider_message_id=common.as_str(result.get("messageId")),
        timestamp=timestamp,
        recipient_id=common.as_str(result.get("to")),
        error=detail,
    )

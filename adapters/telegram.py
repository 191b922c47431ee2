"""Telegram through the Bot API.

Outbound: ``POST {api_base_url}/bot<bot_token>/sendMessage`` (``sendPhoto``, ``sendDocument``…
for attachments) to the conversation's chat. Inbound: Telegram posts one ``Update`` per request
to the channel's inbound URL, with the channel's ``secret_token`` in
``X-Telegram-Bot-Api-Secret-Token``; messages, edited messages, channel posts and callback
queries become activities threaded by chat, other update types are acknowledged and ignored.
Management actions register the webhook (``setWebhook``) and show ``getWebhookInfo``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from . import common
from .base import (
    MESSAGES_ONLY,
    ActionResult,
    BaseAdapter,
    ChannelInfo,
    ConfigField,
    DeliveryResult,
    InboundError,
    InboundIgnored,
    InboundMessage,
    MediaError,
    MediaFile,
    OutboundActivity,
    capped_retry_after,
)
from .signing import header_bytes
from .webhook import valid_http_url

REQUIRED = ("bot_token", "secret_token")
DEFAULT_BASE_URL = "https://api.telegram.org"
LABEL = "Telegram Bot API"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# BotFather's tokens are "<bot id>:<35 characters>"; the token is part of every URL path.
TOKEN_RE = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,200}")
# setWebhook's rule for secret_token.
SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
CHAT_RE = re.compile(r"-?\d{1,20}|@[A-Za-z0-9_]{4,64}")
# Update kinds made into activities; every other kind is acknowledged and ignored.
MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")
UPDATE_KINDS = (*MESSAGE_KINDS, "callback_query")
FILE_KINDS = ("document", "audio", "voice", "video", "video_note", "animation", "sticker")
FILE_FIELDS = ("file_id", "file_unique_id", "file_name", "mime_type", "file_size", "width",
               "height", "duration", "emoji")
# Bot API limits: getFile downloads files up to 20 MB; files sent by URL up to 5 MB for
# photos and 20 MB for other types (core.telegram.org/bots/api#sending-files).
DOWNLOAD_LIMIT = 20 * 1024 * 1024
URL_PHOTO_LIMIT = 5 * 1024 * 1024
URL_FILE_LIMIT = 20 * 1024 * 1024
CAPTION_LIMIT = 1024
# Attachment type → (method, field) for outbound media.
SEND_MEDIA = {
    "image": ("sendPhoto", "photo"), "photo": ("sendPhoto", "photo"),
    "video": ("sendVideo", "video"), "audio": ("sendAudio", "audio"),
    "voice": ("sendVoice", "voice"), "animation": ("sendAnimation", "animation"),
    "sticker": ("sendSticker", "sticker"),
}
ACTIONS = ("set_webhook", "webhook_info", "delete_webhook")


class TelegramAdapter(BaseAdapter):
    type: ClassVar[str] = "telegram"
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token", "secret_token")
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY  # text and media
    actions: ClassVar[tuple[str, ...]] = ACTIONS
    config_fields: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("bot_token", "Bot token",
                    "From @BotFather (/newbot or /token), e.g. 123456:ABC-DEF…", True),
        ConfigField("secret_token", "Webhook secret token",
                    "Any 1-256 characters of A-Z a-z 0-9 _ -; Telegram sends it with every "
                    "update (set by the channel's “Register webhook” action)", True),
        ConfigField("default_chat_id", "Default chat id",
                    "Where activities of conversations that did not begin on this bot go "
                    "(routed ones), e.g. -1001234567890 or @channelname"),
        ConfigField("api_base_url", "API base URL", f"Default {DEFAULT_BASE_URL}"),
    )

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, REQUIRED, "telegram"):
            return error
        if not TOKEN_RE.fullmatch(config["bot_token"]):
            return "telegram config 'bot_token' must look like '123456789:AAE…' (from @BotFather)"
        if not SECRET_RE.fullmatch(config["secret_token"]):
            return ("telegram config 'secret_token' must be 1-256 characters of A-Z, a-z, 0-9, "
                    "'_' and '-'")
        if error := common.bad_url(config, "api_base_url", "telegram"):
            return error
        chat = config.get("default_chat_id")
        if chat is not None and _chat(chat) is None:
            return "telegram config 'default_chat_id' must be a chat id or an @channelname"
        return common.validate_common(config, "telegram")

    def method_url(self, config: Mapping[str, Any], method: str) -> str:
        base = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/bot{config['bot_token']}/{method}"

    # -- outbound -----------------------------------------------------------------------
    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        """The activity's text (``sendMessage``) and each attachment (``sendPhoto``,
        ``sendDocument``…, the text as the caption of a single one) to the chat."""
        chat = _target_chat(channel.config, activity)
        if chat is None:
            return DeliveryResult(ok=False, retryable=False, error=(
                "no Telegram chat to send to: the conversation did not begin on this bot, and "
                "neither metadata 'telegram_chat_id' nor config 'default_chat_id' is set"))
        plan = _plan(chat, activity)
        if isinstance(plan, DeliveryResult):
            return plan
        result = DeliveryResult(ok=False, error="nothing sent")
        ids: list[str] = []
        for method, body in plan:
            result = await self._call(session, channel.config, method, body)
            if not result.ok:
                return result
            if result.provider_message_id:
                ids.append(result.provider_message_id)
        meta: dict[str, Any] = {"chat_id": chat}
        if ids:
            meta["telegram_message_ids"] = ids
        return DeliveryResult(ok=True, provider_message_id=ids[-1] if ids else None, metadata=meta)

    async def _post(self, session: Any, config: Mapping[str, Any], method: str,
                    body: dict[str, Any]) -> tuple[int, Mapping[str, str], bytes] | str:
        """One Bot API method: the answer, or why none came."""
        return await common.post_json(
            session, self.method_url(config, method), {"Content-Type": "application/json"},
            body, common.timeout_of(config))

    async def _call(self, session: Any, config: Mapping[str, Any], method: str,
                    body: dict[str, Any]) -> DeliveryResult:
        answer = await self._post(session, config, method, body)
        if isinstance(answer, str):
            return common.unreachable(LABEL, answer)
        status, headers, raw = answer
        data = common.as_dict(common.decode_json(raw))
        if status != 200 or data.get("ok") is False:
            return _failure(status if status != 200 else _int(data.get("error_code")) or 400,
                            headers, raw, data)
        result = common.as_dict(data.get("result"))
        return DeliveryResult(ok=True, provider_message_id=common.as_str(result.get("message_id")))

    # -- inbound ------------------------------------------------------------------------
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """One ``Update``: a message of any kind, or a callback query; other kinds ignored."""
        if not isinstance(payload, dict) or _int(payload.get("update_id")) is None:
            raise InboundError("unable to parse Telegram update: expected an object with an "
                               "integer \"update_id\"")
        kind = next((k for k in payload if k != "update_id" and isinstance(payload[k], dict)), None)
        if kind is None:
            raise InboundError("unable to parse Telegram update: it holds no update object")
        if kind not in UPDATE_KINDS:
            raise InboundIgnored(f"Telegram update of type {kind!r} ignored")
        update_id = str(payload["update_id"])
        if kind == "callback_query":
            return [_callback(update_id, payload[kind])]
        return [_message(update_id, kind, payload[kind])]

    # -- verification -------------------------------------------------------------------
    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """``X-Telegram-Bot-Api-Secret-Token`` equals the channel's ``secret_token``
        (constant time). Telegram signs nothing else; the token is required."""
        expected = channel.config.get("secret_token")
        if not isinstance(expected, str) or not expected:
            return False
        given = common.header(headers, SECRET_HEADER)
        if given is None:
            return False
        return hmac.compare_digest(header_bytes(given), expected.encode())

    # -- management ---------------------------------------------------------------------
    async def run_action(
        self, session: Any, channel: ChannelInfo, name: str, inbound_url: str
    ) -> ActionResult:
        """``set_webhook`` (the inbound URL with the secret token), ``webhook_info``,
        ``delete_webhook``: the Bot API's answer, or its error."""
        config = channel.config
        if name == "set_webhook":
            method, body = "setWebhook", {"url": inbound_url, "secret_token": config["secret_token"],
                                          "allowed_updates": list(UPDATE_KINDS)}
        elif name == "webhook_info":
            method, body = "getWebhookInfo", {}
        elif name == "delete_webhook":
            method, body = "deleteWebhook", {}
        else:
            return await super().run_action(session, channel, name, inbound_url)
        answer = await self._post(session, config, method, body)
        if isinstance(answer, str):
            return ActionResult(ok=False, error=f"{LABEL} request failed: {answer}")
        status, _headers, raw = answer
        data = common.as_dict(common.decode_json(raw))
        if status != 200 or data.get("ok") is not True:
            return ActionResult(ok=False, error=_refusal(status, data, raw))
        result = data.get("result")
        shown = dict(result) if isinstance(result, dict) else {"result": result}
        if name == "set_webhook":
            shown["url"] = inbound_url
        return ActionResult(ok=True, data=shown)


    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        """``getFile`` for the attachment's ``file_id``, then the file itself from
        ``{api_base_url}/file/bot<token>/<file_path>`` (the Bot API serves up to 20 MB)."""
        file_id = common.as_str(attachment.get("file_id"))
        if not file_id:
            return MediaError(kind="unsupported", error="the attachment has no Telegram file_id")
        size = _int(attachment.get("file_size"))
        cap = min(limit, DOWNLOAD_LIMIT)
        if attachment.get("too_large") is True or (size is not None and size > cap):
            return MediaError(kind="too_large", error=(
                f"the file is over the {cap // (1024 * 1024)} MB the Bot API and this server "
                "allow to download"))
        config = channel.config
        answer = await self._post(session, config, "getFile", {"file_id": file_id})
        if isinstance(answer, str):
            return MediaError(kind="provider", error=f"{LABEL} request failed: {answer}")
        status, _headers, raw = answer
        data = common.as_dict(common.decode_json(raw))
        path = common.as_str(common.as_dict(data.get("result")).get("file_path"))
        if status != 200 or not path:
            return MediaError(kind="provider", error=_refusal(status, data, raw))
        base = (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
        got = await common.download(session, f"{base}/file/bot{config['bot_token']}/{path}",
                                    {}, cap, common.timeout_of(config), LABEL)
        if isinstance(got, MediaError):
            return got
        status, headers, body = got
        if status != 200:
            return MediaError(kind="provider", error=f"{LABEL} download returned {status}")
        kind = attachment.get("type")
        ctype = (common.as_str(attachment.get("mime_type"))
                 or ("image/jpeg" if kind == "image" else None)
                 or headers.get("Content-Type") or "application/octet-stream")
        name = common.as_str(attachment.get("file_name")) or path.rsplit("/", 1)[-1]
        return MediaFile(body=body, content_type=ctype, name=name)


# -- outbound helpers ---------------------------------------------------------------------------

def _chat(value: Any) -> str | None:
    text = common.as_str(value)
    return text if text is not None and CHAT_RE.fullmatch(text) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _target_chat(config: Mapping[str, Any], activity: OutboundActivity) -> str | None:
    """``metadata.telegram_chat_id``, else the chat the conversation began in, else the
    channel's ``default_chat_id``."""
    for value in (activity.metadata.get("telegram_chat_id"), activity.thread_sender,
                  config.get("default_chat_id")):
        chat = _chat(value)
        if chat is not None:
            return chat
    return None


def _plan(chat: str, activity: OutboundActivity) -> list[tuple[str, dict[str, Any]]] | DeliveryResult:
    """The Bot API calls that send the activity, or a final failure."""
    text = activity.text if isinstance(activity.text, str) and activity.text.strip() else None
    media = [a for a in activity.attachments if isinstance(a, dict)]
    base: dict[str, Any] = {"chat_id": chat}
    topic = _int(activity.metadata.get("message_thread_id"))
    if topic is not None:
        base["message_thread_id"] = topic
    reply = _int(activity.metadata.get("reply_to_message_id"))
    if reply is not None:
        base["reply_parameters"] = {"message_id": reply, "allow_sending_without_reply": True}
    calls: list[tuple[str, dict[str, Any]]] = []
    caption = text if text is not None and len(media) == 1 and len(text) <= CAPTION_LIMIT else None
    if text is not None and caption is None:
        calls.append(("sendMessage", {**base, "text": text}))
    for att in media:
        call = _media_call(att)
        if isinstance(call, DeliveryResult):
            return call
        method, field, source = call
        body = {**base, field: source}
        if caption is not None:
            body["caption"] = caption
        calls.append((method, body))
    if not calls:
        return DeliveryResult(ok=False, retryable=False,
                              error="Telegram delivery needs a text or an attachment")
    return calls


def _media_call(att: dict[str, Any]) -> tuple[str, str, str] | DeliveryResult:
    """(method, field, file id or URL) for one attachment, or why it cannot be sent."""
    kind = att["type"] if isinstance(att.get("type"), str) else "document"
    method, field = SEND_MEDIA.get(kind, ("sendDocument", "document"))
    file_id = common.as_str(att.get("file_id"))
    if file_id:
        return method, field, file_id
    url = att.get("url")
    if not isinstance(url, str) or not valid_http_url(url):
        return DeliveryResult(ok=False, retryable=False, error=(
            f"Telegram cannot send a {kind} attachment without a 'file_id' or an absolute "
            "http(s) 'url'"))
    size = _int(att.get("size")) or _int(att.get("file_size"))
    limit = URL_PHOTO_LIMIT if method == "sendPhoto" else URL_FILE_LIMIT
    if size is not None and size > limit:
        return DeliveryResult(ok=False, retryable=False, error=(
            f"attachment of {size} bytes is over Telegram's {limit // (1024 * 1024)} MB limit "
            f"for a {field} sent by URL"))
    return method, field, url


def _describe_error(body: Any) -> tuple[str | None, bool | None]:
    """``{"ok": false, "error_code", "description", "parameters": {"retry_after"}}``."""
    data = common.as_dict(body)
    description = common.as_str(data.get("description"))
    code = _int(data.get("error_code"))
    if description and code is not None:
        description = f"{description} [error_code {code}]"
    return description, None


def _refusal(status: int, data: dict[str, Any], raw: bytes) -> str:
    """The Bot API's refusal of a management or file call, as shown to the operator."""
    message, _ = _describe_error(data)
    return f"{LABEL} returned {status}: {message or common.clip(raw) or '(empty body)'}"


def _failure(status: int, headers: Mapping[str, str], raw: bytes,
             data: dict[str, Any]) -> DeliveryResult:
    # 401 "Unauthorized": the token was revoked or is wrong.
    result = common.failure(LABEL, status, headers, raw, _describe_error, auth_statuses=(401,))
    wait = common.as_dict(data.get("parameters")).get("retry_after")
    if result.retryable and isinstance(wait, int | float) and not isinstance(wait, bool):
        capped = capped_retry_after(float(wait))
        if capped is not None and (result.retry_after is None or capped > result.retry_after):
            result.retry_after = capped
    return result


# -- inbound helpers ----------------------------------------------------------------------------

def _name(user: dict[str, Any]) -> str | None:
    parts = [common.as_str(user.get(k)) for k in ("first_name", "last_name")]
    name = " ".join(p for p in parts if p)
    return name or common.as_str(user.get("title"))


def _message(update_id: str, kind: str, msg: dict[str, Any]) -> InboundMessage:
    chat = common.as_dict(msg.get("chat"))
    user = common.as_dict(msg.get("from")) or common.as_dict(msg.get("sender_chat")) or chat
    chat_id = common.as_str(chat.get("id"))
    sender = common.as_str(user.get("id")) or chat_id or "telegram"
    text, attachments = _content(msg)
    meta: dict[str, Any] = {
        "telegram_update_id": update_id, "update_type": kind,
        "telegram_message_id": _int(msg.get("message_id")), "chat_id": chat_id,
        "chat_type": common.as_str(chat.get("type")), "date": _int(msg.get("date")),
    }
    if kind.startswith("edited_"):
        meta["edited"] = True
        meta["edit_date"] = _int(msg.get("edit_date"))
    for key, value in (("profile_name", _name(user)), ("username", common.as_str(user.get("username"))),
                       ("chat_title", common.as_str(chat.get("title")))):
        if value:
            meta[key] = value
    reply = common.as_dict(msg.get("reply_to_message"))
    if _int(reply.get("message_id")) is not None:
        meta["reply_to"] = reply["message_id"]
    if _int(msg.get("message_thread_id")) is not None:
        meta["message_thread_id"] = msg["message_thread_id"]
    return InboundMessage(sender=sender, text=text, metadata=meta, attachments=attachments,
                          external_id=update_id, thread_key=chat_id)


def _file(kind: str, part: dict[str, Any]) -> dict[str, Any]:
    att: dict[str, Any] = {"type": kind, **{k: part[k] for k in FILE_FIELDS if k in part
                                             and isinstance(part[k], str | int)
                                             and not isinstance(part[k], bool)}}
    size = _int(part.get("file_size"))
    if size is not None and size > DOWNLOAD_LIMIT:
        att["too_large"] = True  # the Bot API's getFile refuses files over 20 MB
    return att


def _content(msg: dict[str, Any]) -> tuple[str | None, list[Any]]:
    """(text, attachments) of one message: text or caption, and every file, location,
    venue, contact or poll as a typed attachment."""
    text = common.as_str(msg.get("text")) or common.as_str(msg.get("caption"))
    attachments: list[Any] = []
    sizes = [p for p in common.as_list(msg.get("photo")) if isinstance(p, dict)]
    if sizes:  # the same photo in several sizes, smallest first: keep the largest
        attachments.append(_file("image", sizes[-1]))
    for kind in FILE_KINDS:
        part = msg.get(kind)
        if isinstance(part, dict):
            attachments.append(_file(kind, part))
    location = common.as_dict(msg.get("location"))
    venue = common.as_dict(msg.get("venue"))
    if venue:
        loc = common.as_dict(venue.get("location"))
        attachments.append({"type": "location", "latitude": loc.get("latitude"),
                            "longitude": loc.get("longitude"), "name": venue.get("title"),
                            "address": venue.get("address")})
    elif location:
        attachments.append({"type": "location", "latitude": location.get("latitude"),
                            "longitude": location.get("longitude")})
    contact = common.as_dict(msg.get("contact"))
    if contact:
        attachments.append({"type": "contact", **{
            k: contact[k] for k in ("phone_number", "first_name", "last_name", "user_id", "vcard")
            if k in contact}})
    poll = common.as_dict(msg.get("poll"))
    if poll:
        attachments.append({"type": "poll", "question": poll.get("question"),
                            "options": common.as_list(poll.get("options"))})
        text = text or common.as_str(poll.get("question"))
    if text is None and not attachments:
        text = ""  # a service message (member joined, pinned…): kept, with its type in metadata
    return text, attachments


def _callback(update_id: str, query: dict[str, Any]) -> InboundMessage:
    """A button press on one of the bot's inline keyboards: its ``data`` is the text."""
    user = common.as_dict(query.get("from"))
    msg = common.as_dict(query.get("message"))
    chat = common.as_dict(msg.get("chat"))
    sender = common.as_str(user.get("id")) or "telegram"
    chat_id = common.as_str(chat.get("id")) or sender
    data = common.as_str(query.get("data"))
    meta: dict[str, Any] = {"telegram_update_id": update_id, "update_type": "callback_query",
                            "callback_query_id": common.as_str(query.get("id")),
                            "chat_id": chat_id}
    if _int(msg.get("message_id")) is not None:
        meta["reply_to"] = msg["message_id"]
    name = _name(user)
    if name:
        meta["profile_name"] = name
    att = {"type": "callback", "data": data, "callback_query_id": meta["callback_query_id"]}
    return InboundMessage(sender=sender, text=data, metadata=meta, attachments=[att],
                          external_id=update_id, thread_key=chat_id)

"""Slack through the Web API (out) and the Events API (in).

Outbound: ``POST {api_base_url}/chat.postMessage`` with the bot token as a Bearer token, into
the Slack thread the conversation lives in (``thread_ts``). Inbound: Slack posts Events API
requests to the channel's inbound URL, signed with ``X-Slack-Signature`` (``v0=`` HMAC-SHA256
of ``v0:<timestamp>:<body>`` keyed by the app's signing secret, 5-minute window); the
``url_verification`` challenge is answered in-band; ``message`` events become activities, one
conversation per Slack thread (per DM channel for direct messages); bots' messages (this app's
own included) and other event types are acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

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
    retry_after,
)
from .signing import header_bytes
from .webhook import valid_http_url

REQUIRED = ("bot_token", "signing_secret")
DEFAULT_BASE_URL = "https://slack.com/api"
LABEL = "Slack API"
TOLERANCE_SECONDS = 300  # Slack's documented replay window
# Printable ASCII without spaces: the token goes into an Authorization header.
TOKEN_RE = re.compile(r"[\x21-\x7e]{1,500}")
CHANNEL_RE = re.compile(r"[A-Z0-9]{2,40}")
TS_RE = re.compile(r"\d{1,12}\.\d{1,9}")
# Message subtypes a person sends; every other subtype (joins, edits, deletions, bots…) is a
# notification about the channel, not a message to the gateway.
PERSON_SUBTYPES = (None, "file_share", "thread_broadcast", "me_message")
# ok:false codes worth a retry; every other one fails the same way again.
RETRYABLE_ERRORS = frozenset({"ratelimited", "rate_limited", "internal_error", "fatal_error",
                              "service_unavailable", "request_timeout"})
# ok:false codes meaning the token no longer works: the channel is unhealthy until fixed.
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                         "token_expired", "no_permission", "org_login_required",
                         "ekm_access_denied", "team_access_not_granted"})
FILE_FIELDS = ("id", "name", "title", "mimetype", "filetype", "size", "url_private",
               "url_private_download", "permalink", "mode")
ACTIONS = ("auth_test",)

# The clock the replay window is checked against (tests replace it).
now: Callable[[], float] = time.time


class SlackAdapter(BaseAdapter):
    type: ClassVar[str] = "slack"
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token", "signing_secret")
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY  # text and media
    actions: ClassVar[tuple[str, ...]] = ACTIONS
    config_fields: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("bot_token", "Bot token",
                    "OAuth & Permissions → Bot User OAuth Token (xoxb-…); scopes chat:write, "
                    "channels:history, groups:history, im:history, files:read", True),
        ConfigField("signing_secret", "Signing secret",
                    "Basic Information → App Credentials → Signing Secret", True),
        ConfigField("default_channel", "Default Slack channel id",
                    "Where conversations that did not begin in Slack are posted (routed ones), "
                    "each in its own thread, e.g. C0123456789"),
        ConfigField("api_base_url", "API base URL", f"Default {DEFAULT_BASE_URL}"),
    )

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, REQUIRED, "slack"):
            return error
        if not TOKEN_RE.fullmatch(config["bot_token"]):
            return "slack config 'bot_token' must be the bot token (xoxb-…), without spaces"
        if error := common.bad_url(config, "api_base_url", "slack"):
            return error
        channel = config.get("default_channel")
        if channel is not None and not (isinstance(channel, str) and CHANNEL_RE.fullmatch(channel)):
            return "slack config 'default_channel' must be a Slack channel id like C0123456789"
        return common.validate_common(config, "slack")

    def method_url(self, config: Mapping[str, Any], method: str) -> str:
        return (config.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/") + "/" + method

    async def _call(self, session: Any, config: Mapping[str, Any], method: str,
                    body: dict[str, Any]) -> tuple[int, Mapping[str, str], bytes] | str:
        headers = {"Authorization": f"Bearer {config['bot_token']}",
                   "Content-Type": "application/json; charset=utf-8"}
        return await common.post_json(session, self.method_url(config, method), headers, body,
                                      common.timeout_of(config))

    # -- outbound -----------------------------------------------------------------------
    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        """``chat.postMessage`` into the conversation's thread. A conversation that did not
        begin in Slack is posted to ``default_channel``; the message it opens becomes the
        conversation's thread there (``thread_key``)."""
        target = _target(channel.config, activity)
        if target is None:
            return DeliveryResult(ok=False, retryable=False, error=(
                "no Slack channel to post to: the conversation did not begin in Slack, and "
                "neither metadata 'slack_channel' nor config 'default_channel' is set"))
        slack_channel, thread_ts, opens_thread = target
        text = _text(activity)
        if text is None:
            return DeliveryResult(ok=False, retryable=False,
                                  error="Slack delivery needs a non-empty text or an attachment URL")
        body: dict[str, Any] = {"channel": slack_channel, "text": text}
        if thread_ts:
            body["thread_ts"] = thread_ts
        answer = await self._call(session, channel.config, "chat.postMessage", body)
        if isinstance(answer, str):
            return common.unreachable(LABEL, answer)
        status, headers, raw = answer
        data = common.as_dict(common.decode_json(raw))
        if status != 200 or data.get("ok") is False:
            return _failure(status, headers, raw, data)
        ts = common.as_str(data.get("ts"))
        posted_in = common.as_str(data.get("channel")) or slack_channel
        meta: dict[str, Any] = {"slack_channel": posted_in}
        if ts:
            meta["slack_ts"] = ts
        if thread_ts:
            meta["thread_ts"] = thread_ts
        key = f"{posted_in}:{ts}" if opens_thread and ts else None
        return DeliveryResult(ok=True, provider_message_id=ts, metadata=meta, thread_key=key)

    # -- inbound ------------------------------------------------------------------------
    def handshake(self, channel: ChannelInfo, payload: Any) -> tuple[int, Any] | None:
        """The Events API's ``url_verification``: answer its challenge."""
        if isinstance(payload, dict) and payload.get("type") == "url_verification":
            challenge = payload.get("challenge")
            if isinstance(challenge, str):
                return 200, {"challenge": challenge}
        return None

    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """One Events API request: a person's ``message`` event becomes a message; other
        events, bots' messages and channel notifications are ignored."""
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise InboundError("unable to parse Slack event: expected an Events API request "
                               "with a \"type\"")
        kind = payload["type"]
        if kind != "event_callback":
            raise InboundIgnored(f"Slack request of type {kind!r} ignored")
        event = payload.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise InboundError("unable to parse Slack event: event_callback without an event")
        if event["type"] != "message":
            raise InboundIgnored(f"Slack event of type {event['type']!r} ignored")
        subtype = event.get("subtype")
        if event.get("bot_id") is not None or subtype == "bot_message":
            raise InboundIgnored("Slack message from a bot ignored (no echo loops)")
        if subtype not in PERSON_SUBTYPES:
            raise InboundIgnored(f"Slack message of subtype {subtype!r} ignored")
        return [_message(payload, event)]

    # -- verification -------------------------------------------------------------------
    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">`` keyed by the
        signing secret, with ``X-Slack-Request-Timestamp`` within five minutes of now."""
        secret = channel.config.get("signing_secret")
        if not isinstance(secret, str) or not secret:
            return False
        stamp = common.header(headers, "X-Slack-Request-Timestamp") or ""
        given = common.header(headers, "X-Slack-Signature")
        if not given or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
            return False
        if abs(now() - int(stamp)) > TOLERANCE_SECONDS:
            return False
        return hmac.compare_digest(header_bytes(given), sign(secret, stamp, body).encode())

    # -- management ---------------------------------------------------------------------
    async def run_action(
        self, session: Any, channel: ChannelInfo, name: str, inbound_url: str
    ) -> ActionResult:
        """``auth_test``: who the bot token is (team, bot user), or Slack's error."""
        if name != "auth_test":
            return await super().run_action(session, channel, name, inbound_url)
        answer = await self._call(session, channel.config, "auth.test", {})
        if isinstance(answer, str):
            return ActionResult(ok=False, error=f"{LABEL} request failed: {answer}")
        status, _headers, raw = answer
        data = common.as_dict(common.decode_json(raw))
        if status != 200 or data.get("ok") is not True:
            error = common.as_str(data.get("error")) or common.clip(raw) or "(empty body)"
            return ActionResult(ok=False, error=f"{LABEL} returned {status}: {error}")
        shown = {k: v for k, v in data.items() if k != "ok"}
        shown["request_url"] = inbound_url
        return ActionResult(ok=True, data=shown)


    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        """The file behind ``url_private_download`` (or ``url_private``), fetched with the bot
        token. The token is sent only to Slack's own hosts (or only to the ``api_base_url`` host
        when that is not Slack's)."""
        url = attachment.get("url_private_download") or attachment.get("url_private")
        if not isinstance(url, str) or not valid_http_url(url):
            return MediaError(kind="unsupported", error="the attachment has no Slack file URL")
        if not _slack_host(url, channel.config):
            return MediaError(kind="unsupported", error="the file URL is not on a Slack host")
        size = attachment.get("size")
        if isinstance(size, int) and not isinstance(size, bool) and size > limit:
            return MediaError(kind="too_large", error=f"the file is over {limit} bytes")
        got = await common.download(session, url,
                                    {"Authorization": f"Bearer {channel.config['bot_token']}"},
                                    limit, common.timeout_of(channel.config), LABEL)
        if isinstance(got, MediaError):
            return got
        status, headers, body = got
        ctype = headers.get("Content-Type") or ""
        if status != 200 or ctype.startswith("text/html"):  # Slack's sign-in page: no access
            return MediaError(kind="provider", error=f"{LABEL} download returned {status}"
                                                     + (" (a sign-in page: the token may not "
                                                        "read files, scope files:read)"
                                                        if ctype.startswith("text/html") else ""))
        return MediaFile(body=body, name=common.as_str(attachment.get("name")) or "file",
                         content_type=common.as_str(attachment.get("mimetype"))
                         or ctype or "application/octet-stream")


def _slack_host(url: str, config: Mapping[str, Any]) -> bool:
    """Whether the bot token may go to ``url``: a Slack host, or — for a channel whose
    ``api_base_url`` names another host (a proxy, a stand-in) — that host only."""
    host = (urlsplit(url).hostname or "").lower()
    base = config.get("api_base_url")
    if base:
        own = (urlsplit(base).hostname or "").lower()
        if own != "slack.com" and not own.endswith(".slack.com"):
            return host == own
    return host == "slack.com" or host.endswith(".slack.com")


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack sends for ``body`` at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


# -- outbound helpers ---------------------------------------------------------------------------

def _target(config: Mapping[str, Any], activity: OutboundActivity) -> tuple[str, str | None, bool] | None:
    """(Slack channel, thread ts, whether this post opens the conversation's thread)."""
    meta = activity.metadata
    channel = meta.get("slack_channel")
    if isinstance(channel, str) and CHANNEL_RE.fullmatch(channel):
        ts = meta.get("thread_ts")
        return channel, ts if isinstance(ts, str) and TS_RE.fullmatch(ts) else None, False
    key = activity.thread_sender
    if isinstance(key, str) and key:
        channel, _, ts = key.partition(":")
        if CHANNEL_RE.fullmatch(channel):
            return channel, ts if TS_RE.fullmatch(ts) else None, False
    default = config.get("default_channel")
    if isinstance(default, str) and CHANNEL_RE.fullmatch(default):
        return default, None, True
    return None


def _text(activity: OutboundActivity) -> str | None:
    """The text, with attachment URLs after it (Slack unfurls them)."""
    parts = [activity.text] if isinstance(activity.text, str) and activity.text.strip() else []
    for att in activity.attachments:
        if isinstance(att, dict) and valid_http_url(att.get("url")):
            parts.append(att["url"])
    return "\n".join(parts) if parts else None


def _failure(status: int, headers: Mapping[str, str], raw: bytes,
             data: dict[str, Any]) -> DeliveryResult:
    """A non-200, or a 200 with ``ok: false`` and an error code."""
    code = common.as_str(data.get("error"))
    if status == 200 and code:
        retryable = code in RETRYABLE_ERRORS
        return DeliveryResult(
            ok=False, retryable=retryable, error=f"{LABEL} error: {code}",
            retry_after=retry_after(headers.get("Retry-After")) if retryable else None,
            channel_unhealthy=code in AUTH_ERRORS, metadata={"slack_error": code})
    result = common.failure(LABEL, status, headers, raw, lambda body: (code, None))
    result.channel_unhealthy = code in AUTH_ERRORS if code else False
    return result


# -- inbound helpers ----------------------------------------------------------------------------

def _message(payload: dict[str, Any], event: dict[str, Any]) -> InboundMessage:
    channel = common.as_str(event.get("channel")) or "unknown"
    ts = common.as_str(event.get("ts"))
    thread_ts = common.as_str(event.get("thread_ts"))
    channel_type = common.as_str(event.get("channel_type"))
    if thread_ts:
        key = f"{channel}:{thread_ts}"
    elif channel_type == "im" or not ts:
        key = channel  # a direct message channel is one conversation
    else:
        key = f"{channel}:{ts}"  # a top-level message starts a thread the replies go in
    attachments = [_file(f) for f in common.as_list(event.get("files")) if isinstance(f, dict)]
    event_id = common.as_str(payload.get("event_id"))
    meta: dict[str, Any] = {
        "slack_event_id": event_id, "slack_channel": channel, "slack_ts": ts,
        "channel_type": channel_type, "team_id": common.as_str(payload.get("team_id")),
        "event_time": payload.get("event_time") if isinstance(payload.get("event_time"), int) else None,
    }
    if thread_ts:
        meta["thread_ts"] = thread_ts
    if event.get("subtype") is not None:
        meta["subtype"] = event["subtype"]
    return InboundMessage(
        sender=common.as_str(event.get("user")) or "slack", text=common.as_str(event.get("text")) or "",
        metadata=meta, attachments=attachments,
        external_id=event_id or (f"{channel}:{ts}" if ts else None), thread_key=key,
    )


def _file(f: dict[str, Any]) -> dict[str, Any]:
    """A shared file as an attachment; download ``url_private`` with the bot token."""
    mimetype = common.as_str(f.get("mimetype")) or ""
    kind = "image" if mimetype.startswith("image/") else "file"
    att: dict[str, Any] = {"type": kind}
    for key in FILE_FIELDS:
        value = f.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            att["file_id" if key == "id" else key] = value
    return att

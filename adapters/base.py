"""The one small protocol every channel type implements, and the values it returns.

An adapter knows only this protocol, msgspec and aiohttp: it validates its config, says which
modes it supports, delivers an outbound activity over HTTP, and parses and verifies what a
provider sends in. It returns values; the gateway's workers change state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol

import msgspec

from .media import MediaSpec

MODES = ("inbound", "outbound", "duplex")
# The longest wait a receiver's Retry-After can ask for. A delivery's next attempt is a date:
# "Retry-After: 99999999999999" (or an HTTP date in the year 9999) would overflow it and fail
# the whole batch of outcomes written with it, so longer asks are taken as this.
MAX_RETRY_AFTER = 7 * 86_400.0


def capped_retry_after(seconds: float | None) -> float | None:
    """``seconds`` within [0, MAX_RETRY_AFTER]; None for None or NaN."""
    if seconds is None or seconds != seconds:
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header, at most ``MAX_RETRY_AFTER``; None when absent or
    unreadable. RFC 9110 §10.2.3 allows two forms: delay-seconds (ASCII digits only, so "1.5",
    "-3", "inf" and "²" are unreadable, not guesses) or an HTTP date, read as UTC when it
    carries no zone ("-0000"); a date in the past is 0."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return capped_retry_after(float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return capped_retry_after(when.timestamp() - (time.time() if now is None else now))


class ChannelInfo(msgspec.Struct, kw_only=True):
    """What an adapter may know of a channel: config with secrets already decrypted."""

    id: str
    tenant_id: str
    name: str
    type: str
    mode: str
    config: dict[str, Any]
    secret: str
    # The channel's public URLs as the provider reaches them (under CONVERGER_PUBLIC_URL when
    # set), filled in by the gateway: a send may ask the provider to post its receipts to
    # ``status_url`` (Twilio's StatusCallback). "" when not known.
    inbound_url: str = ""
    status_url: str = ""
    # While a request is verified: the public URL it was posted to, query string included, as
    # the provider saw it (Twilio signs it). "" otherwise.
    request_url: str = ""


class OutboundActivity(msgspec.Struct, kw_only=True):
    """The activity as sent to a channel, after that channel's middleware ran."""

    id: str
    type: str
    sender: str
    text: str | None
    attachments: list[Any]
    metadata: dict[str, Any]
    conversation_id: str
    tenant_id: str
    timestamp: str
    seq: int = 0
    delivery_id: str = ""
    # The person a reply goes to when the conversation began inbound on this channel.
    thread_sender: str | None = None
    # The Direct Line fields a client sent (``value``, ``name``, ``replyToId``, …): {} mostly.
    extra: dict[str, Any] = {}
    # For adapters with ``reply_context``: the metadata of the latest activity that came in on
    # this channel in the conversation before this one ({} when none) — the mail a reply
    # answers (its Message-ID, References, Subject).
    in_reply_to: dict[str, Any] = {}


class DeliveryResult(msgspec.Struct, kw_only=True):
    ok: bool
    provider_message_id: str | None = None
    metadata: dict[str, Any] = {}
    error: str | None = None
    # False: the error will never go away by retrying (fail at once).
    retryable: bool = True
    # Seconds the receiver asked us to wait (Retry-After), if it said.
    retry_after: float | None = None
    # The thread this send opened on the channel (say the Slack channel and ts of a new
    # top-level message): later sends of the same conversation to the channel get it as
    # ``thread_sender``, and inbound messages with this ``thread_key`` join the conversation.
    thread_key: str | None = None
    # The provider refused the channel's credentials (a revoked token): no send on this
    # channel can succeed until an operator fixes it, so the channel is marked unhealthy now.
    channel_unhealthy: bool = False


class InboundMessage(msgspec.Struct, kw_only=True):
    sender: str
    text: str | None = None
    type: str = "message"
    metadata: dict[str, Any] = {}
    attachments: list[Any] = []
    # The provider's message id: a retry of the same id creates nothing new.
    external_id: str | None = None
    conversation_id: str | None = None
    # The conversation key on the channel when it is not the sender (a Telegram chat, a Slack
    # thread): messages with the same key share a conversation, whose replies get it back as
    # ``OutboundActivity.thread_sender``. None: one conversation per sender.
    thread_key: str | None = None


class StatusUpdate(msgspec.Struct, kw_only=True):
    status: str
    provider_message_id: str | None = None
    delivery_id: str | None = None
    timestamp: Any = None
    recipient_id: str | None = None
    error: str | None = None


class InboundError(ValueError):
    """The provider's payload cannot be used; the message is shown to the caller (400)."""


class InboundIgnored(InboundError):
    """A well-formed payload with nothing to store (an event type the channel does not use, a
    bot's own message): acknowledged with a 2xx, so the provider does not resend it, and
    logged once per channel and reason. The message says what was ignored."""


class ActionResult(msgspec.Struct, kw_only=True):
    """What a management action (``Adapter.run_action``) did: ``data`` is shown to the
    operator; ``error`` (with ``ok`` False) is the provider's own message."""

    ok: bool
    data: dict[str, Any] = {}
    error: str | None = None


class MediaFile(msgspec.Struct, kw_only=True):
    """A file downloaded from a provider (``Adapter.fetch_media``)."""

    body: bytes
    content_type: str
    name: str


class MediaError(msgspec.Struct, kw_only=True):
    """Why a file could not be downloaded: ``kind`` is ``unsupported`` (nothing to fetch),
    ``too_large`` (over the limit), ``expired`` (the provider no longer has it: final),
    ``mismatch`` (not the file announced: final) or ``provider`` (the provider refused or did
    not answer: worth another try)."""

    kind: str
    error: str


class ConfigField(msgspec.Struct, frozen=True):
    """One input of the channel form: the config key, its label and a line of help."""

    key: str
    label: str
    help: str = ""
    required: bool = False


class Adapter(Protocol):
    type: ClassVar[str]
    supported_modes: ClassVar[tuple[str, ...]]
    # Config keys holding credentials: encrypted at rest, never shown again.
    secret_fields: ClassVar[tuple[str, ...]]
    # Whether the pipeline makes delivery rows for this type (external, outbound-capable).
    delivers: ClassVar[bool]
    # The activity types it carries (None: every type). An activity of another type gets a
    # ``skipped`` delivery with the reason, never an attempt (a typing indicator is not a text).
    activity_types: ClassVar[frozenset[str] | None]
    # Management actions an operator may run on a channel of this type (``run_action``).
    actions: ClassVar[tuple[str, ...]]
    # The admin panel's config form, in order (secret fields are password inputs).
    config_fields: ClassVar[tuple[ConfigField, ...]]
    # The body a provider expects in a 2xx answer to its inbound posts, as (content type,
    # body) — Twilio's empty TwiML; None: the gateway's JSON answer.
    inbound_ack: ClassVar[tuple[str, str] | None]
    # The attachments it can send (adapters/media.py): type → size and content-type limits.
    # Empty: text only. An activity it cannot send fails at once, saying why.
    media: ClassVar[Mapping[str, MediaSpec]]
    # Whether a send needs ``OutboundActivity.in_reply_to`` (a lookup per delivery).
    reply_context: ClassVar[bool]

    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        """An error message, or None when the config is valid."""
        ...

    async def deliver(self, session: Any, channel: ChannelInfo, activity: OutboundActivity) -> DeliveryResult:
        ...

    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """Messages in a provider payload; raises InboundError when it holds none. A JSON body
        arrives decoded; a form (``application/x-www-form-urlencoded`` or
        ``multipart/form-data``) as a dict of field → string (the first value of a repeated
        field), and a multipart form's files as ``{"filename", "content_type", "content":
        bytes}``."""
        ...

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        """Status receipts in a payload, or None when the payload is not a receipt."""
        ...

    def verify_challenge(self, channel: ChannelInfo, query: Mapping[str, str]) -> tuple[int, str]:
        """Answer to ``GET …/inbound`` (status, plain body)."""
        ...

    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """Provider-specific signature check: True/False, or None when it has none to check."""
        ...

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        """Whether an inbound message was sent to this channel's own number/account (a
        provider may post several numbers' messages to one URL)."""
        ...

    def handshake(self, channel: ChannelInfo, payload: Any) -> tuple[int, Any] | None:
        """The answer to an in-band check a provider POSTs to the inbound URL (Slack's
        ``url_verification``), as (status, JSON body); None when the payload is not one.
        Asked after the signature was verified, before anything is parsed or stored."""
        ...

    async def run_action(
        self, session: Any, channel: ChannelInfo, name: str, inbound_url: str
    ) -> ActionResult:
        """Run the management action ``name`` (one of ``actions``) against the provider;
        ``inbound_url`` is the channel's public inbound URL. Never raises."""
        ...

    def mailbox(self, channel: ChannelInfo) -> tuple[str, int] | None:
        """For types that take mail through the embedded SMTP server (CONVERGER_SMTP_PORT): the
        channel's address (lower case) and the largest mail in bytes; None otherwise. The
        server hands each accepted mail to ``parse_inbound`` as ``{"raw": bytes, "mail_from":
        str, "rcpt_tos": [str]}``."""
        ...

    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        """Download the file of an attachment this adapter parsed (a Telegram ``file_id``, a
        Slack ``url_private``), at most ``limit`` bytes. Never raises."""
        ...


MESSAGES_ONLY: frozenset[str] = frozenset({"message"})


def carries(adapter: Adapter, activity_type: str) -> bool:
    """Whether ``adapter`` delivers activities of ``activity_type``."""
    return adapter.activity_types is None or activity_type in adapter.activity_types


class BaseAdapter:
    """Defaults shared by adapters: no inbound, no receipts, no provider signature."""

    type: ClassVar[str] = ""
    supported_modes: ClassVar[tuple[str, ...]] = MODES
    secret_fields: ClassVar[tuple[str, ...]] = ()
    delivers: ClassVar[bool] = False
    activity_types: ClassVar[frozenset[str] | None] = None
    actions: ClassVar[tuple[str, ...]] = ()
    config_fields: ClassVar[tuple[ConfigField, ...]] = ()
    inbound_ack: ClassVar[tuple[str, str] | None] = None
    media: ClassVar[Mapping[str, MediaSpec]] = {}
    reply_context: ClassVar[bool] = False

    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        return None

    async def deliver(self, session: Any, channel: ChannelInfo, activity: OutboundActivity) -> DeliveryResult:
        return DeliveryResult(ok=True)

    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        raise InboundError(f"{self.type} channel does not support inbound webhooks")

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        return None

    def verify_challenge(self, channel: ChannelInfo, query: Mapping[str, str]) -> tuple[int, str]:
        return 200, "ok"

    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        return None

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        return True

    def handshake(self, channel: ChannelInfo, payload: Any) -> tuple[int, Any] | None:
        return None

    async def run_action(
        self, session: Any, channel: ChannelInfo, name: str, inbound_url: str
    ) -> ActionResult:
        return ActionResult(ok=False, error=f"{self.type} channels have no action {name!r}")

    def mailbox(self, channel: ChannelInfo) -> tuple[str, int] | None:
        return None

    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        return MediaError(kind="unsupported",
                          error=f"{self.type} channels have no files to download")


def missing_strings(config: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if not isinstance(config.get(k), str) or not config.get(k)]

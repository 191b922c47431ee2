"""Creating an activity, from every entry point (the two APIs, the sockets, uploads, inbound
webhooks): insert it and enqueue its deliveries in one transaction (the outbox), then — only
after commit — broadcast it and hand the deliveries to the delivery backend.

In an active echo channel's conversation, the echo bot's reply to a non-bot message is made in
that same transaction: once the message is acknowledged its reply is committed too, and a crash
can never leave a message unanswered or answered twice (docs/delivery.md)."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

import adapters
from adapters.base import carries
from adapters.echo import EchoAdapter
from store import activities, conversations, queue, routing
from store.models import Activity, Channel, ChannelRef

from ..context import Gateway
from . import media, whatsapp
from .errors import Conflict, Forbidden, NotFound, TooLarge


class NewActivity(msgspec.Struct, kw_only=True):
    type: str = "message"
    sender: str = "user"
    text: str | None = None
    attachments: list[Any] = []
    metadata: dict[str, Any] = {}
    idempotency_key: str | None = None
    source_channel_id: str | None = None
    external_id: str | None = None
    extra: dict[str, Any] = {}  # Direct Line fields beyond the columns (store.models.Activity)


class Created(msgspec.Struct):
    activity: Activity
    created: bool
    deliveries: int
    reply: Created | None = None  # the echo bot's reply, committed with the activity


_size_encoder = msgspec.json.Encoder()


def check_size(limit: int, new: NewActivity) -> None:
    """Text, attachments, metadata and extra together at most ``limit`` bytes as JSON
    (``CONVERGER_MAX_ACTIVITY_BYTES``): one tenant must not fill the server's memory with a few
    list calls over megabyte activities (issue 13)."""
    if not limit:
        return
    size = len(_size_encoder.encode((new.text, new.attachments, new.metadata, new.extra)))
    if size > limit:
        raise TooLarge(f"the activity is {size} bytes of text, attachments and metadata; at most "
                       f"{limit} are accepted", "activity_too_large")


def closed(conversation_id: str) -> Conflict:
    return Conflict("conversation is closed", "conversation_closed")


def insert_tx(
    conn: sqlite3.Connection, tenant_id: str, conversation_id: str, new: NewActivity, now: str
) -> Created:
    """The write transaction: check, dedupe, insert, enqueue. A replay (same idempotency key,
    or same provider message id on the same channel) finds the first activity, even in a
    conversation closed since; a new activity in a closed conversation is refused."""
    # The conversation, its tenant, its channel and whether rules fan out from it: one read.
    found = conversations.for_write(conn, tenant_id, conversation_id)
    if found is None:
        raise NotFound("conversation")
    if found.tenant_status != "active":  # the entry points refuse first; this is the rule
        raise Forbidden("tenant is not active", "tenant_inactive")
    if new.idempotency_key is not None:
        existing = activities.by_idempotency_key(conn, conversation_id, new.idempotency_key)
        if existing is not None:
            return Created(existing, False, 0)
    if new.external_id is not None and new.source_channel_id is not None:
        existing = activities.by_external_id(conn, new.source_channel_id, new.external_id)
        if existing is not None:
            return Created(existing, False, 0)
    if found.status != "active":
        raise closed(conversation_id)
    primary = found.channel
    if new.attachments:
        new.attachments = media.resolve_uploads_tx(conn, tenant_id, conversation_id, new.attachments)
    whatsapp.check_tx(conn, primary, conversation_id, new, now)
    activity = activities.insert(
        conn, tenant_id=tenant_id, conversation_id=conversation_id, sender=new.sender, now=now,
        type=new.type, text=new.text, attachments=new.attachments, metadata=new.metadata,
        idempotency_key=new.idempotency_key, source_channel_id=new.source_channel_id,
        external_id=new.external_id, extra=new.extra,
    )
    n = enqueue_tx(conn, primary, activity, now, found.rules)
    reply = None
    # A typing indicator is not a message: it gets no (empty) reply.
    if (primary is not None and primary.type == EchoAdapter.type and primary.active
            and activity.sender != EchoAdapter.BOT and activity.type != "typing"):
        echo = activities.insert(conn, tenant_id=tenant_id, conversation_id=conversation_id,
                                 sender=EchoAdapter.BOT, now=now,
                                 text=EchoAdapter.reply_text(activity.sender, activity.text))
        reply = Created(echo, True, enqueue_tx(conn, primary, echo, now, found.rules))
    return Created(activity, True, n, reply)


def enqueue_tx(conn: sqlite3.Connection, primary: Channel | ChannelRef | None, activity: Activity, now: str,
               rules: bool = True) -> int:
    """Enqueue an activity's deliveries: its conversation's channel (``primary``) and the
    channels routing rules fan it out to (``rules=False``: none do, read in this transaction)."""
    if primary is None:
        return 0
    targets = routing.delivery_targets(
        conn, primary, outbound_types=adapters.DELIVERING_TYPES,
        exclude_channel_id=activity.source_channel_id, rules=rules,
    )
    if not targets:  # a websocket channel's conversation, no rule: nothing to queue
        return 0
    send: list[str] = []
    skipped: dict[str, str] = {}
    for channel in targets:
        adapter = adapters.get(channel.type)
        if adapter is None or carries(adapter, activity.type):
            send.append(channel.id)
        else:  # recorded, not attempted: a typing indicator is not an (empty) text
            skipped[channel.id] = (f"skipped: {channel.type} channels do not carry "
                                   f"{activity.type!r} activities")
    return queue.enqueue(conn, activity, send, now, skipped)


async def create(gw: Gateway, tenant_id: str, conversation_id: str, new: NewActivity) -> Created:
    """Create (or find, on an idempotent replay) an activity; committed when this returns.

    Raises ``NotFound`` (no such conversation for this tenant) or ``Conflict``
    (``conversation_closed``) or ``TooLarge`` (``activity_too_large``)."""
    check_size(gw.settings.max_activity_bytes, new)
    result: Created = await gw.db.write(insert_tx, tenant_id, conversation_id, new, gw.now_iso())
    if announce(gw, result):
        await enqueued(gw, result)
    return result


async def after_commit(gw: Gateway, result: Created) -> None:
    """The effects of a committed new activity, once: broadcast it (then the echo reply: seq
    order), then hand their deliveries to the delivery backend. Nothing for a replay."""
    if announce(gw, result):
        await enqueued(gw, result)


def announce(gw: Gateway, result: Created) -> bool:
    """:func:`after_commit`'s broadcast, which needs no await (the hot path's case: a socket
    channel's conversation queues no delivery); True when deliveries are to be handed over."""
    if not result.created:
        return False
    reply = result.reply
    for hook in gw.on_activity:
        hook(result.activity)
    if reply is not None:
        for hook in gw.on_activity:
            hook(reply.activity)
        return bool(result.deliveries or reply.deliveries)
    return bool(result.deliveries)


async def enqueued(gw: Gateway, result: Created) -> None:
    """The deliveries of a committed activity (and of its echo reply) to the delivery backend."""
    for r in (result, result.reply):
        if r is not None and r.deliveries:
            await gw.delivery.enqueued(r.activity, r.deliveries)

"""Creating an activity, from every entry point: insert and enqueue its deliveries in one
transaction (the outbox), then — only after commit — broadcast it and wake the workers.

In an active echo channel's conversation, the echo bot's reply to a non-bot message is made in
that same transaction (DESIGN §7): once the message is acknowledged its reply is committed too,
and a crash can never leave a message unanswered or answered twice."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

import adapters
from adapters.echo import EchoAdapter
from store import activities, channels, conversations, queue, routing
from store.models import Activity, Channel

from .. import errors


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


class NotFound(Exception):
    pass


class Closed(Exception):
    pass


def insert_tx(
    conn: sqlite3.Connection, tenant_id: str, conversation_id: str, new: NewActivity, now: str
) -> Created:
    """The write transaction: check, dedupe, insert, enqueue."""
    conv = conversations.get_for_tenant(conn, tenant_id, conversation_id)
    if conv is None:
        raise NotFound(conversation_id)
    if new.idempotency_key is not None:
        existing = activities.by_idempotency_key(conn, conversation_id, new.idempotency_key)
        if existing is not None:
            return Created(existing, False, 0)
    if new.external_id is not None and new.source_channel_id is not None:
        existing = activities.by_external_id(conn, new.source_channel_id, new.external_id)
        if existing is not None:
            return Created(existing, False, 0)
    if conv.status != "active":
        raise Closed(conversation_id)
    activity = activities.insert(
        conn, tenant_id=tenant_id, conversation_id=conversation_id, sender=new.sender, now=now,
        type=new.type, text=new.text, attachments=new.attachments, metadata=new.metadata,
        idempotency_key=new.idempotency_key, source_channel_id=new.source_channel_id,
        external_id=new.external_id, extra=new.extra,
    )
    primary = channels.get(conn, conv.channel_id)
    n = enqueue_tx(conn, primary, activity, now)
    reply = None
    # Only messages are answered: typing indicators and events (a client's join event, say)
    # are not messages.
    if (primary is not None and primary.type == EchoAdapter.type and primary.active
            and activity.sender != EchoAdapter.BOT and activity.type == "message"):
        echo = activities.insert(conn, tenant_id=tenant_id, conversation_id=conversation_id,
                                 sender=EchoAdapter.BOT, now=now,
                                 text=EchoAdapter.reply_text(activity.sender, activity.text))
        reply = Created(echo, True, enqueue_tx(conn, primary, echo, now))
    return Created(activity, True, n, reply)


def enqueue_tx(conn: sqlite3.Connection, primary: Channel | None, activity: Activity, now: str) -> int:
    """Enqueue an activity's deliveries: its conversation's channel (``primary``) and the
    channels routing rules fan it out to."""
    if primary is None:
        return 0
    targets = routing.delivery_targets(
        conn, primary, outbound_types=adapters.DELIVERING_TYPES,
        exclude_channel_id=activity.source_channel_id,
    )
    return queue.enqueue(conn, activity, [c.id for c in targets], now)


async def create(app: Any, tenant_id: str, conversation_id: str, new: NewActivity) -> Created:
    """Create (or find, on an idempotent replay) an activity; committed when this returns."""
    ctx = app.ctx
    try:
        result: Created = await ctx.db.write(insert_tx, tenant_id, conversation_id, new, ctx.now_iso())
    except NotFound:
        raise errors.not_found() from None
    except Closed:
        raise errors.conflict("conversation is closed", "conversation_closed") from None
    if result.created:
        after_commit(app, result)
        # The inline pipeline (development) makes its one attempt inside the request.
        inline = getattr(ctx, "deliver_inline", None)
        if inline is not None:
            for done in (result, result.reply):
                if done is not None and done.deliveries:
                    await inline(done.activity)
    return result


def after_commit(app: Any, result: Created) -> None:
    """Side effects of a committed new activity: broadcast once, then wake delivery."""
    ctx = app.ctx
    a = result.activity
    ctx.metrics_activities += 1
    for hook in ctx.on_activity:
        hook(a)
    if result.deliveries:
        for hook in ctx.on_enqueue:
            hook(a, result.deliveries)
    if result.reply is not None:  # after the message: subscribers see them in seq order
        after_commit(app, result.reply)

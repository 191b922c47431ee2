"""An inbound message from a provider becomes an activity: deduplicated by the provider's message
id, threaded by (channel, sender) into that sender's open conversation, in one write transaction
with its deliveries (docs/adapters.md)."""

from __future__ import annotations

import sqlite3

from adapters.base import InboundMessage
from store import activities, conversations, threads
from store import media as media_store
from store.models import Channel

from ..context import Gateway
from . import media
from .activities import Created, NewActivity, after_commit, insert_tx
from .errors import NotFound

SOURCE = {"source": "inbound_webhook"}


def inbound_tx(conn: sqlite3.Connection, channel: Channel, msg: InboundMessage, now: str) -> Created:
    """Insert (or find, for a provider's retry) the activity of one inbound message."""
    if msg.external_id:
        existing = activities.by_external_id(conn, channel.id, msg.external_id)
        if existing is not None:
            return Created(existing, False, 0)
    if msg.conversation_id:
        conv = conversations.get_for_tenant(conn, channel.tenant_id, msg.conversation_id)
        if conv is None:
            raise NotFound("conversation")
    else:
        # The conversation key is the sender, or the adapter's thread (a chat, a Slack
        # thread); a thread this channel holds for a conversation routed to it comes first.
        # A closed thread is not reopened: the sender starts a new conversation.
        key = msg.thread_key or msg.sender
        conv = (threads.conversation(conn, channel.id, key)
                or conversations.open_thread(conn, channel.id, key)
                or conversations.create(conn, tenant_id=channel.tenant_id, channel_id=channel.id,
                                        now=now, metadata=dict(SOURCE), sender_key=key))
    attachments, fetch = media.mark_pending(channel.type, msg.attachments)
    new = NewActivity(
        type=msg.type, sender=msg.sender, text=msg.text, attachments=attachments,
        metadata=msg.metadata, source_channel_id=channel.id, external_id=msg.external_id,
    )
    created = insert_tx(conn, channel.tenant_id, conv.id, new, now)
    if created.created and fetch:  # downloaded in the background (gateway/workers/media.py)
        media_store.enqueue(conn, created.activity.id, channel.tenant_id, channel.id, fetch, now)
    return created


async def receive(gw: Gateway, channel: Channel, msg: InboundMessage) -> Created:
    """One inbound message of ``channel``, committed (or found again) when this returns."""
    result: Created = await gw.db.write(inbound_tx, channel, msg, gw.now_iso())
    await after_commit(gw, result)
    if result.created and gw.media is not None and any(
            isinstance(a, dict) and a.get("status") == "pending"
            for a in result.activity.attachments):
        gw.media.kick()
    return result

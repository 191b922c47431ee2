"""Conversations: start one on a channel (every API's "new conversation"; an inbound message
starts its own in gateway/domain/inbound.py), close one (no new activity is accepted; an inbound
message from the same sender starts a new conversation) or reopen it. Closing and reopening are
audited; the expiry job closes idle ones without an actor (gateway/workers/expiry.py)."""

from __future__ import annotations

import sqlite3
from typing import Any

from store import conversations
from store.models import Conversation

from ..context import Gateway
from .base import Actor, record, snap
from .errors import NotFound, ValidationFailed

STATUSES = ("active", "closed")


async def create(gw: Gateway, *, tenant_id: str, channel_id: str, status: str = "active",
                 metadata: dict[str, Any] | None = None) -> Conversation:
    """A new conversation of ``channel_id`` (the caller has checked that the channel and its
    tenant are active: each API answers that in its own shape)."""
    if status not in STATUSES:
        raise ValidationFailed({"status": ["is invalid"]}, "status must be active or closed")
    return await gw.db.write(lambda conn: conversations.create(
        conn, tenant_id=tenant_id, channel_id=channel_id, now=gw.now_iso(), status=status,
        metadata=metadata if metadata is not None else {}))


def set_status_tx(conn: sqlite3.Connection, conversation_id: str, status: str,
                  actor: tuple[str, str], now: str, tenant_id: str | None = None) -> Conversation:
    before = (conversations.get(conn, conversation_id) if tenant_id is None
              else conversations.get_for_tenant(conn, tenant_id, conversation_id))
    if before is None:
        raise NotFound("conversation")
    if before.status == status:
        return before  # already so: nothing changes, nothing to audit
    conversations.set_status(conn, conversation_id, status, now)
    after = conversations.get(conn, conversation_id)
    assert after is not None
    record(conn, actor, "close" if status == "closed" else "reopen", "conversation",
           conversation_id, now, tenant_id=before.tenant_id, before=snap(before), after=snap(after))
    return after


async def close(gw: Gateway, actor: Actor, conversation_id: str, *,
                tenant_id: str | None = None) -> Conversation:
    return await gw.db.write(set_status_tx, conversation_id, "closed", actor, gw.now_iso(),
                             tenant_id)


async def reopen(gw: Gateway, actor: Actor, conversation_id: str, *,
                 tenant_id: str | None = None) -> Conversation:
    return await gw.db.write(set_status_tx, conversation_id, "active", actor, gw.now_iso(),
                             tenant_id)

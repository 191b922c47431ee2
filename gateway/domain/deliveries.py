"""Deliveries by hand: retry one (a failed one gets a fresh set of attempts; a pending one is
made due now), or every failed delivery of a channel. The workers are woken after commit."""

from __future__ import annotations

import sqlite3

from store import channels, dashboard, queue
from store.models import Delivery

from ..context import Gateway
from .base import Actor, record
from .errors import Conflict, NotFound

STATUSES = ("pending", "sent", "delivered", "read", "failed", "skipped")


def retry_tx(conn: sqlite3.Connection, delivery_id: str, actor: tuple[str, str], now: str,
             tenant_id: str | None = None) -> Delivery:
    """``tenant_id`` set (the portal): only that tenant's delivery."""
    found = queue.get(conn, delivery_id)
    if found is None or (tenant_id and found.tenant_id != tenant_id):
        raise NotFound("delivery")
    retried = queue.retry_now(conn, found.id, now)
    if retried is None:
        raise Conflict(f"delivery is {found.status}; only failed or pending deliveries can be "
                       "retried", "not_retryable")
    record(conn, actor, "retry", "delivery", found.id, now, tenant_id=found.tenant_id,
           before={"status": found.status, "attempts": found.attempts,
                   "last_error": found.last_error},
           after={"status": retried.status, "next_attempt_at": retried.next_attempt_at})
    return retried


def retry_failed_tx(conn: sqlite3.Connection, channel_id: str, actor: tuple[str, str], now: str,
                    tenant_id: str | None = None) -> int:
    n = dashboard.retry_failed_of_channel(conn, channel_id, now, tenant_id)
    if n:
        channel = channels.get(conn, channel_id)
        record(conn, actor, "retry_failed", "channel", channel_id, now,
               tenant_id=channel.tenant_id if channel else None, after={"retried": n})
    return n


async def retry(gw: Gateway, actor: Actor, delivery_id: str, *,
                tenant_id: str | None = None) -> Delivery:
    d = await gw.db.write(retry_tx, delivery_id, actor, gw.now_iso(), tenant_id)
    await gw.delivery.enqueued(None, 1)
    return d


async def retry_failed(gw: Gateway, actor: Actor, channel_id: str, *,
                       tenant_id: str | None = None) -> int:
    """Every failed delivery of ``channel_id`` made due now; returns how many."""
    n = await gw.db.write(retry_failed_tx, channel_id, actor, gw.now_iso(), tenant_id)
    if n:
        await gw.delivery.enqueued(None, n)
    return n


def retry_failed_matching_tx(conn: sqlite3.Connection, filters: dict[str, str | None],
                             actor: tuple[str, str], now: str,
                             tenant_id: str | None = None) -> int:
    """``tenant_id`` set (the portal): only that tenant's deliveries, whatever the filters."""
    scope = {**filters, "tenant_id": tenant_id or filters.get("tenant_id")}
    n = queue.retry_failed_where(conn, now, **scope)
    if n:
        channel_id = filters.get("channel_id")
        kind, ref = ("channel", channel_id) if channel_id else ("delivery", "*")
        record(conn, actor, "retry_failed", kind, ref, now, tenant_id=scope["tenant_id"],
               after={"retried": n, "filters": {k: v for k, v in scope.items() if v}})
    return n


async def retry_failed_matching(gw: Gateway, actor: Actor, filters: dict[str, str | None], *,
                                tenant_id: str | None = None) -> int:
    """Every failed delivery under the deliveries page's filters made due now; how many."""
    n = await gw.db.write(retry_failed_matching_tx, filters, actor, gw.now_iso(), tenant_id)
    if n:
        await gw.delivery.enqueued(None, n)
    return n

"""Delivery receipts (sent, delivered, read, failed) from providers, and the ``delivery_status``
event subscribers hear when a delivery moves (docs/realtime.md)."""

from __future__ import annotations

import sqlite3

from adapters.base import StatusUpdate
from store import feed, queue
from store.models import Delivery

from ..context import Gateway
from ..shapes import delivery_status


def publish(gw: Gateway, d: Delivery) -> None:
    """Push ``delivery_status`` to the conversation's subscribers (call after commit)."""
    gw.hub.announce(f"conversation:{d.conversation_id}", "delivery_status", delivery_status(d))


def apply_tx(
    conn: sqlite3.Connection, channel_id: str, updates: list[StatusUpdate], now: str
) -> tuple[int, list[Delivery]]:
    """Apply receipts that came in on ``channel_id``; returns (processed, changed deliveries).

    A receipt whose delivery is found counts as processed even when it changes nothing (a stale
    ``delivered`` after ``read``), as in the original; an unknown id is not an error."""
    processed = 0
    changed: list[Delivery] = []
    for u in updates:
        d = queue.find_for_receipt(conn, channel_id, u.provider_message_id, u.delivery_id)
        if d is None:
            continue
        processed += 1
        moved = queue.apply_receipt(conn, d, u.status, queue.receipt_time(u.timestamp, now),
                                    u.error, now)
        if moved is not None:
            changed.append(moved)
            feed.append(conn, "d", moved.conversation_id, delivery_status(moved))
    return processed, changed


async def apply(gw: Gateway, channel_id: str, updates: list[StatusUpdate]) -> int:
    """Apply receipts, then tell subscribers of each delivery that moved; returns how many
    receipts found their delivery."""
    processed, changed = await gw.db.write(apply_tx, channel_id, updates, gw.now_iso())
    for d in changed:
        publish(gw, d)
    return processed

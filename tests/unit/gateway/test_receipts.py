"""Receipts in-process: ``apply_tx`` on a real database and ``publish`` on the real hub."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from adapters.base import StatusUpdate
from gateway.domain import receipts
from gateway.hub import Hub, Subscriber
from store import activities, channels, conversations, migrations, queue, tenants
from store.connect import connect


def test_receipts_publish_delivery_status(tmp_path: Path) -> None:
    """apply_tx + publish on a real database and the real hub: the §8.2 payload, once per change."""
    conn = connect(tmp_path / "r.db")
    migrations.apply(conn)
    now = "2026-01-01T00:00:00.000000Z"
    t = tenants.create(conn, name="t", api_key_hash="h", api_key_hint="x", now=now)
    ch = channels.create(conn, tenant_id=t.id, name="c", type="webhook", mode="duplex",
                         config={}, transformations=[], secret_hash="s", secret_enc="e", now=now)
    conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=now)
    act = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u", now=now)
    queue.enqueue(conn, act, [ch.id], now)
    (d,) = queue.claim(conn, now, 60, 1)
    queue.complete(conn, d.id, d.claim_token, now)
    processed, changed = receipts.apply_tx(
        conn, ch.id, [StatusUpdate(status="read", delivery_id=d.id, timestamp=1700000000),
                      StatusUpdate(status="delivered", delivery_id=d.id),
                      StatusUpdate(status="read", delivery_id="unknown")], now)
    assert processed == 2 and len(changed) == 1
    hub = Hub()
    seen: list[tuple[str, Any]] = []
    hub.subscribe(f"conversation:{conv.id}", Subscriber(lambda e, p: seen.append((e, p)) or True))

    receipts.publish(SimpleNamespace(hub=hub), changed[0])  # only the gateway's hub is used
    assert seen == [("delivery_status", {
        "delivery_id": d.id, "activity_id": act.id, "channel_id": ch.id, "status": "read",
        "sent_at": now, "delivered_at": None, "read_at": "2023-11-14T22:13:20.000000Z"})]
    conn.close()

"""Retrying a delivery by hand: a failed one gets a fresh set of attempts, a pending one is due
now, any other is a ``Conflict``; the audit entry holds before and after; the workers are woken
after commit — and only then."""

from __future__ import annotations

import pytest

from gateway.context import Gateway
from gateway.domain import Conflict, NotFound
from gateway.domain import deliveries as delivery_ops
from store import activities, audit, queue
from tests.unit.store.conftest import make_channel, make_conversation, make_tenant, now

from .conftest import ADMIN, Recorded


async def _failed_delivery(gw: Gateway) -> tuple[str, str]:
    def tx(conn):  # type: ignore[no-untyped-def]
        t = make_tenant(conn)
        ch = make_channel(conn, t.id)
        conv = make_conversation(conn, t.id, ch.id)
        act = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u",
                                now=now())
        queue.enqueue(conn, act, [ch.id], now())
        (d,) = queue.claim(conn, now(), 60, 1)
        queue.fail(conn, d.id, d.claim_token, now(), "boom", False, None, scale=1.0)
        return d.id, t.id
    return await gw.db.write(tx)


async def test_retry_a_failed_delivery(gw: Gateway) -> None:
    delivery_id, tenant_id = await _failed_delivery(gw)
    backend: Recorded = gw.delivery  # type: ignore[assignment]
    retried = await delivery_ops.retry(gw, ADMIN, delivery_id)
    assert (retried.status, retried.attempts) == ("pending", 0)
    assert backend.calls == [(None, 1)]  # woken once, after commit
    [entry], _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=delivery_id))
    assert entry.action == "retry" and entry.tenant_id == tenant_id
    assert entry.changes["before"] == {"status": "failed", "attempts": 1, "last_error": "boom"}
    assert entry.changes["after"] == {"status": "pending",
                                      "next_attempt_at": retried.next_attempt_at}


async def test_retry_refusals_wake_nothing(gw: Gateway) -> None:
    delivery_id, tenant_id = await _failed_delivery(gw)
    backend: Recorded = gw.delivery  # type: ignore[assignment]
    with pytest.raises(NotFound):  # another tenant's delivery: as if it did not exist
        await delivery_ops.retry(gw, ADMIN, delivery_id,
                                 tenant_id="00000000-0000-4000-8000-000000000000")
    await gw.db.write(lambda c: c.execute("UPDATE deliveries SET status = 'sent' WHERE id = ?",
                                          (delivery_id,)))
    with pytest.raises(Conflict) as exc:
        await delivery_ops.retry(gw, ADMIN, delivery_id, tenant_id=tenant_id)
    assert exc.value.code == "not_retryable"
    assert str(exc.value) == ("delivery is sent; only failed or pending deliveries can be "
                              "retried")
    assert backend.calls == []
    items, _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=delivery_id))
    assert items == []

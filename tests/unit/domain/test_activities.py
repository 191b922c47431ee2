"""Creating an activity: checks, idempotent replay, a closed conversation, a disabled tenant,
the deliveries enqueued with it (and the ones skipped), the echo bot's reply in the same
transaction, and the after-commit effects — broadcast then delivery, once, never for a replay
or a refusal."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.context import Gateway
from gateway.domain import Conflict, Forbidden, NotFound
from gateway.domain import activities as activity_ops
from gateway.domain import channels as channel_ops
from gateway.domain import conversations as conversation_ops
from gateway.domain import tenants as tenant_ops
from gateway.domain.activities import NewActivity
from store import activities, conversations, queue

from .conftest import ADMIN


async def _world(gw: Gateway, type: str = "webhook", **config: Any) -> dict[str, Any]:
    tenant, _ = await tenant_ops.create(gw, ADMIN, name="acme")
    cfg = config or ({"url": "http://127.0.0.1:9/hook"} if type == "webhook" else {})
    channel, _ = await channel_ops.create(gw, ADMIN, tenant_id=tenant.id, name="c", type=type,
                                          config=cfg)
    conv = await gw.db.write(lambda c: conversations.create(
        c, tenant_id=tenant.id, channel_id=channel.id, now=gw.now_iso()))
    seen: list[str] = []
    gw.on_activity.append(lambda a: seen.append(a.id))
    return {"tenant": tenant.id, "channel": channel, "conv": conv.id, "seen": seen}


async def test_create_enqueues_then_broadcasts_and_hands_over_once(gw: Gateway) -> None:
    w = await _world(gw)
    result = await activity_ops.create(gw, w["tenant"], w["conv"], NewActivity(text="hi"))
    assert result.created and result.deliveries == 1 and result.activity.seq == 1
    rows = await gw.db.read(lambda c: queue.for_activities(c, [result.activity.id]))
    assert [d.status for d in rows[result.activity.id]] == ["pending"]
    assert w["seen"] == [result.activity.id]
    assert gw.delivery.calls == [(result.activity.id, 1)]  # type: ignore[attr-defined]


async def test_an_idempotent_replay_is_the_same_activity_with_no_effects(gw: Gateway) -> None:
    w = await _world(gw)
    first = await activity_ops.create(gw, w["tenant"], w["conv"],
                                      NewActivity(text="hi", idempotency_key="k-1"))
    again = await activity_ops.create(gw, w["tenant"], w["conv"],
                                      NewActivity(text="changed", idempotency_key="k-1"))
    assert not again.created and again.activity.id == first.activity.id
    assert again.activity.text == "hi"
    assert w["seen"] == [first.activity.id]
    assert len(gw.delivery.calls) == 1  # type: ignore[attr-defined]
    # Still found after the conversation closed (a client's retry of an acknowledged write).
    await conversation_ops.close(gw, ADMIN, w["conv"])
    replay = await activity_ops.create(gw, w["tenant"], w["conv"],
                                       NewActivity(text="hi", idempotency_key="k-1"))
    assert replay.activity.id == first.activity.id and not replay.created


async def test_a_closed_conversation_refuses_new_activities(gw: Gateway) -> None:
    w = await _world(gw)
    closed = await conversation_ops.close(gw, ADMIN, w["conv"])
    assert closed.status == "closed"
    with pytest.raises(Conflict) as exc:
        await activity_ops.create(gw, w["tenant"], w["conv"], NewActivity(text="late"))
    assert exc.value.code == "conversation_closed" and str(exc.value) == "conversation is closed"
    assert w["seen"] == [] and gw.delivery.calls == []  # type: ignore[attr-defined]
    await conversation_ops.reopen(gw, ADMIN, w["conv"])
    assert (await activity_ops.create(gw, w["tenant"], w["conv"], NewActivity(text="ok"))).created


async def test_unknown_or_foreign_conversation_and_disabled_tenant(gw: Gateway) -> None:
    w = await _world(gw)
    with pytest.raises(NotFound):
        await activity_ops.create(gw, w["tenant"], "00000000-0000-4000-8000-000000000000",
                                  NewActivity(text="x"))
    other, _ = await tenant_ops.create(gw, ADMIN, name="other")
    with pytest.raises(NotFound):  # another tenant's conversation: not found, not forbidden
        await activity_ops.create(gw, other.id, w["conv"], NewActivity(text="x"))
    await tenant_ops.set_status(gw, ADMIN, w["tenant"], "suspended")
    with pytest.raises(Forbidden) as exc:
        await activity_ops.create(gw, w["tenant"], w["conv"], NewActivity(text="x"))
    assert exc.value.code == "tenant_inactive"
    count = await gw.db.read(lambda c: c.execute("SELECT count(*) FROM activities").fetchone()[0])
    assert count == 0


async def test_types_the_channel_cannot_carry_are_skipped(gw: Gateway) -> None:
    w = await _world(gw, "whatsapp_meta", phone_number_id="1", access_token="t", verify_token="v",
                     allow_unsigned=True)
    result = await activity_ops.create(gw, w["tenant"], w["conv"],
                                       NewActivity(type="typing", sender="agent"))
    assert result.created and result.deliveries == 0
    [row] = (await gw.db.read(lambda c: queue.for_activities(c, [result.activity.id])))[
        result.activity.id]
    assert row.status == "skipped" and row.attempts == 0
    assert row.last_error == "skipped: whatsapp_meta channels do not carry 'typing' activities"
    assert gw.delivery.calls == []  # type: ignore[attr-defined]  # nothing to send


async def test_echo_reply_is_committed_with_the_message(gw: Gateway) -> None:
    w = await _world(gw, "echo")
    result = await activity_ops.create(gw, w["tenant"], w["conv"],
                                       NewActivity(text="hello", sender="ann"))
    assert result.reply is not None and result.reply.activity.seq == 2
    assert w["seen"] == [result.activity.id, result.reply.activity.id]  # in seq order
    stored = await gw.db.read(lambda c: activities.list_after(c, w["conv"]))
    assert [a.sender for a in stored] == ["ann", "bot"]

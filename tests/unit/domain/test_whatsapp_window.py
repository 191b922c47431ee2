"""WhatsApp's 24-hour customer-service window, on an injected clock: a free-form reply within
24 hours of the customer's last inbound message is queued; 25 hours after it, 409
``outside_customer_service_window`` and nothing stored or queued; the same reply as a synced
template goes; a new inbound message opens the window again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import InboundMessage
from gateway.context import Gateway
from gateway.domain import Conflict
from gateway.domain import activities as activity_ops
from gateway.domain import channels as channel_ops
from gateway.domain import inbound as inbound_ops
from gateway.domain import tenants as tenant_ops
from gateway.domain.activities import NewActivity
from gateway.domain.errors import Unprocessable
from store import activities, channels, queue, templates
from store.util import iso

from .conftest import ADMIN

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TEMPLATE = {"name": "order_update", "language": "en_US", "components": [
    {"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}]}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> str:
        return iso(self.now)


@pytest.fixture
def clock(gw: Gateway) -> Clock:
    c = Clock()
    gw.now_iso = c
    return c


async def _thread(gw: Gateway) -> tuple[str, str, str]:
    tenant, _ = await tenant_ops.create(gw, ADMIN, name="shop")
    channel, _ = await channel_ops.create(gw, ADMIN, tenant_id=tenant.id, name="wa",
                                          type="whatsapp_meta", config={
        "phone_number_id": "1", "access_token": "t", "verify_token": "v",
        "app_secret": "s"})
    await gw.db.write(templates.replace, channel.id, tenant.id, [{
        "name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{1}}, it shipped."}]}], gw.now_iso())
    got = await inbound_ops.receive(gw, channel, InboundMessage(
        sender="16505550001", text="hello", external_id="wamid.1"))
    return tenant.id, channel.id, got.activity.conversation_id


async def _count(gw: Gateway, conv: str) -> int:
    return len((await gw.db.read(lambda c: activities.list_after_activity(c, conv, None,
                                                                          limit=100)))[0])


async def test_free_form_refused_after_24_hours_templates_still_go(
        gw: Gateway, clock: Clock) -> None:
    tenant, _, conv = await _thread(gw)
    clock.now = T0 + timedelta(hours=23, minutes=59)
    inside = await activity_ops.create(gw, tenant, conv, NewActivity(sender="agent", text="yes"))
    assert inside.deliveries == 1

    clock.now = T0 + timedelta(hours=25)
    handed = list(gw.delivery.calls)  # type: ignore[attr-defined]
    with pytest.raises(Conflict) as refused:
        await activity_ops.create(gw, tenant, conv, NewActivity(sender="agent", text="late"))
    assert refused.value.code == "outside_customer_service_window"
    assert "template" in refused.value.detail
    assert await _count(gw, conv) == 2  # the inbound message and the reply inside the window
    assert gw.delivery.calls == handed  # type: ignore[attr-defined]

    tpl = await activity_ops.create(gw, tenant, conv, NewActivity(
        sender="agent", type="template", metadata={"template": TEMPLATE}))
    assert tpl.created and tpl.deliveries == 1
    rows = await gw.db.read(lambda c: queue.for_activities(c, [tpl.activity.id]))
    assert [d.status for d in rows[tpl.activity.id]] == ["pending"]


async def test_a_new_inbound_message_reopens_the_window(gw: Gateway, clock: Clock) -> None:
    tenant, channel_id, conv = await _thread(gw)
    clock.now = T0 + timedelta(days=3)
    channel = await gw.db.read(channels.get, channel_id)
    await inbound_ops.receive(gw, channel, InboundMessage(sender="16505550001", text="again",
                                                          external_id="wamid.2"))
    clock.now = T0 + timedelta(days=3, hours=2)
    ok = await activity_ops.create(gw, tenant, conv, NewActivity(sender="agent", text="hi!"))
    assert ok.created


async def test_template_checked_against_the_synced_one(gw: Gateway, clock: Clock) -> None:
    tenant, _, conv = await _thread(gw)
    for bad, code in (({**TEMPLATE, "name": "nope"}, "unknown_template"),
                      ({**TEMPLATE, "components": []}, "invalid_template")):
        with pytest.raises(Unprocessable) as refused:
            await activity_ops.create(gw, tenant, conv, NewActivity(
                sender="agent", type="template", metadata={"template": bad}))
        assert refused.value.code == code
    assert await _count(gw, conv) == 1

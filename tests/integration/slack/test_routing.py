"""Routing to and from Slack: a WhatsApp customer's messages are routed to a Slack channel,
each conversation in a thread of its own; an agent's answer in that Slack thread comes back
into the WhatsApp conversation and reaches the customer — with one rule (WhatsApp → Slack),
since the pair of rules it would otherwise take is a cycle the routing rules refuse."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.slack.standins import SlackStandIn, message_event
from tests.integration.slack.test_slack import CHANNEL, SIGNING_SECRET, TOKEN, slack_channel
from tests.integration.telegram.conftest import conversations_of
from tests.integration.whatsapp.conftest import (
    META_TOKEN,
    PNID,
    VERIFY_TOKEN,
    activities,
    delivery_of,
    eventually,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification
from tests.support.api import Api
from tests.support.server import Server

_events = itertools.count(1)


@pytest.fixture
async def meta() -> AsyncIterator[MetaStandIn]:
    async with MetaStandIn(token=META_TOKEN, phone_number_id=PNID) as s:
        yield s  # type: ignore[misc]


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(TOKEN, SIGNING_SECRET, channels={CHANNEL}) as s:
        yield s  # type: ignore[misc]


async def world(api: Api, server: Server, meta: MetaStandIn,
                slack: SlackStandIn) -> dict[str, Any]:
    s = await slack_channel(api, slack, default_channel=CHANNEL)
    tenant = s["tenant"]
    wa = await api.channel(tenant["id"], name="whatsapp", type="whatsapp_meta", mode="duplex",
                           config={"phone_number_id": PNID, "access_token": META_TOKEN,
                                   "verify_token": VERIFY_TOKEN, "api_base_url": meta.url,
                                   "api_version": meta.version, "allow_unsigned": True})
    rule = {"routing_rule": {"name": "whatsapp-to-slack", "source_channel_id": wa["id"],
                             "target_channel_ids": [s["channel"]["id"]]}}
    await api.ok("POST", "/api/v1/routing_rules", 201, json=rule,
                 headers={"x-api-key": s["key"]})
    slack.webhook_url = f"{server.url}/api/v1/channels/{s['channel']['id']}/inbound"
    return {**s, "wa": wa, "slack": s["channel"]}


async def test_whatsapp_to_a_slack_thread_and_back(chat_server: Server, capi: Api,
                                                   meta: MetaStandIn, slack: SlackStandIn) -> None:
    w = await world(capi, chat_server, meta, slack)
    customer = new_phone()

    # 1. The customer writes on WhatsApp: the message is posted top-level in the Slack channel.
    status, body = await post_inbound(capi, w["wa"]["id"],
                                      meta_text_notification(customer, "My parcel is late"))
    assert status == 201, body
    conv_id, first_id = body["conversation_id"], body["activity_id"]
    await delivery_of(capi, first_id, lambda d: d["status"] == "sent"
                      and d["channel_id"] == w["slack"]["id"])
    (opened,) = slack.posted
    assert opened["channel"] == CHANNEL and "thread_ts" not in opened
    assert opened["text"] == "My parcel is late"
    assert meta.sent == []  # the customer's own message is not sent back to them

    # 2. The next message of that conversation goes into the same thread.
    _, body = await post_inbound(capi, w["wa"]["id"],
                                 meta_text_notification(customer, "Order 1234"))
    await delivery_of(capi, body["activity_id"], lambda d: d["status"] == "sent")
    assert slack.posted[-1]["thread_ts"] == opened["ts"]

    # 3. An agent answers in the Slack thread: the answer joins the WhatsApp conversation
    # and is sent to the customer, not posted back to Slack.
    status, body = await slack.notify(message_event(
        f"EvR{next(_events)}", CHANNEL, "U0AGENT", "It arrives tomorrow", "1700009999.000100",
        thread_ts=opened["ts"]))
    assert status == 201, body
    assert body["conversation_id"] == conv_id
    reply = await delivery_of(capi, body["activity_id"], lambda d: d["status"] == "sent")
    assert reply["channel_id"] == w["wa"]["id"]
    assert meta.sent[-1]["to"] == customer and meta.sent[-1]["text"] == "It arrives tomorrow"
    assert len(slack.posted) == 2
    acts = await activities(capi, w["key"], conv_id)
    assert [a["text"] for a in acts] == ["My parcel is late", "Order 1234", "It arrives tomorrow"]
    assert await conversations_of(capi, w["slack"]["id"]) == []  # no Slack-side conversation

    # 4. An answer posted through the REST API reaches both: the customer and the thread.
    agent = await capi.post_activity(conv_id, w["key"], text="Anything else?", sender="agent")
    await eventually(lambda: _all_sent(capi, agent["id"]), "both deliveries")
    assert meta.sent[-1]["text"] == "Anything else?"
    assert slack.posted[-1]["thread_ts"] == opened["ts"]

    # 5. Another customer gets a thread of their own.
    _, other = await post_inbound(capi, w["wa"]["id"],
                                  meta_text_notification(new_phone(), "Hello?"))
    await delivery_of(capi, other["activity_id"], lambda d: d["status"] == "sent")
    assert "thread_ts" not in slack.posted[-1] and slack.posted[-1]["ts"] != opened["ts"]


async def _all_sent(api: Api, activity_id: str) -> bool:
    rows = (await api.ok("GET", f"/api/admin/deliveries?activity_id={activity_id}",
                         headers=api.admin))["data"]
    return len(rows) == 2 and all(r["status"] == "sent" for r in rows)


async def test_the_reverse_rule_is_a_cycle(chat_server: Server, capi: Api, meta: MetaStandIn,
                                           slack: SlackStandIn) -> None:
    """Why the thread link exists: Slack → WhatsApp next to WhatsApp → Slack is refused."""
    w = await world(capi, chat_server, meta, slack)
    rule = {"routing_rule": {"name": "slack-to-whatsapp", "source_channel_id": w["slack"]["id"],
                             "target_channel_ids": [w["wa"]["id"]]}}
    status, body, _ = await capi.call("POST", "/api/v1/routing_rules", json=rule,
                                      headers={"x-api-key": w["key"]})
    assert status == 422 and "cycle" in str(body)


async def test_telegram_to_a_slack_thread_and_back(chat_server: Server, capi: Api,
                                                   slack: SlackStandIn) -> None:
    """The same with both new types: a Telegram chat routed to a Slack thread, the answer in
    the thread sent to the Telegram chat."""
    from tests.integration.telegram.standins import TelegramStandIn, text_update

    token, secret = "555000111:AAH-routing", "routing-secret"
    async with TelegramStandIn(token=token, chats={"4242"}) as bot:
        s = await slack_channel(capi, slack, default_channel=CHANNEL)
        tg = await capi.channel(s["tenant"]["id"], name="telegram", type="telegram", mode="duplex",
                                config={"bot_token": token, "secret_token": secret,
                                        "api_base_url": bot.url})
        await capi.ok("POST", f"/api/admin/channels/{tg['id']}/actions/set_webhook",
                      headers=capi.admin)
        rule = {"routing_rule": {"name": "telegram-to-slack", "source_channel_id": tg["id"],
                                 "target_channel_ids": [s["channel"]["id"]]}}
        await capi.ok("POST", "/api/v1/routing_rules", 201, json=rule,
                      headers={"x-api-key": s["key"]})
        slack.webhook_url = f"{chat_server.url}/api/v1/channels/{s['channel']['id']}/inbound"

        _, body = await bot.notify(text_update(900_001, 4242, "Is the shop open?"))
        conv_id = body["conversation_id"]
        await delivery_of(capi, body["activity_id"], lambda d: d["status"] == "sent")
        (opened,) = slack.posted
        assert opened["text"] == "Is the shop open?" and "thread_ts" not in opened

        _, answer = await slack.notify(message_event(
            f"EvT{next(_events)}", CHANNEL, "U0AGENT", "Until 6 pm", "1700019999.000100",
            thread_ts=opened["ts"]))
        assert answer["conversation_id"] == conv_id
        await delivery_of(capi, answer["activity_id"], lambda d: d["status"] == "sent")
        assert bot.sent[-1]["chat_id"] == "4242" and bot.sent[-1]["text"] == "Until 6 pm"
        assert len(slack.posted) == 1

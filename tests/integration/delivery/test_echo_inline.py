"""The echo bot, and the inline pipeline backend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.integration.delivery.conftest import deliveries, webhook_setup
from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api
from tests.support.server import Server


async def test_echo_answers_every_non_bot_message(dapi: Api) -> None:
    s = await dapi.setup("echoer", type="echo")
    conv, key = s["conversation"]["id"], s["api_key"]
    await dapi.post_activity(conv, key, text="from the bot", sender="bot")
    hello = await dapi.post_activity(conv, key, text="hello", sender="user", key="k-1")
    # No waiting: the reply was committed with the message, before the 201.
    path = f"/api/v1/conversations/{conv}/activities"
    items = (await dapi.ok("GET", path, headers={"x-api-key": key}))["data"]
    assert [(i["sender"], i["text"], i["seq"]) for i in items] == [
        ("bot", "from the bot", 1), ("user", "hello", 2), ("bot", "hello", 3)]
    # An idempotent replay of the message is the same activity, and no second reply.
    again = await dapi.post_activity(conv, key, text="hello", sender="user", key="k-1")
    assert again["id"] == hello["id"]
    assert len((await dapi.ok("GET", path, headers={"x-api-key": key}))["data"]) == 3
    # A message without text is answered too (with no text).
    await dapi.post_activity(conv, key, type="event", sender="user")
    items = (await dapi.ok("GET", path, headers={"x-api-key": key}))["data"]
    assert [(i["sender"], i["type"], i["text"]) for i in items[3:]] == [
        ("user", "event", None), ("bot", "message", None)]
    # Echo channels never get delivery rows (reference §10.1).
    assert await deliveries(dapi, activity_id=items[1]["id"]) == []


async def test_inline_pipeline_attempts_once_inside_the_request(
    tmp_path: Path, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    with Server(tmp_path / "inline", env={"CONVERGER_PIPELINE": "inline"}) as srv:
        api = Api(session, srv.url)
        s = await webhook_setup(api, receiver, "inline")
        a = await api.post_activity(s["conversation"]["id"], s["api_key"], text="now")
        (row,) = await deliveries(api, activity_id=a["id"])  # no waiting: done in the request
        assert (row["status"], row["attempts"]) == ("sent", 1)
        assert len(receiver.calls["inline"]) == 1
        receiver.plan("inline", (500, {}, 0))
        b = await api.post_activity(s["conversation"]["id"], s["api_key"], text="fails")
        (row,) = await deliveries(api, activity_id=b["id"])
        assert (row["status"], row["attempts"]) == ("failed", 1)
        # A retry by hand makes one more attempt.
        await api.ok("POST", f"/api/admin/deliveries/{row['id']}/retry", headers=api.admin)
        deadline = time.monotonic() + 10
        while (await deliveries(api, activity_id=b["id"]))[0]["status"] != "sent":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)

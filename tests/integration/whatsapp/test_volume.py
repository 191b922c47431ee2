"""A busy WhatsApp number: a provider may post many notifications a minute to one channel,
and none of them is refused (Meta and Infobip retry a refused webhook only later, and a
customer's message must not wait behind a limit meant for token minting)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.integration.whatsapp.conftest import activities, meta_channel, new_phone, post_inbound
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification
from tests.support.api import Api
from tests.support.server import Server


async def test_many_notifications_a_minute_on_one_channel(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    cid, phone = w["channel"]["id"], new_phone()
    results = await asyncio.gather(*(
        post_inbound(wapi, cid, meta_text_notification(phone, f"message {i}")) for i in range(40)))
    assert [s for s, _ in results] == [201] * 40, [b for s, b in results if s != 201][:2]
    conv = {b["conversation_id"] for _, b in results}
    assert len(conv) == 1
    assert len(await activities(wapi, w["api_key"], conv.pop())) == 40


async def test_the_inbound_limit_is_per_channel_and_configurable(
    tmp_path: Path, session: aiohttp.ClientSession, meta: MetaStandIn
) -> None:
    srv = Server(tmp_path / "data", env={"CONVERGER_RATE_LIMIT_INBOUND": "3"}).start()
    try:
        api = Api(session, srv.url)
        first, second = await meta_channel(api, meta), await meta_channel(api, meta)
        phone = new_phone()
        for _ in range(3):
            status, _ = await post_inbound(api, first["channel"]["id"],
                                           meta_text_notification(phone, "x"))
            assert status == 201
        status, body, headers = await api.call(
            "POST", f"/api/v1/channels/{first['channel']['id']}/inbound",
            json=meta_text_notification(phone, "one too many"))
        assert status == 429 and body["code"] == "rate_limited", body
        assert int(headers["Retry-After"]) >= 1
        # Another channel has a bucket of its own.
        status, _ = await post_inbound(api, second["channel"]["id"],
                                       meta_text_notification(phone, "y"))
        assert status == 201
    finally:
        srv.stop()

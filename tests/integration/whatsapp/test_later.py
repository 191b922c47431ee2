"""What happens hours later, on the real server with its clock moved forward
(``CONVERGER_CLOCK_FILE``, rewritten by the test; nothing sleeps):

* the signed link a provider was given for a gateway upload serves the file without credentials
  for an hour, and not after (401);
* a free-form reply 23 h 59 min after the customer's last message is delivered; 25 hours after
  it, 409 ``outside_customer_service_window`` — nothing stored, nothing queued, nothing sent —
  and the same reply as a synced template is delivered, as Meta documents it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.whatsapp.conftest import (
    activities,
    deliveries,
    delivery_of,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification
from tests.integration.whatsapp.test_templates import order_update
from tests.support.api import Api
from tests.support.server import Server

HOUR = 3600
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class ServerClock:
    """The server's clock offset, moved by replacing the file it reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(0)

    def set(self, seconds: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(seconds))
        os.replace(tmp, self.path)  # a new inode: the server reads it on its next look


@pytest.fixture(scope="module")
def later(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ServerClock]]:
    data = tmp_path_factory.mktemp("later")
    clock = ServerClock(data / "clock")
    srv = Server(data / "server", env={
        "CONVERGER_CLOCK_FILE": str(clock.path), "CONVERGER_BACKOFF_SCALE": "0.001",
        "CONVERGER_WEBHOOK_TIMEOUT": "2"}).start()
    yield srv, clock
    srv.stop()


async def _free_form(api: Api, w: dict[str, Any], text: str) -> tuple[int, Any]:
    status, body, _ = await api.call(
        "POST", f"/api/v1/conversations/{w['conversation_id']}/activities",
        json={"text": text, "sender": "agent"}, headers={"x-api-key": w["api_key"]})
    return status, body


async def test_links_expire_and_the_window_closes_after_24_hours(
        later: tuple[Server, ServerClock], session: aiohttp.ClientSession,
        meta: MetaStandIn) -> None:
    server, clock = later
    api = Api(session, server.url)
    w = await meta_channel(api, meta, business_account_id=meta.waba_id)
    cid = w["channel"]["id"]
    await api.ok("POST", f"/api/admin/channels/{cid}/actions/sync_templates", headers=api.admin)
    w["phone"] = new_phone()
    status, body = await post_inbound(api, cid, meta_text_notification(w["phone"], "hello?"))
    assert status == 201, body
    w["conversation_id"] = conv = body["conversation_id"]

    # An image uploaded to the gateway goes to Meta as a signed link to the gateway's copy.
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate",
                       headers={"authorization": f"Bearer {w['channel']['secret']}"})
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="aloe.png", content_type="image/png")
    up = await api.ok("POST", f"/api/v1/converger/conversations/{conv}/upload",
                      headers={"authorization": f"Bearer {gen['token']}"}, data=form)
    await delivery_of(api, up["id"], lambda d: d["status"] == "sent")
    [sent] = [r.body for r in meta.requests if r.path.endswith("/messages")]
    link = sent["image"]["link"]
    assert link.startswith(f"{server.url}/uploads/{w['tenant']['id']}/") and "&sig=" in link
    async with session.get(link) as r:  # no credentials: the link is its own
        assert r.status == 200 and await r.read() == PNG
    clock.set(HOUR - 60)
    async with session.get(link) as r:
        assert r.status == 200
    clock.set(HOUR + 60)
    async with session.get(link) as r:
        assert r.status == 401, await r.text()

    # 23 h 59 min after the customer wrote: a free-form reply still goes.
    clock.set(24 * HOUR - 60)
    status, inside = await _free_form(api, w, "still here")
    assert status == 201, inside
    await delivery_of(api, inside["data"]["id"], lambda d: d["status"] == "sent")

    # 25 hours after: refused at once; nothing stored, queued or sent.
    clock.set(25 * HOUR)
    stored = len(await activities(api, w["api_key"], conv))
    queued = len(await deliveries(api, channel_id=cid))
    sends = len([r for r in meta.requests if r.path.endswith("/messages")])
    status, refused = await _free_form(api, w, "too late")
    assert status == 409 and refused["code"] == "outside_customer_service_window", refused
    assert "template" in refused["detail"]
    assert len(await activities(api, w["api_key"], conv)) == stored
    assert len(await deliveries(api, channel_id=cid)) == queued
    assert len([r for r in meta.requests if r.path.endswith("/messages")]) == sends

    # The same reply as a template is delivered, as Meta documents it.
    tpl = await api.post_activity(conv, w["api_key"], type="template", sender="agent",
                                  metadata={"template": order_update()})
    await delivery_of(api, tpl["id"], lambda d: d["status"] == "sent")
    last = [r.body for r in meta.requests if r.path.endswith("/messages")][-1]
    assert last["type"] == "template" and last["to"] == w["phone"]
    assert last["template"]["name"] == "order_update"

    # The customer writes again (at the server's time): the window opens again.
    status, body = await post_inbound(api, cid, meta_text_notification(w["phone"], "thanks"))
    assert status == 201 and body["conversation_id"] == conv, body
    status, again = await _free_form(api, w, "you're welcome")
    assert status == 201, again

"""Twilio SMS on the real server against a stand-in Messages API: form webhooks signed the way
Twilio signs them (with twilio's own RequestValidator) over the URL Twilio posted to, answered
with empty TwiML; replies through the REST API sent form-encoded with basic auth to the sender's
number with a StatusCallback, whose callbacks move the delivery monotonically; retries
deduplicated; forged signatures refused with nothing stored; every error class through the
delivery queue — never a 500."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from adapters import sms_twilio
from tests.integration.sms.standins import (
    MediaStorage,
    Reply,
    TwilioStandIn,
    basic,
    sample,
    twilio_error,
)
from tests.integration.telegram.conftest import conversations_of, health_of, unique
from tests.integration.whatsapp.conftest import activities, delivery_of, eventually
from tests.support.api import Api
from tests.support.server import Server

SID = "AC" + "5ef8732a3c49700934481addd5ce1659"
TOKEN = "12345678901234567890abcdefabcdef"
NUMBER = "+14155550100"
CUSTOMER = "+14155551234"
_sids = itertools.count(1)


def message_sid() -> str:
    return f"SM{next(_sids):032x}"


def text(body: str, sender: str = CUSTOMER, sid: str | None = None) -> dict[str, str]:
    return {**sample("twilio_inbound_sms.json"), "Body": body, "From": sender,
            "MessageSid": sid or message_sid(), "AccountSid": SID}


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioStandIn]:
    async with TwilioStandIn(SID, TOKEN, NUMBER) as t:
        yield t  # type: ignore[misc]


async def twilio_channel(server: Server, api: Api, standin: TwilioStandIn,
                         **config: Any) -> dict[str, Any]:
    tenant = await api.tenant(unique("twilio"))
    cfg = {"account_sid": SID, "auth_token": TOKEN, "from": NUMBER,
           "api_base_url": standin.url, **config}
    channel = await api.channel(tenant["id"], name="sms", type="sms_twilio", mode="duplex",
                                config=cfg)
    # What the number's Messaging settings page does: "A message comes in" → this URL.
    standin.webhook_url = f"{server.url}/api/v1/channels/{channel['id']}/inbound"
    return {"tenant": tenant, "key": tenant["api_key"], "channel": channel}


def test_stand_in_signs_like_twilio() -> None:
    """The signature the tests send is twilio's own, and the adapter computes the same."""
    url = "https://sms.example.test/api/v1/channels/x/inbound?a=1"
    params = text("hi")
    standin = TwilioStandIn(SID, TOKEN, NUMBER)
    signature = standin.signature(url, params)
    assert RequestValidator(TOKEN).validate(url, params, signature)
    assert sms_twilio.sign(TOKEN, url, params) == signature
    assert not RequestValidator(TOKEN).validate(url + "&b=2", params, signature)


async def test_end_to_end_text_reply_and_receipts(chat_server: Server, capi: Api,
                                                  twilio: TwilioStandIn) -> None:
    s = await twilio_channel(chat_server, capi, twilio)
    cid = s["channel"]["id"]
    first = text("Hello! Is my order on its way?")
    status, ctype, body = await twilio.text_in(first)
    assert status == 201 and ctype == "text/xml"
    assert body == sms_twilio.EMPTY_TWIML
    (conv,) = await conversations_of(capi, cid)
    (act,) = await activities(capi, s["key"], conv["id"])
    assert (act["sender"], act["text"]) == (CUSTOMER, "Hello! Is my order on its way?")
    assert act["metadata"]["twilio_message_sid"] == first["MessageSid"]
    assert act["metadata"]["to"] == NUMBER

    # Twilio retries the same message (no answer in time): nothing new.
    status, ctype, body = await twilio.text_in(first)
    assert (status, ctype) == (200, "text/xml")
    assert len(await activities(capi, s["key"], conv["id"])) == 1

    twilio.auto_statuses = ["sent", "delivered"]
    reply = await capi.post_activity(conv["id"], s["key"], text="It ships today.", sender="agent")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "delivered")
    (sent,) = twilio.sent
    assert (sent["To"], sent["From"], sent["Body"]) == (CUSTOMER, NUMBER, "It ships today.")
    assert sent["StatusCallback"] == f"{chat_server.url}/api/v1/channels/{cid}/status"
    assert row["provider_message_id"] == sent["sid"]
    seen = twilio.requests[-1]
    assert seen.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert seen.headers["Authorization"] == basic(SID, TOKEN)
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    await twilio.settled()
    # Late and stale callbacks do not move it back; read moves it on.
    assert (await twilio.status(sent["sid"], "sent", CUSTOMER))[0] == 200
    assert (await twilio.status(sent["sid"], "read", CUSTOMER))[0] == 200
    assert (await twilio.status(sent["sid"], "queued", CUSTOMER))[0] == 200
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "read")
    assert row["delivered_at"] and row["read_at"]

    # The customer answers: the same conversation.
    status, _, _ = await twilio.text_in(text("Great, thanks"))
    assert status == 201
    assert [c["id"] for c in await conversations_of(capi, cid)] == [conv["id"]]


async def test_mms_media_and_attachments(chat_server: Server, capi: Api,
                                         twilio: TwilioStandIn) -> None:
    s = await twilio_channel(chat_server, capi, twilio)
    mms = {**sample("twilio_inbound_mms.json"), "MessageSid": message_sid(), "AccountSid": SID}
    status, _, _ = await twilio.text_in(mms)
    assert status == 201
    (conv,) = await conversations_of(capi, s["channel"]["id"])
    (act,) = await activities(capi, s["key"], conv["id"])
    assert [(a["type"], a["url"], a["mime_type"]) for a in act["attachments"]] == [
        ("image", mms["MediaUrl0"], "image/jpeg"), ("file", mms["MediaUrl1"], "application/pdf")]
    reply = await capi.post_activity(conv["id"], s["key"], text="Photo received", attachments=[
        {"type": "image", "contentType": "image/png",
         "contentUrl": "https://files.example.test/label.png"},
        {"contentType": "application/pdf", "contentUrl": "https://files.example.test/l.pdf"}])
    await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent")
    assert twilio.sent[-1]["MediaUrl"] == ["https://files.example.test/label.png",
                                           "https://files.example.test/l.pdf"]
    assert twilio.sent[-1]["Body"] == "Photo received"
    # What MMS cannot carry fails at once, without a request.
    before = len(twilio.requests)
    too_big = await capi.post_activity(conv["id"], s["key"], attachments=[
        {"type": "video", "contentType": "video/mp4", "size": 6_000_000,
         "contentUrl": "https://files.example.test/v.mp4"}])
    row = await delivery_of(capi, too_big["id"], lambda d: d["status"] == "failed")
    assert row["attempts"] == 1 and "at most" in row["last_error"]
    assert len(twilio.requests) == before


async def test_mms_files_downloaded_in_the_background(chat_server: Server, capi: Api,
                                                     twilio: TwilioStandIn) -> None:
    """An inbound MMS's files are downloaded as it comes in: the Media resource with the
    account's Basic credentials, then — Twilio redirects — the file from its storage without
    them; a media sid Twilio no longer has is a recorded failure; the activity is kept."""
    s = await twilio_channel(chat_server, capi, twilio)
    async with MediaStorage() as cdn:
        twilio.cdn = cdn  # type: ignore[assignment]
        cdn.files = {"ME1": (b"\xff\xd8\xff-box-photo", "image/jpeg"),
                     "ME2": (b"%PDF-1.7 label", "application/pdf")}
        msid = message_sid()
        media = f"{twilio.url}/2010-04-01/Accounts/{SID}/Messages/{msid}/Media"
        mms = {**text("Here is the damaged box", sid=msid), "NumMedia": "3",
               "MediaUrl0": f"{media}/ME1", "MediaContentType0": "image/jpeg",
               "MediaUrl1": f"{media}/ME2", "MediaContentType1": "application/pdf",
               "MediaUrl2": f"{media}/ME3", "MediaContentType2": "image/png"}
        status, _, _ = await twilio.text_in(mms)
        assert status == 201
        (conv,) = await conversations_of(capi, s["channel"]["id"])

        async def settled() -> list[dict[str, Any]] | None:
            (act,) = await activities(capi, s["key"], conv["id"])
            atts: list[dict[str, Any]] = act["attachments"]
            return atts if all(a.get("status") in ("stored", "failed") for a in atts) else None
        photo, label, gone = await eventually(settled, "the MMS files' downloads", timeout=20)
    assert (photo["status"], photo["contentType"], label["status"], label["contentType"]) == (
        "stored", "image/jpeg", "stored", "application/pdf"), (photo, label)
    assert gone["status"] == "failed" and "returned 404" in gone["error"], gone
    for att, content in ((photo, b"\xff\xd8\xff-box-photo"), (label, b"%PDF-1.7 label")):
        async with capi.session.get(capi.base + att["contentUrl"],
                                    headers={"x-api-key": s["key"]}) as r:
            assert r.status == 200 and await r.read() == content
    resources = [r for r in twilio.requests if "/Media/" in r.path]
    assert sorted(r.path.rsplit("/", 1)[-1] for r in resources) == ["ME1", "ME2", "ME3"]
    assert all(r.headers["Authorization"] == basic(SID, TOKEN) for r in resources)
    assert sorted(r.path.rsplit("/", 1)[-1] for r in cdn.requests) == ["ME1", "ME2"]
    assert not any("Authorization" in r.headers for r in cdn.requests)  # never left Twilio


async def test_forged_and_misdirected_signatures_store_nothing(
        chat_server: Server, capi: Api, twilio: TwilioStandIn) -> None:
    s = await twilio_channel(chat_server, capi, twilio)
    cid = s["channel"]["id"]
    params = text("forged")
    url = twilio.webhook_url
    assert url
    for signature in ("", "AAAA", RequestValidator("wrong-token").compute_signature(url, params),
                      # signed for another URL (another channel's) or other fields
                      twilio.signature(url.replace(cid, "00000000-0000-4000-8000-000000000000"),
                                       params),
                      twilio.signature(url, {**params, "Body": "original"})):
        status, ctype, body = await twilio.text_in(params, signature=signature)
        assert status == 401 and "invalid_signature" in body, (signature, body)
    assert await conversations_of(capi, cid) == []
    # A status callback with a forged signature moves nothing either.
    status, _, body = await twilio.post_form(url.replace("/inbound", "/status"),
                                             twilio.status_payload("SMx", "delivered", CUSTOMER),
                                             signature="AAAA")
    assert status == 401


async def test_malformed_forms_are_400(chat_server: Server, capi: Api,
                                       twilio: TwilioStandIn) -> None:
    s = await twilio_channel(chat_server, capi, twilio)
    url = twilio.webhook_url
    assert url
    for params in ({"Body": "no sender"}, {"From": CUSTOMER}, {}):
        status, ctype, body = await twilio.text_in(params)
        assert status == 400 and "unparseable_inbound" in body, (params, body)
    async with aiohttp.ClientSession() as http:
        for raw in (b"%ff%fe=%zz&&&=", b"\xff\xfe\x00", "Body=é".encode("latin-1")):
            async with http.post(url, data=raw, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": "AAAA"}) as resp:
                assert resp.status in (400, 401), await resp.text()
    assert await conversations_of(capi, s["channel"]["id"]) == []


async def test_error_classes(chat_server: Server, capi: Api, twilio: TwilioStandIn) -> None:
    s = await twilio_channel(chat_server, capi, twilio)
    cid = s["channel"]["id"]
    status, _, _ = await twilio.text_in(text("hi"))
    assert status == 201
    (conv,) = await conversations_of(capi, cid)

    async def send(body: str, **meta: Any) -> dict[str, Any]:
        return await capi.post_activity(conv["id"], s["key"], text=body, metadata=meta)

    # An invalid number and an unsubscribed recipient fail at once, with Twilio's message.
    bad = await send("x", to="+1415")
    row = await delivery_of(capi, bad["id"], lambda d: d["status"] == "failed")
    assert row["attempts"] == 1 and "21211" in row["last_error"]
    twilio.unsubscribed.add("+14155559999")
    stop = await send("x", to="+14155559999")
    row = await delivery_of(capi, stop["id"], lambda d: d["status"] == "failed")
    assert row["attempts"] == 1 and "21610" in row["last_error"]
    # Rate limits, Twilio's own 5xx and a stall are retried on the schedule, then sent.
    twilio.script = [Reply(429, twilio_error(20429, "Too Many Requests", 429)),
                     Reply(503, twilio_error(20503, "Service unavailable", 503)),
                     Reply(200, {}, delay=3.0)]
    retried = await send("retried")
    row = await delivery_of(capi, retried["id"], lambda d: d["status"] == "sent", timeout=30)
    assert row["attempts"] == 4
    assert twilio.sent[-1]["Body"] == "retried"
    # Wrong credentials: failed, and the channel is unhealthy.
    twilio.auth_token = "rotated"
    denied = await send("denied")
    row = await delivery_of(capi, denied["id"], lambda d: d["status"] == "failed")
    assert "20003" in row["last_error"]
    await eventually(lambda: _unhealthy(capi, cid), "channel unhealthy")


async def _unhealthy(api: Api, channel_id: str) -> bool:
    return await health_of(api, channel_id) == "unhealthy"


async def test_undelivered_status_fails_the_delivery(chat_server: Server, capi: Api,
                                                     twilio: TwilioStandIn) -> None:
    s = await twilio_channel(chat_server, capi, twilio)
    status, _, _ = await twilio.text_in(text("hi"))
    (conv,) = await conversations_of(capi, s["channel"]["id"])
    twilio.auto_statuses = ["sent", "undelivered"]
    reply = await capi.post_activity(conv["id"], s["key"], text="are you there?")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "failed")
    assert row["last_error"] == "Twilio error 30003: Unreachable destination handset"
    await twilio.settled()
    # A delivered that comes after does not undo the failure.
    assert (await twilio.status(twilio.sent[-1]["sid"], "delivered", CUSTOMER))[0] == 200
    assert (await delivery_of(capi, reply["id"], lambda d: True))["status"] == "failed"


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gateway behind a proxy: Twilio sees CONVERGER_PUBLIC_URL, not the loopback address."""
    srv = Server(tmp_path_factory.mktemp("twilio-public"),
                 env={"CONVERGER_PUBLIC_URL": "https://sms.example.test/gw"}).start()
    yield srv
    srv.stop()


async def test_signature_over_the_public_url(public_server: Server,
                                             session: aiohttp.ClientSession,
                                             twilio: TwilioStandIn) -> None:
    api = Api(session, public_server.url)
    s = await twilio_channel(public_server, api, twilio)
    path = f"/api/v1/channels/{s['channel']['id']}/inbound"
    params = text("via the proxy")
    seen_by_twilio = f"https://sms.example.test/gw{path}"
    # Signed over the loopback URL it was really posted to: refused.
    status, _, _ = await twilio.text_in(params)
    assert status == 401
    async with session.post(public_server.url + path, data=urlencode(params).encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio.signature(seen_by_twilio, params)}) as resp:
        assert resp.status == 201, await resp.text()
    # With the default port written out, as Twilio's validator also accepts.
    params = text("again")
    async with session.post(public_server.url + path, data=urlencode(params).encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio.signature(
                seen_by_twilio.replace(".test/", ".test:443/"), params)}) as resp:
        assert resp.status == 201, await resp.text()

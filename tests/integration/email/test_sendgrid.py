"""SendGrid on the real server against a stand-in Mail Send API: Inbound Parse posts (parsed
fields and raw MIME, basic auth) become conversations; replies go out through v3 mail send
addressed to the customer with the threading headers; the signed Event Webhook (signing checked
against the official sendgrid package's EventWebhook) moves deliveries to delivered and read;
forged or stale requests → 401 with nothing stored; every error class through the queue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook

from tests.integration.email.standins import Reply, SendgridStandIn, sample, sg_errors
from tests.integration.telegram.conftest import (
    capi,
    chat_server,
    conversations_of,
    health_of,
    unique,
)
from tests.integration.whatsapp.conftest import activities, delivery_of, eventually
from tests.support.api import Api
from tests.support.server import Server

__all__ = ["capi", "chat_server"]
KEY = "SG.integration.key"
FROM = "support@shop.example"
INBOX = "support@parse.shop.example"
USER, PASSWORD = "sendgrid", "parse-secret-1"


@pytest.fixture
async def sg() -> AsyncIterator[SendgridStandIn]:
    async with SendgridStandIn(KEY, {FROM}) as s:
        yield s  # type: ignore[misc]


async def sg_channel(server: Server, api: Api, standin: SendgridStandIn) -> dict[str, Any]:
    tenant = await api.tenant(unique("sendgrid"))
    channel = await api.channel(tenant["id"], name="mail", type="email_sendgrid", mode="duplex",
                                config={"api_key": KEY, "from_address": FROM,
                                        "from_name": "Shop Support", "inbound_address": INBOX,
                                        "webhook_username": USER, "webhook_password": PASSWORD,
                                        "event_public_key": standin.public_key,
                                        "api_base_url": standin.url})
    base = f"{server.url}/api/v1/channels/{channel['id']}"
    return {"tenant": tenant, "key": tenant["api_key"], "channel": channel,
            "inbound": f"{base}/inbound", "status": f"{base}/status"}


def test_stand_in_signs_like_sendgrid() -> None:
    standin = SendgridStandIn(KEY, {FROM})
    raw = json.dumps(sample("sendgrid_events.json")).encode()
    headers = standin.event_headers(raw)
    verifier = EventWebhook(standin.public_key)
    assert verifier.verify_signature(raw.decode(), headers["X-Twilio-Email-Event-Webhook-Signature"],
                                     headers["X-Twilio-Email-Event-Webhook-Timestamp"])
    assert not verifier.verify_signature(raw.decode() + " ",
                                         headers["X-Twilio-Email-Event-Webhook-Signature"],
                                         headers["X-Twilio-Email-Event-Webhook-Timestamp"])


async def test_end_to_end(chat_server: Server, capi: Api, sg: SendgridStandIn) -> None:
    s = await sg_channel(chat_server, capi, sg)
    status, body = await sg.parse(s["inbound"], sample("sendgrid_parse.json"), user=USER,
                                  password=PASSWORD, files={"attachment1": (
                                      "receipt.pdf", "application/pdf", b"%PDF-1.4 r")})
    assert status == 201, body
    conv_id = body["conversation_id"]
    (act,) = await activities(capi, s["key"], conv_id)
    assert (act["sender"], act["metadata"]["subject"]) == ("jane@customer.example",
                                                           "Where is my order 4711?")
    assert act["text"].startswith("Hello,\n\nI ordered on Monday")
    assert [(a["name"], a["content_type"]) for a in act["attachments"]] == [
        ("receipt.pdf", "application/pdf")]
    # Inbound Parse posts the same mail again (our answer was slow): nothing new.
    status, again = await sg.parse(s["inbound"], sample("sendgrid_parse.json"), user=USER,
                                   password=PASSWORD)
    assert status == 200 and again["duplicate"] is True

    reply = await capi.post_activity(conv_id, s["key"], text="It ships today.", sender="agent")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent")
    (sent,) = sg.sent
    seen = sg.requests[-1]
    assert seen.path == "/v3/mail/send" and seen.headers["Authorization"] == f"Bearer {KEY}"
    assert sent["personalizations"] == [{"to": [{"email": "jane@customer.example"}]}]
    assert sent["from"] == {"email": FROM, "name": "Shop Support"}
    assert sent["subject"] == "Re: Where is my order 4711?"
    parent = "<CAN_P_JMvV7ZpAQhOnDienypLrJmuhN=LQWweu4yScw4jQyXY2w@mail.customer.example>"
    assert sent["headers"]["In-Reply-To"] == parent
    assert sent["headers"]["References"] == parent
    assert sent["headers"]["Message-ID"].startswith(f"<cv.{conv_id}.{reply['id']}@shop.example")
    assert [c["type"] for c in sent["content"]] == ["text/plain", "text/html"]
    assert sent["content"][0]["value"].strip() == "It ships today."
    assert sent["custom_args"] == {"converger_delivery_id": row["id"]}
    assert row["provider_message_id"] == sent["x_message_id"]

    events = sample("sendgrid_events.json")
    for e in events:
        e["sg_message_id"] = sent["x_message_id"] + ".filter0001.16648.5515E0B88.0"
        e["converger_delivery_id"] = row["id"]
    status, answer = await sg.events(s["status"], events)
    assert status == 200 and answer["receipts_processed"] == 3
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "read")
    assert row["delivered_at"]

    # Jane answers (raw MIME posted): In-Reply-To our Message-ID → the same conversation.
    raw = sample("sendgrid_parse_raw.json")
    ours = sent["headers"]["Message-ID"]
    raw["email"] = (f"From: Jane <jane@customer.example>\r\nTo: {INBOX}\r\n"
                    "Subject: Re: Where is my order 4711?\r\nMessage-ID: <jane.2@customer.example>\r\n"
                    f"In-Reply-To: {ours}\r\nReferences: {parent} {ours}\r\n\r\nThanks!\r\n")
    status, body = await sg.parse(s["inbound"], raw, user=USER, password=PASSWORD)
    assert status == 201 and body["conversation_id"] == conv_id


async def test_forged_and_stale_store_nothing(chat_server: Server, capi: Api,
                                              sg: SendgridStandIn) -> None:
    s = await sg_channel(chat_server, capi, sg)
    for user, password in ((USER, "wrong"), ("other", PASSWORD)):
        status, body = await sg.parse(s["inbound"], sample("sendgrid_parse.json"), user=user,
                                      password=password)
        assert status == 401 and body["code"] == "invalid_signature"
    assert await conversations_of(capi, s["channel"]["id"]) == []
    events = sample("sendgrid_events.json")
    raw = json.dumps(events).encode()
    headers = sg.event_headers(raw)
    forged = {**headers, "X-Twilio-Email-Event-Webhook-Signature":
              SendgridStandIn(KEY, set()).event_headers(raw)["X-Twilio-Email-Event-Webhook-Signature"]}
    status, body = await sg.events(s["status"], events, headers=forged)
    assert status == 401
    sg.clock_skew = -3600
    status, body = await sg.events(s["status"], events)
    assert status == 401
    # Malformed bodies: 400, never 500.
    sg.clock_skew = 0
    status, body = await sg.parse(s["inbound"], {"subject": "no headers"}, user=USER,
                                  password=PASSWORD)
    assert status == 400 and body["code"] == "unparseable_inbound"
    status, body = await sg.events(s["status"], [{"event": 5}])
    assert status == 400


async def test_error_classes(chat_server: Server, capi: Api, sg: SendgridStandIn) -> None:
    s = await sg_channel(chat_server, capi, sg)
    status, body = await sg.parse(s["inbound"], sample("sendgrid_parse.json"), user=USER,
                                  password=PASSWORD)
    conv_id = body["conversation_id"]
    sg.script = [Reply(429, sg_errors("too many requests")), Reply(500, sg_errors("oops"))]
    retried = await capi.post_activity(conv_id, s["key"], text="retried")
    row = await delivery_of(capi, retried["id"], lambda d: d["status"] == "sent", timeout=30)
    assert row["attempts"] == 3
    sg.script = [Reply(400, sg_errors("Does not contain a valid address.",
                                      "personalizations.0.to.0.email"))]
    bad = await capi.post_activity(conv_id, s["key"], text="x")
    row = await delivery_of(capi, bad["id"], lambda d: d["status"] == "failed")
    assert row["attempts"] == 1
    assert "Does not contain a valid address. (personalizations.0.to.0.email)" in row["last_error"]
    sg.script = [Reply(413, sg_errors("The JSON payload you have included in your request is "
                                      "too large."))]
    big = await capi.post_activity(conv_id, s["key"], text="big")
    row = await delivery_of(capi, big["id"], lambda d: d["status"] == "failed")
    assert "too large" in row["last_error"]
    sg.api_key = "rotated"
    denied = await capi.post_activity(conv_id, s["key"], text="denied")
    row = await delivery_of(capi, denied["id"], lambda d: d["status"] == "failed")
    assert "401" in row["last_error"]
    await eventually(lambda: _unhealthy(capi, s["channel"]["id"]), "channel unhealthy")
    # A bounce event fails a sent delivery with SendGrid's reason.
    sg.api_key = KEY
    sent = await capi.post_activity(conv_id, s["key"], text="bounces")
    row = await delivery_of(capi, sent["id"], lambda d: d["status"] == "sent")
    bounce = sample("sendgrid_events_bounce.json")
    bounce[0]["sg_message_id"] = row["provider_message_id"] + ".filter0001.1.2.0"
    status, _ = await sg.events(s["status"], bounce)
    assert status == 200
    row = await delivery_of(capi, sent["id"], lambda d: d["status"] == "failed")
    assert row["last_error"].startswith("SendGrid bounce: 550 5.1.1")


async def _unhealthy(api: Api, channel_id: str) -> bool:
    return await health_of(api, channel_id) == "unhealthy"


async def test_broken_multipart_is_400(chat_server: Server, capi: Api, sg: SendgridStandIn) -> None:
    """A form Sanic cannot read, or one without the fields a mail needs: 400, never 500."""
    import base64

    import aiohttp

    s = await sg_channel(chat_server, capi, sg)
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    bodies: list[tuple[bytes, str, int]] = [
        (b"--xx\r\nContent-Disposition: form-data; name=\"headers\"\r\n\r\nFrom: a@b.example",
         "multipart/form-data; boundary=xx", 400),  # never closed
        (b"garbage", "multipart/form-data", 400),  # no boundary
        (b"\xff\xfe--yy--", "multipart/form-data; boundary=yy", 400),
        # Bytes that are not UTF-8 in a field: replaced, the mail taken.
        (b"headers=From%3A+a%40b.example&from=a%40b.example&text=%ff%fe",
         "application/x-www-form-urlencoded", 201),
    ]
    async with aiohttp.ClientSession() as http:
        for raw, ctype, expected in bodies:
            async with http.post(s["inbound"], data=raw, headers={
                    "Content-Type": ctype, "Authorization": auth}) as resp:
                text = await resp.text()
                assert resp.status == expected, (ctype, resp.status, text)

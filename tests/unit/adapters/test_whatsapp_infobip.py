"""The Infobip WhatsApp adapter against a stand-in Infobip server on loopback: the documented
request and answers, error classification, and parsing of incoming messages and of delivery
and seen reports (reference §10.5 status groups)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters import get
from adapters.base import ChannelInfo, InboundError, OutboundActivity
from adapters.whatsapp_infobip import WhatsAppInfobipAdapter
from tests.integration.whatsapp.standins import InfobipStandIn, Reply, infobip_error, sample
from tests.support.server import free_port

ADAPTER = WhatsAppInfobipAdapter()
KEY = "ib-api-key-0123"
SENDER = "447860099299"


def channel(base: str = "https://xyz.api.infobip.com", **config: Any) -> ChannelInfo:
    cfg = {"base_url": base, "api_key": KEY, "sender": SENDER, **config}
    return ChannelInfo(id="ch-2", tenant_id="t-1", name="ib", type="whatsapp_infobip",
                       mode="duplex", config=cfg, secret="whsec_x")


def activity(text: str | None = "Your parcel ships today", thread_sender: str | None = None,
             **metadata: Any) -> OutboundActivity:
    return OutboundActivity(
        id="act-2", type="message", sender="agent", text=text, attachments=[], metadata=metadata,
        conversation_id="conv-2", tenant_id="t-1", timestamp="2026-11-25T09:00:00.000000Z",
        delivery_id="del-2", thread_sender=thread_sender,
    )


@pytest.fixture
async def infobip() -> AsyncIterator[InfobipStandIn]:
    async with InfobipStandIn(api_key=KEY, sender=SENDER) as s:
        yield s  # type: ignore[misc]


# -- config ------------------------------------------------------------------------------------
def test_registered() -> None:
    assert isinstance(get("whatsapp_infobip"), WhatsAppInfobipAdapter)
    assert ADAPTER.delivers and ADAPTER.secret_fields == ("api_key", "webhook_password")


@pytest.mark.parametrize("config, message", [
    ({}, "whatsapp_infobip config missing: base_url, api_key, sender"),
    ({"base_url": "https://x.api.infobip.com", "api_key": None, "sender": ""},
     "whatsapp_infobip config missing: api_key, sender"),
    ({"base_url": "x.api.infobip.com", "api_key": "k", "sender": SENDER},
     "whatsapp_infobip config 'base_url' must be a valid HTTP/HTTPS URL"),
    ({"base_url": "https://x.api.infobip.com", "api_key": "k", "sender": SENDER,
      "timeout_seconds": 0}, "whatsapp_infobip config 'timeout_seconds' must be a number between 0 and 30"),
    ({"base_url": "https://x.api.infobip.com", "api_key": "k", "sender": SENDER,
      "webhook_username": "u"},
     "whatsapp_infobip config 'webhook_username' and 'webhook_password' must be given together, "
     "as non-empty strings"),
    ({"base_url": "https://x.api.infobip.com", "api_key": "k", "sender": SENDER,
      "webhook_username": "u", "webhook_password": 5},
     "whatsapp_infobip config 'webhook_username' and 'webhook_password' must be given together, "
     "as non-empty strings"),
    ({"base_url": "https://x.api.infobip.com", "api_key": "k", "sender": SENDER,
      "webhook_username": "a:b", "webhook_password": "p"},
     "whatsapp_infobip config 'webhook_username' must not contain ':'"),
])
def test_invalid_config(config: dict[str, Any], message: str) -> None:
    assert ADAPTER.validate_config(config) == message


def test_valid_config() -> None:
    assert ADAPTER.validate_config(channel().config) is None
    assert ADAPTER.validate_config(channel(timeout_seconds=2.5).config) is None
    assert ADAPTER.validate_config(channel(webhook_username="ib", webhook_password="pw").config) is None


# -- outbound ----------------------------------------------------------------------------------
async def test_send_text_as_documented(infobip: InfobipStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(infobip.url + "/"),
                                   activity(recipient_phone="385919998888"))
    assert result.ok is True, result.error
    assert result.provider_message_id == infobip.sent[0]["id"]
    assert result.metadata["infobip_message_id"] == infobip.sent[0]["id"]
    [req] = infobip.requests
    assert req.method == "POST" and req.path == "/whatsapp/1/message/text"
    assert req.headers["Authorization"] == f"App {KEY}"
    assert req.headers["Content-Type"].startswith("application/json")
    assert req.body == {"from": SENDER, "to": "385919998888",
                        "content": {"text": "Your parcel ships today"}}


async def test_bulk_answer_shape_messages_0(infobip: InfobipStandIn,
                                            session: aiohttp.ClientSession) -> None:
    infobip.script.append(Reply(200, {"messages": [{"to": "385919998888", "messageId": "BULK-1",
                                                    "status": {"groupName": "PENDING"}}],
                                      "bulkId": "b-1"}))
    result = await ADAPTER.deliver(session, channel(infobip.url), activity(to="385919998888"))
    assert result.ok and result.provider_message_id == "BULK-1"


async def test_any_2xx_is_success(infobip: InfobipStandIn, session: aiohttp.ClientSession) -> None:
    infobip.script.append(Reply(201, sample("infobip_send_response.json")))
    result = await ADAPTER.deliver(session, channel(infobip.url), activity(to="385919998888"))
    assert result.ok and result.provider_message_id == "a28dd97c-1ffb-4fcf-99f1-0b557ed381da"


async def test_thread_sender_is_the_fallback(infobip: InfobipStandIn,
                                             session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(infobip.url),
                                   activity(thread_sender="385919997777"))
    assert result.ok and infobip.requests[0].body["to"] == "385919997777"


async def test_no_recipient_fails_at_once(infobip: InfobipStandIn,
                                          session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(infobip.url), activity())
    assert (result.ok, result.retryable) == (False, False)
    assert "'recipient_phone' or 'to' for Infobip delivery" in result.error
    assert infobip.requests == []


async def test_bad_key_401_is_final(infobip: InfobipStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(infobip.url, api_key="wrong"),
                                   activity(to="385919998888"))
    assert (result.ok, result.retryable) == (False, False)
    assert result.error == "Infobip API returned 401: Invalid login details [UNAUTHORIZED]"


async def test_bad_recipient_400_is_final(infobip: InfobipStandIn,
                                          session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(infobip.url), activity(to="12"))
    assert (result.ok, result.retryable) == (False, False)
    assert result.error == ("Infobip API returned 400: Bad request (to: invalid destination "
                            "address) [BAD_REQUEST]")


async def test_newer_error_shape(infobip: InfobipStandIn, session: aiohttp.ClientSession) -> None:
    infobip.script.append(Reply(400, {"errorCode": "E400", "description": "Request cannot be processed.",
                                      "action": "Check the syntax", "violations": [
                                          {"property": "to", "violation": "size must be between 1 and 24"}],
                                      "resources": []}))
    result = await ADAPTER.deliver(session, channel(infobip.url), activity(to="385919998888"))
    assert result.retryable is False
    assert result.error == ("Infobip API returned 400: Request cannot be processed. "
                            "(to: size must be between 1 and 24) [E400]")


async def test_404_is_final(infobip: InfobipStandIn, session: aiohttp.ClientSession) -> None:
    infobip.script.append(Reply(404, infobip_error("NOT_FOUND", "Requested URL not found")))
    result = await ADAPTER.deliver(session, channel(infobip.url), activity(to="385919998888"))
    assert (result.ok, result.retryable) == (False, False)


async def test_429_is_retryable_with_retry_after(infobip: InfobipStandIn,
                                                 session: aiohttp.ClientSession) -> None:
    infobip.script.append(Reply(429, infobip_error("TOO_MANY_REQUESTS", "Too many requests"),
                                {"Retry-After": "12"}))
    result = await ADAPTER.deliver(session, channel(infobip.url), activity(to="385919998888"))
    assert (result.ok, result.retryable, result.retry_after) == (False, True, 12.0)
    assert "Too many requests" in result.error


async def test_500_is_retryable(infobip: InfobipStandIn, session: aiohttp.ClientSession) -> None:
    infobip.script.append(Reply(500, infobip_error("GENERAL_ERROR", "Something went wrong")))
    result = await ADAPTER.deliver(session, channel(infobip.url), activity(to="385919998888"))
    assert (result.ok, result.retryable) == (False, True)
    assert result.error == "Infobip API returned 500: Something went wrong [GENERAL_ERROR]"


async def test_timeout_is_retryable(infobip: InfobipStandIn, session: aiohttp.ClientSession) -> None:
    infobip.script.append(Reply(200, sample("infobip_send_response.json"), delay=1.0))
    result = await ADAPTER.deliver(session, channel(infobip.url, timeout_seconds=0.2),
                                   activity(to="385919998888"))
    assert (result.ok, result.retryable) == (False, True)
    assert result.error == "Infobip API request failed: timeout after 0.2s"


async def test_connection_refused_is_retryable(session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(f"http://127.0.0.1:{free_port()}"),
                                   activity(to="385919998888"))
    assert (result.ok, result.retryable) == (False, True)
    assert result.error.startswith("Infobip API request failed: ")


# -- inbound -----------------------------------------------------------------------------------
def test_text_sample() -> None:
    [m] = ADAPTER.parse_inbound(sample("infobip_inbound_text.json"))
    assert (m.sender, m.text, m.type, m.external_id) == (
        "385919998888", "Hi, is my order on its way?", "message", "ABEGOFl3Vb2IEwLWvT7Qz2y1Cbgz")
    assert m.metadata == {"infobip_message_id": "ABEGOFl3Vb2IEwLWvT7Qz2y1Cbgz",
                          "whatsapp_type": "text", "received_at": "2026-03-02T12:00:00.000+0000",
                          "to": SENDER, "profile_name": "Frank"}
    assert ADAPTER.parse_status(sample("infobip_inbound_text.json")) is None


def test_every_result_every_type() -> None:
    msgs = ADAPTER.parse_inbound(sample("infobip_inbound_mixed.json"))
    by_id = {m.external_id: m for m in msgs}
    assert list(by_id) == ["IB-IMG-1", "IB-DOC-1", "IB-VOICE-1", "IB-LOC-1", "IB-BTN-1",
                           "IB-IBR-1", "IB-CONTACT-1"]
    img = by_id["IB-IMG-1"]
    assert img.text == "the parcel" and img.attachments == [
        {"type": "image", "url": "https://api.infobip.com/whatsapp/1/senders/447860099299/media/1001",
         "caption": "the parcel"}]
    assert by_id["IB-DOC-1"].attachments[0]["type"] == "document"
    assert by_id["IB-VOICE-1"].text is None and by_id["IB-VOICE-1"].attachments[0]["type"] == "voice"
    loc = by_id["IB-LOC-1"]
    assert loc.sender == "385919997777" and loc.text == "Trg bana Jelačića"
    assert loc.attachments[0]["latitude"] == pytest.approx(45.815)
    btn = by_id["IB-BTN-1"]
    assert btn.text == "Track my order" and btn.metadata["reply_to"] == "OUT-1"
    assert btn.attachments == [{"type": "button", "text": "Track my order", "payload": "TRACK_ORDER"}]
    assert by_id["IB-IBR-1"].text == "Yes"
    assert by_id["IB-IBR-1"].attachments[0]["reply_type"] == "interactive_button_reply"
    assert by_id["IB-CONTACT-1"].attachments[0]["contacts"][0]["phones"][0]["phone"] == "385911112222"


def test_unknown_types_are_kept() -> None:
    payload = sample("infobip_inbound_text.json")
    payload["results"][0]["message"] = {"type": "ORDER", "catalogId": "c-1", "productItems": []}
    [m] = ADAPTER.parse_inbound(payload)
    assert m.attachments == [{"type": "order", "data": {"catalogId": "c-1", "productItems": []}}]


def test_unknown_fields_are_ignored() -> None:
    payload = sample("infobip_inbound_text.json")
    payload["newTopLevel"] = True
    payload["results"][0]["identity"] = {"hash": "x"}
    payload["results"][0]["message"]["somethingNew"] = 1
    [m] = ADAPTER.parse_inbound(payload)
    assert m.text == "Hi, is my order on its way?" and "identity" not in m.metadata


MALFORMED: list[Any] = [
    None, [], "x", {}, {"results": {}}, {"results": []}, {"results": ["junk", 1]},
    {"results": [{"from": "385919998888", "messageId": "m"}]},  # no message object
    sample("meta_inbound_text.json"), sample("infobip_send_response.json"),
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_malformed_or_foreign(payload: Any) -> None:
    with pytest.raises(InboundError, match="unable to parse Infobip webhook payload"):
        ADAPTER.parse_inbound(payload)
    assert ADAPTER.parse_status(payload) is None


def test_reports_are_not_messages() -> None:
    for name in ("infobip_delivery_report.json", "infobip_seen_report.json"):
        with pytest.raises(InboundError, match="no incoming messages"):
            ADAPTER.parse_inbound(sample(name))


# -- reports -----------------------------------------------------------------------------------
def test_delivery_report_sample() -> None:
    [u] = ADAPTER.parse_status(sample("infobip_delivery_report.json"))
    assert (u.status, u.provider_message_id, u.timestamp, u.recipient_id, u.error) == (
        "delivered", "a28dd97c-1ffb-4fcf-99f1-0b557ed381da", "2026-03-02T12:00:05.000+0000",
        "385919998888", None)


def test_seen_report_sample() -> None:
    [u] = ADAPTER.parse_status(sample("infobip_seen_report.json"))
    assert (u.status, u.provider_message_id, u.timestamp) == (
        "read", "a28dd97c-1ffb-4fcf-99f1-0b557ed381da", "2026-03-02T12:01:00.000+0000")


def test_every_report_and_the_status_groups() -> None:
    updates = ADAPTER.parse_status(sample("infobip_reports_multi.json"))
    assert [(u.provider_message_id, u.status) for u in updates] == [
        ("IB-OUT-1", "sent"), ("IB-OUT-2", "failed"), ("IB-OUT-3", "failed"),
        ("IB-OUT-4", "sent"), ("IB-OUT-5", "read")]
    assert updates[0].error is None
    assert updates[1].error == "Not enough credits"
    assert updates[2].error == "Failed outside of session window"
    assert updates[4].timestamp == "2026-03-02T12:05:00.000+0000"


@pytest.mark.parametrize("group, status", [
    ("DELIVERED", "delivered"), ("SEEN", "read"), ("REJECTED", "failed"),
    ("UNDELIVERABLE", "failed"), ("PENDING", "sent"), ("EXPIRED", "sent"), ("SOMETHING_NEW", "sent"),
])
def test_status_group_mapping(group: str, status: str) -> None:
    payload = sample("infobip_delivery_report.json")
    payload["results"][0]["status"]["groupName"] = group
    [u] = ADAPTER.parse_status(payload)
    assert u.status == status


def test_no_challenge_no_signature() -> None:
    assert ADAPTER.verify_challenge(channel(), {"hub.mode": "subscribe"}) == (200, "ok")
    assert ADAPTER.verify_signature(channel(), {"X-Hub-Signature-256": "sha256=x"}, b"{}") is None


def test_basic_credentials_when_configured() -> None:
    ch = channel(webhook_username="infobip", webhook_password="s3cret")
    good = "Basic " + base64.b64encode(b"infobip:s3cret").decode()
    assert ADAPTER.verify_signature(ch, {"Authorization": good}, b"{}") is True
    assert ADAPTER.verify_signature(ch, {"authorization": good}, b"{}") is True
    for bad in ("", "Basic " + base64.b64encode(b"infobip:wrong").decode(), "Bearer x", "Basic"):
        assert ADAPTER.verify_signature(ch, {"Authorization": bad}, b"{}") is False
    assert ADAPTER.verify_signature(ch, {}, b"{}") is False


def test_addressed_to_the_channels_own_sender() -> None:
    [msg] = ADAPTER.parse_inbound(sample("infobip_inbound_text.json"))
    assert msg.metadata["to"] == SENDER
    assert ADAPTER.addressed_to(channel(), msg) is True
    assert ADAPTER.addressed_to(channel(sender="+" + SENDER), msg) is True
    assert ADAPTER.addressed_to(channel(sender="447000000000"), msg) is False
    msg.metadata.pop("to")
    assert ADAPTER.addressed_to(channel(sender="447000000000"), msg) is True

"""The WhatsApp Cloud API adapter against a stand-in Graph API server on loopback: every request
checked against the documented format, every documented answer sorted into the right result;
parsing of the sample notifications (and richer ones derived from Meta's docs); the hub
challenge and the X-Hub-Signature-256 check."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters import get
from adapters.base import ChannelInfo, InboundError, OutboundActivity
from adapters.whatsapp_meta import DEFAULT_API_VERSION, WhatsAppMetaAdapter, sign
from tests.integration.whatsapp.standins import MetaStandIn, Reply, meta_error, sample
from tests.support.server import free_port

ADAPTER = WhatsAppMetaAdapter()
PNID = "106540352242922"
TOKEN = "EAAG-meta-token"


def channel(base: str | None = None, **config: Any) -> ChannelInfo:
    cfg = {"phone_number_id": PNID, "access_token": TOKEN, "verify_token": "hub-verify"}
    if base:
        cfg["api_base_url"] = base
    cfg.update(config)
    return ChannelInfo(id="ch-1", tenant_id="t-1", name="wa", type="whatsapp_meta", mode="duplex",
                       config=cfg, secret="whsec_x")


def activity(text: str | None = "Hello from converger", thread_sender: str | None = None,
             **metadata: Any) -> OutboundActivity:
    return OutboundActivity(
        id="act-1", type="message", sender="agent", text=text, attachments=[], metadata=metadata,
        conversation_id="conv-1", tenant_id="t-1", timestamp="2026-11-25T09:00:00.000000Z",
        delivery_id="del-1", thread_sender=thread_sender,
    )


@pytest.fixture
async def meta() -> AsyncIterator[MetaStandIn]:
    async with MetaStandIn(token=TOKEN, phone_number_id=PNID, version=DEFAULT_API_VERSION,
                           allowed={"16505551234", "16505559999"}) as s:
        yield s  # type: ignore[misc]


# -- config ------------------------------------------------------------------------------------
def test_registered() -> None:
    assert isinstance(get("whatsapp_meta"), WhatsAppMetaAdapter)
    assert ADAPTER.delivers and set(ADAPTER.secret_fields) == {"access_token", "app_secret"}


@pytest.mark.parametrize("config, message", [
    ({}, "whatsapp_meta config missing: phone_number_id, access_token, verify_token"),
    ({"phone_number_id": PNID, "access_token": "", "verify_token": 5},
     "whatsapp_meta config missing: access_token, verify_token"),
    ({"phone_number_id": PNID, "access_token": "t", "verify_token": "v", "app_secret": 3},
     "whatsapp_meta config 'app_secret' must be a string"),
    ({"phone_number_id": PNID, "access_token": "t", "verify_token": "v", "api_base_url": "ftp://x"},
     "whatsapp_meta config 'api_base_url' must be a valid HTTP/HTTPS URL"),
    ({"phone_number_id": PNID, "access_token": "t", "verify_token": "v", "api_version": "26"},
     "whatsapp_meta config 'api_version' must look like 'v26.0'"),
    ({"phone_number_id": PNID, "access_token": "t", "verify_token": "v", "api_version": 26.0},
     "whatsapp_meta config 'api_version' must look like 'v26.0'"),
    ({"phone_number_id": PNID, "access_token": "t", "verify_token": "v", "timeout_seconds": "9"},
     "whatsapp_meta config 'timeout_seconds' must be a number between 0 and 30"),
])
def test_invalid_config(config: dict[str, Any], message: str) -> None:
    assert ADAPTER.validate_config(config) == message


def test_valid_config() -> None:
    minimal = {"phone_number_id": PNID, "access_token": "t", "verify_token": "v"}
    assert ADAPTER.validate_config(minimal) is None
    assert ADAPTER.validate_config({**minimal, "app_secret": "s", "api_version": "v25.0",
                                    "api_base_url": "http://127.0.0.1:9", "timeout_seconds": 3,
                                    "anything_else": True}) is None


def test_default_endpoint_is_current_graph_version() -> None:
    assert DEFAULT_API_VERSION == "v26.0"
    cfg = channel().config
    assert ADAPTER.messages_url(cfg) == f"https://graph.facebook.com/v26.0/{PNID}/messages"
    cfg = channel("http://127.0.0.1:1234/", api_version="v25.0").config
    assert ADAPTER.messages_url(cfg) == f"http://127.0.0.1:1234/v25.0/{PNID}/messages"


# -- outbound ----------------------------------------------------------------------------------
async def test_send_text_as_documented(meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url), activity(recipient_phone="16505551234"))
    assert result.ok is True and result.error is None
    assert result.provider_message_id == meta.sent[0]["id"]
    assert result.metadata["whatsapp_message_id"] == meta.sent[0]["id"]
    [req] = meta.requests
    assert req.method == "POST" and req.path == f"/v26.0/{PNID}/messages"
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Content-Type"].startswith("application/json")
    assert req.body == {"messaging_product": "whatsapp", "recipient_type": "individual",
                        "to": "16505551234", "type": "text",
                        "text": {"body": "Hello from converger"}}


@pytest.mark.parametrize("metadata, thread_sender, expected", [
    ({"recipient_phone": "16505551234", "to": "16505559999"}, "16505559999", "16505551234"),
    ({"to": "16505559999"}, "16505551234", "16505559999"),
    ({}, "16505551234", "16505551234"),
    ({"recipient_phone": "  "}, "16505559999", "16505559999"),
])
async def test_recipient_choice(meta: MetaStandIn, session: aiohttp.ClientSession,
                                metadata: dict[str, Any], thread_sender: str, expected: str) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url),
                                   activity(thread_sender=thread_sender, **metadata))
    assert result.ok, result.error
    assert meta.requests[0].body["to"] == expected


async def test_no_recipient_fails_at_once_without_a_call(
    meta: MetaStandIn, session: aiohttp.ClientSession
) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url), activity())
    assert (result.ok, result.retryable) == (False, False)
    assert "activity metadata must include 'recipient_phone' or 'to' for WhatsApp delivery" in result.error
    assert meta.requests == []


async def test_empty_text_fails_at_once(meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url), activity(text=None, to="16505551234"))
    assert (result.ok, result.retryable) == (False, False) and "non-empty text" in result.error
    assert meta.requests == []


async def test_bad_token_401_is_final(meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url, access_token="expired"),
                                   activity(to="16505551234"))
    assert (result.ok, result.retryable) == (False, False)
    assert result.error == ("WhatsApp API returned 401: Error validating access token: "
                            "Session has expired. [code 190]")
    assert meta.requests[0].headers["Authorization"] == "Bearer expired"


async def test_recipient_not_allowed_400_is_final(
    meta: MetaStandIn, session: aiohttp.ClientSession
) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url), activity(to="4915100000000"))
    assert (result.ok, result.retryable) == (False, False)
    assert "Recipient phone number not in allowed list" in result.error
    assert "WhatsApp API returned 400" in result.error and result.metadata["http_status"] == 400


async def test_invalid_recipient_400_is_final(meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url), activity(to="not-a-number"))
    assert (result.ok, result.retryable) == (False, False)
    assert "Invalid parameter" in result.error and "not a valid phone number" in result.error


async def test_unknown_phone_number_id_is_final(
    meta: MetaStandIn, session: aiohttp.ClientSession
) -> None:
    result = await ADAPTER.deliver(session, channel(meta.url, phone_number_id="999"),
                                   activity(to="16505551234"))
    assert (result.ok, result.retryable) == (False, False) and "does not exist" in result.error


async def test_429_retries_after_what_meta_asks(meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    meta.script.append(Reply(429, meta_error("(#130429) Rate limit hit", 130429), {"Retry-After": "7"}))
    result = await ADAPTER.deliver(session, channel(meta.url), activity(to="16505551234"))
    assert (result.ok, result.retryable, result.retry_after) == (False, True, 7.0)
    assert "Rate limit hit" in result.error


async def test_throttling_code_in_a_400_is_retryable(
    meta: MetaStandIn, session: aiohttp.ClientSession
) -> None:
    meta.script.append(Reply(400, meta_error("(#131056) Pair rate limit hit", 131056)))
    result = await ADAPTER.deliver(session, channel(meta.url), activity(to="16505551234"))
    assert (result.ok, result.retryable) == (False, True)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retryable(meta: MetaStandIn, session: aiohttp.ClientSession, status: int) -> None:
    meta.script.append(Reply(status, meta_error("An unknown error has occurred.", 1)))
    result = await ADAPTER.deliver(session, channel(meta.url), activity(to="16505551234"))
    assert (result.ok, result.retryable, result.retry_after) == (False, True, None)
    assert f"WhatsApp API returned {status}: An unknown error has occurred." in result.error


async def test_5xx_without_json_does_not_echo_the_body(meta: MetaStandIn,
                                                      session: aiohttp.ClientSession) -> None:
    meta.script.append(Reply(503, "upstream unavailable"))
    result = await ADAPTER.deliver(session, channel(meta.url), activity(to="16505551234"))
    # The raw answer is never kept (issue 13): the tenant reads last_error.
    assert result.retryable and "upstream unavailable" not in (result.error or "")
    assert result.error == "WhatsApp API returned 503: (no error message)"


async def test_only_200_is_success(meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    meta.script.append(Reply(202, sample("meta_send_response.json")))
    result = await ADAPTER.deliver(session, channel(meta.url), activity(to="16505551234"))
    assert result.ok is False and result.retryable is False


async def test_timeout_is_retryable(meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    meta.script.append(Reply(200, sample("meta_send_response.json"), delay=1.0))
    result = await ADAPTER.deliver(session, channel(meta.url, timeout_seconds=0.2),
                                   activity(to="16505551234"))
    assert (result.ok, result.retryable) == (False, True)
    assert result.error == "WhatsApp API request failed: timeout after 0.2s"


async def test_without_timeout_seconds_the_sessions_timeout_applies(meta: MetaStandIn) -> None:
    # In the server the workers' session carries CONVERGER_WEBHOOK_TIMEOUT.
    meta.script.append(Reply(200, sample("meta_send_response.json"), delay=1.0))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as short:
        result = await ADAPTER.deliver(short, channel(meta.url), activity(to="16505551234"))
    assert (result.ok, result.retryable) == (False, True)
    assert result.error == "WhatsApp API request failed: timeout after 0.2s"


async def test_connection_refused_is_retryable(session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(f"http://127.0.0.1:{free_port()}"),
                                   activity(to="16505551234"))
    assert (result.ok, result.retryable) == (False, True)
    assert result.error.startswith("WhatsApp API request failed: ")


# -- inbound -----------------------------------------------------------------------------------
def test_text_sample() -> None:
    [m] = ADAPTER.parse_inbound(sample("meta_inbound_text.json"))
    assert m.sender == "16505551234" and m.text == "Does it come in another color?"
    assert m.type == "message" and m.attachments == []
    assert m.external_id == "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert m.metadata == {"whatsapp_message_id": m.external_id, "whatsapp_type": "text",
                          "timestamp": "1749416383", "phone_number_id": PNID,
                          "profile_name": "Sheena Nelson"}
    assert ADAPTER.parse_status(sample("meta_inbound_text.json")) is None


def test_image_sample_keeps_media_as_attachment() -> None:
    [m] = ADAPTER.parse_inbound(sample("meta_inbound_image.json"))
    assert m.text == "Black jacket" and m.metadata["whatsapp_type"] == "image"
    assert m.attachments == [{"type": "image", "media_id": "1003383421387256",
                              "mime_type": "image/jpeg", "caption": "Black jacket",
                              "sha256": "6ybuHLBLxVBsbuCBfaNjYFn8YbIeHTfVsDCTPmeVDUs="}]


def test_every_message_of_a_notification() -> None:
    msgs = ADAPTER.parse_inbound(sample("meta_inbound_two_messages.json"))
    assert [m.text for m in msgs] == ["first", "second"]
    assert len({m.external_id for m in msgs}) == 2


def test_every_type_every_entry_every_change() -> None:
    msgs = ADAPTER.parse_inbound(sample("meta_inbound_mixed.json"))
    by_id = {m.external_id: m for m in msgs}
    assert list(by_id) == ["wamid.AUDIO1", "wamid.VIDEO1", "wamid.DOC1", "wamid.STICKER1",
                           "wamid.LOC1", "wamid.CONTACTS1", "wamid.IBR1", "wamid.ILR1",
                           "wamid.BTN1", "wamid.REACT1", "wamid.UNSUP1"]
    audio = by_id["wamid.AUDIO1"].attachments[0]
    assert audio["type"] == "audio" and audio["media_id"] == "2001" and audio["voice"] is True
    assert by_id["wamid.AUDIO1"].text is None
    assert by_id["wamid.VIDEO1"].text == "unboxing"
    assert by_id["wamid.DOC1"].attachments[0]["filename"] == "invoice.pdf"
    assert by_id["wamid.STICKER1"].attachments[0] == {"type": "sticker", "media_id": "2004",
                                                      "mime_type": "image/webp", "sha256": "aGFzaA==",
                                                      "animated": False}
    loc = by_id["wamid.LOC1"]
    assert loc.sender == "16505559999" and loc.metadata["profile_name"] == "Pablo Morales"
    assert loc.text == "Philz Coffee" and loc.attachments[0]["latitude"] == pytest.approx(37.4421625)
    assert by_id["wamid.CONTACTS1"].attachments[0]["contacts"][0]["name"]["first_name"] == "Barbara"
    ibr = by_id["wamid.IBR1"]
    assert ibr.text == "Change" and ibr.metadata["reply_to"] == "wamid.OUT1"
    assert ibr.metadata["phone_number_id"] == "106540352242923"
    assert ibr.attachments == [{"type": "interactive", "reply_type": "button_reply",
                                "id": "change-button", "title": "Change"}]
    assert by_id["wamid.ILR1"].attachments[0]["description"] == "Next Day to 2 Days"
    assert by_id["wamid.BTN1"].text == "Unsubscribe from Promos"
    assert by_id["wamid.BTN1"].attachments[0]["payload"] == "Unsubscribe from Promos"
    react = by_id["wamid.REACT1"]
    assert react.text == "\N{THUMBS UP SIGN}" and react.metadata["reaction_to"] == "wamid.OUT1"
    unsup = by_id["wamid.UNSUP1"].attachments[0]
    assert unsup["type"] == "unsupported" and unsup["errors"][0]["code"] == 131051
    assert all(m.type == "message" for m in msgs)


def test_unknown_fields_are_ignored() -> None:
    payload = sample("meta_inbound_text.json")
    payload["brand_new_top_level"] = {"x": 1}
    payload["entry"][0]["time"] = 1750000000
    change = payload["entry"][0]["changes"][0]
    change["value"]["whatever"] = [1, 2]
    change["value"]["messages"][0]["identity"] = {"acknowledged": True}
    change["value"]["messages"][0]["text"]["preview_url"] = False
    [m] = ADAPTER.parse_inbound(payload)
    assert m.text == "Does it come in another color?"
    assert "identity" not in m.metadata and "whatever" not in m.metadata


MALFORMED: list[Any] = [
    None, [], "text", 42, {}, {"object": "whatsapp_business_account"},
    {"object": "whatsapp_business_account", "entry": {}},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": "nope"}]}]},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [
        {"id": "wamid.X", "type": "text", "text": {"body": "no sender"}}]}}]}]},
    {"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"text": "hi"}}]}]},
    sample("infobip_inbound_text.json"),
    sample("meta_send_response.json"),
    sample("meta_error_response.json"),
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_malformed_or_foreign(payload: Any) -> None:
    with pytest.raises(InboundError, match="unable to parse WhatsApp Meta webhook payload"):
        ADAPTER.parse_inbound(payload)
    assert ADAPTER.parse_status(payload) is None


def test_foreign_payload_says_what_was_expected() -> None:
    with pytest.raises(InboundError, match='"object": "whatsapp_business_account"'):
        ADAPTER.parse_inbound(sample("infobip_inbound_text.json"))


def test_a_status_notification_holds_no_messages() -> None:
    with pytest.raises(InboundError, match="holds no messages"):
        ADAPTER.parse_inbound(sample("meta_status_read.json"))


# -- statuses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, status", [
    ("meta_status_delivered.json", "delivered"), ("meta_status_read.json", "read"),
    ("meta_status_failed.json", "failed"),
])
def test_status_samples(name: str, status: str) -> None:
    payload = sample(name)
    [u] = ADAPTER.parse_status(payload)
    s = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert (u.status, u.provider_message_id, u.timestamp, u.recipient_id) == (
        status, s["id"], s["timestamp"], "16505551234")
    assert u.delivery_id is None


def test_failed_status_carries_the_error() -> None:
    [u] = ADAPTER.parse_status(sample("meta_status_failed.json"))
    assert u.error.startswith("Re-engagement message: Message failed to send because more than 24 hours")


def test_every_status_and_unknown_ones_become_sent() -> None:
    updates = ADAPTER.parse_status(sample("meta_status_multi.json"))
    assert [(u.provider_message_id, u.status) for u in updates] == [
        ("wamid.S1", "sent"), ("wamid.S2", "delivered"), ("wamid.S3", "read"), ("wamid.S4", "sent")]
    assert updates[2].recipient_id == "16505559999"


def test_status_entries_without_id_are_skipped() -> None:
    payload = sample("meta_status_read.json")
    statuses = payload["entry"][0]["changes"][0]["value"]["statuses"]
    statuses.append({"status": "read"})
    statuses.append("junk")
    assert len(ADAPTER.parse_status(payload)) == 1


# -- verification ------------------------------------------------------------------------------
def test_challenge() -> None:
    ch = channel()
    ok = {"hub.mode": "subscribe", "hub.verify_token": "hub-verify", "hub.challenge": "1158201444"}
    assert ADAPTER.verify_challenge(ch, ok) == (200, "1158201444")
    assert ADAPTER.verify_challenge(ch, {**ok, "hub.challenge": ""}) == (200, "")
    no_challenge = {k: v for k, v in ok.items() if k != "hub.challenge"}
    assert ADAPTER.verify_challenge(ch, no_challenge) == (200, "")
    for bad in ({**ok, "hub.verify_token": "wrong"}, {**ok, "hub.mode": "unsubscribe"},
                {k: v for k, v in ok.items() if k != "hub.mode"},
                {k: v for k, v in ok.items() if k != "hub.verify_token"}, {}):
        assert ADAPTER.verify_challenge(ch, bad) == (403, "Verification failed")


def test_signature() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    with_secret = channel(app_secret="app-secret-123")
    good = sign("app-secret-123", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert ADAPTER.verify_signature(channel(), {"X-Hub-Signature-256": good}, body) is None
    assert ADAPTER.verify_signature(with_secret, {"X-Hub-Signature-256": good}, body) is True
    assert ADAPTER.verify_signature(with_secret, {"x-hub-signature-256": good}, body) is True
    assert ADAPTER.verify_signature(with_secret, {"X-Hub-Signature-256": good}, body + b" ") is False
    assert ADAPTER.verify_signature(with_secret, {"X-Hub-Signature-256": sign("other", body)},
                                    body) is False
    assert ADAPTER.verify_signature(with_secret, {"X-Hub-Signature-256": good[7:]}, body) is False
    assert ADAPTER.verify_signature(with_secret, {}, body) is False


def test_payloads_are_not_mutated() -> None:
    payload = sample("meta_inbound_mixed.json")
    before = copy.deepcopy(payload)
    ADAPTER.parse_inbound(payload)
    ADAPTER.parse_status(payload)
    assert payload == before


def test_a_batch_with_messages_and_statuses_is_read_for_its_messages() -> None:
    payload = sample("meta_inbound_text.json")
    payload["entry"].append(sample("meta_status_read.json")["entry"][0])
    assert ADAPTER.parse_status(payload) is None
    [m] = ADAPTER.parse_inbound(payload)
    assert m.text == "Does it come in another color?"


def test_addressed_to_the_channels_own_number() -> None:
    mine, other = ADAPTER.parse_inbound(sample("meta_inbound_mixed.json"))[0::10]
    assert ADAPTER.addressed_to(channel(), mine) is True
    assert ADAPTER.addressed_to(channel(), other) is False
    assert ADAPTER.addressed_to(channel(phone_number_id="106540352242923"), other) is True
    # A message without the number (a hand-made payload) is taken as this channel's.
    other.metadata.pop("phone_number_id")
    assert ADAPTER.addressed_to(channel(), other) is True

"""The webhook adapter against a real aiohttp receiver: body, signatures, outcomes; and its
inbound parsing, receipts and signature checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from standardwebhooks.webhooks import Webhook

from adapters import signing
from adapters.base import ChannelInfo, InboundError, OutboundActivity, retry_after
from adapters.webhook import WebhookAdapter, body_of
from tests.integration.delivery.receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
ADAPTER = WebhookAdapter()


def channel(url: str, **config: object) -> ChannelInfo:
    return ChannelInfo(id="c1", tenant_id="t1", name="hook", type="webhook", mode="duplex",
                       config={"url": url, **config}, secret=SECRET)


def activity(**kw: object) -> OutboundActivity:
    base = dict(id="a1", type="message", sender="user", text="hi", attachments=[], metadata={},
                conversation_id="v1", tenant_id="t1", timestamp="2026-01-01T00:00:00.000000Z",
                delivery_id="d1")
    base.update(kw)
    return OutboundActivity(**base)  # type: ignore[arg-type]


@pytest.fixture
async def recv() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as s:
        yield s


async def test_deliver_signs_and_succeeds_on_2xx(recv: Receiver, http: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(http, channel(recv.url("a"), method="PUT"), activity())
    assert result.ok
    (call,) = recv.calls["a"]
    assert call.body == body_of(activity())
    headers = {k.lower(): v for k, v in call.headers.items()}
    assert headers["webhook-id"] == "d1"
    Webhook(SECRET).verify(call.body, headers)
    assert headers["x-converger-signature"] == "sha256=" + hmac.new(
        SECRET.encode(), call.body, hashlib.sha256).hexdigest()


async def test_config_headers_cannot_override_the_signature(recv: Receiver, http: aiohttp.ClientSession) -> None:
    await ADAPTER.deliver(http, channel(recv.url("b"), headers={"webhook-id": "forged", "x-a": "1"}),
                          activity())
    headers = {k.lower(): v for k, v in recv.calls["b"][0].headers.items()}
    assert headers["webhook-id"] == "d1" and headers["x-a"] == "1"


async def test_outcomes(recv: Receiver, http: aiohttp.ClientSession) -> None:
    recv.plan("c", (500, {}, 0), (410, {}, 0), (429, {"Retry-After": "120"}, 0), (200, {}, 1.0))
    ch = channel(recv.url("c"))
    r500 = await ADAPTER.deliver(http, ch, activity())
    assert (r500.ok, r500.retryable, r500.error) == (False, True, "webhook returned status 500")  # body not echoed
    r410 = await ADAPTER.deliver(http, ch, activity())
    assert (r410.ok, r410.retryable) == (False, False)
    r429 = await ADAPTER.deliver(http, ch, activity())
    assert (r429.retryable, r429.retry_after) == (True, 120.0)
    slow = await ADAPTER.deliver(http, ch, activity())
    assert (slow.ok, slow.retryable, slow.error) == (False, True, "webhook request failed: timeout")
    refused = await ADAPTER.deliver(http, channel("http://127.0.0.1:1/x"), activity())
    assert not refused.ok and refused.retryable and refused.error.startswith("webhook request failed:")


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert retry_after("30") == 30.0
    assert retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now=now) == 60.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_parse_inbound() -> None:
    (m,) = ADAPTER.parse_inbound({"from": "+1", "message": "hey", "id": "x9", "metadata": {"a": 1}})
    assert (m.sender, m.text, m.type, m.external_id, m.metadata) == ("+1", "hey", "message", "x9", {"a": 1})
    (m,) = ADAPTER.parse_inbound({})
    assert (m.sender, m.text, m.attachments) == ("external", None, [])
    with pytest.raises(InboundError):
        ADAPTER.parse_inbound([1, 2])


def test_parse_status() -> None:
    (u,) = ADAPTER.parse_status({"delivery_id": "d", "status": "read", "timestamp": 5})
    assert (u.delivery_id, u.status, u.timestamp) == ("d", "read", 5)
    (u,) = ADAPTER.parse_status({"provider_message_id": "p", "status": "failed", "error": "x"})
    assert (u.provider_message_id, u.error) == ("p", "x")
    assert ADAPTER.parse_status({"status": "read"}) is None
    assert ADAPTER.parse_status({"text": "a message"}) is None


def test_standard_signature_inbound_check() -> None:
    ch = channel("http://x")
    body = b'{"text":"x"}'
    stamp = str(int(time.time()))
    sig = signing.standard_signature(SECRET, "m1", stamp, body)
    ok = {"webhook-id": "m1", "webhook-timestamp": stamp, "webhook-signature": "v1,bad " + sig}
    assert ADAPTER.verify_signature(ch, ok, body) is True
    assert ADAPTER.verify_signature(ch, {**ok, "webhook-signature": "v1,bad"}, body) is False
    old = str(int(time.time()) - 3600)
    stale = {**ok, "webhook-timestamp": old,
             "webhook-signature": signing.standard_signature(SECRET, "m1", old, body)}
    assert ADAPTER.verify_signature(ch, stale, body) is False
    assert ADAPTER.verify_signature(ch, {}, body) is None


def test_converger_signature_is_constant_time_compare_of_hex_hmac() -> None:
    body = b"abc"
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signing.check_converger_signature(SECRET, body, good)
    assert not signing.check_converger_signature(SECRET, body, good.upper())
    assert not signing.check_converger_signature(SECRET, body, "")

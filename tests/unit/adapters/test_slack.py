"""The Slack adapter against a stand-in Web API on loopback: chat.postMessage checked (path,
Bearer token, JSON body), Slack's ``ok: false`` codes sorted into retry / fail / unhealthy;
the Events API samples; the request signature checked against slack_sdk's own verifier."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from adapters import get, slack
from adapters.base import ChannelInfo, InboundError, InboundIgnored, OutboundActivity
from adapters.slack import SlackAdapter
from tests.integration.slack.standins import Reply, SlackStandIn, sample, slack_signature

ADAPTER = SlackAdapter()
TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def channel(base: str | None = None, **config: Any) -> ChannelInfo:
    cfg: dict[str, Any] = {"bot_token": TOKEN, "signing_secret": SECRET}
    if base:
        cfg["api_base_url"] = base
    cfg.update(config)
    return ChannelInfo(id="ch-1", tenant_id="t-1", name="slack", type="slack", mode="duplex",
                       config=cfg, secret="whsec_x")


def activity(text: str | None = "Hello from converger", thread_sender: str | None = None,
             attachments: list[Any] | None = None, **metadata: Any) -> OutboundActivity:
    return OutboundActivity(
        id="act-1", type="message", sender="agent", text=text, attachments=attachments or [],
        metadata=metadata, conversation_id="conv-1", tenant_id="t-1",
        timestamp="2026-12-07T09:00:00.000000Z", delivery_id="del-1", thread_sender=thread_sender)


@pytest.fixture
async def api() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(TOKEN, SECRET, channels={"C024BE91L", "D024BE91L"}) as s:
        yield s  # type: ignore[misc]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


def test_registered() -> None:
    assert isinstance(get("slack"), SlackAdapter)
    assert ADAPTER.delivers and set(ADAPTER.secret_fields) == {"bot_token", "signing_secret"}


@pytest.mark.parametrize("config, message", [
    ({}, "slack config missing: bot_token, signing_secret"),
    ({"bot_token": "xoxb 1", "signing_secret": SECRET}, "'bot_token'"),
    ({"bot_token": TOKEN, "signing_secret": SECRET, "default_channel": "#general"},
     "'default_channel'"),
])
def test_config_refused(config: dict[str, Any], message: str) -> None:
    assert message in (ADAPTER.validate_config(config) or "")


# -- outbound ----------------------------------------------------------------------------------
async def test_post_into_the_thread(api: SlackStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(api.api_base),
                                   activity(thread_sender="C024BE91L:1355517523.000005"))
    assert result.ok and result.provider_message_id == api.posted[0]["ts"]
    assert result.thread_key is None  # the thread already exists
    seen = api.requests[0]
    assert seen.path == "/api/chat.postMessage"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"] == "application/json; charset=utf-8"
    assert seen.body == {"channel": "C024BE91L", "text": "Hello from converger",
                         "thread_ts": "1355517523.000005"}


async def test_dm_and_default_channel(api: SlackStandIn, session: aiohttp.ClientSession) -> None:
    dm = await ADAPTER.deliver(session, channel(api.api_base), activity(thread_sender="D024BE91L"))
    assert dm.ok and api.requests[-1].body == {"channel": "D024BE91L", "text": "Hello from converger"}
    routed = await ADAPTER.deliver(session, channel(api.api_base, default_channel="C024BE91L"),
                                   activity(attachments=[{"type": "image",
                                                          "url": "https://example.com/a.png"}]))
    assert routed.ok and routed.thread_key == f"C024BE91L:{routed.provider_message_id}"
    assert api.requests[-1].body == {"channel": "C024BE91L",
                                     "text": "Hello from converger\nhttps://example.com/a.png"}
    nowhere = await ADAPTER.deliver(session, channel(api.api_base), activity())
    assert not nowhere.ok and not nowhere.retryable and len(api.requests) == 2


@pytest.mark.parametrize("setup, code, unhealthy", [
    (lambda a: a.channels.discard("C024BE91L"), "channel_not_found", False),
    (lambda a: a.outside.add("C024BE91L"), "not_in_channel", False),
    (lambda a: setattr(a, "token", "xoxb-other"), "invalid_auth", True),
    (lambda a: setattr(a, "revoked", True), "token_revoked", True),
])
async def test_errors_fail_at_once(api: SlackStandIn, session: aiohttp.ClientSession,
                                   setup: Any, code: str, unhealthy: bool) -> None:
    setup(api)
    result = await ADAPTER.deliver(session, channel(api.api_base),
                                   activity(thread_sender="C024BE91L:1355517523.000005"))
    assert not result.ok and not result.retryable and result.error == f"Slack API error: {code}"
    assert result.channel_unhealthy is unhealthy


async def test_rate_limits_and_trouble_are_retried(api: SlackStandIn,
                                                   session: aiohttp.ClientSession) -> None:
    api.script = [Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"}),
                  Reply(200, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "4"}),
                  Reply(200, {"ok": False, "error": "internal_error"}),
                  Reply(503, {"ok": False, "error": "service_unavailable"})]
    results = [await ADAPTER.deliver(session, channel(api.api_base),
                                     activity(thread_sender="C024BE91L")) for _ in range(4)]
    assert all(not r.ok and r.retryable for r in results)
    assert [r.retry_after for r in results[:2]] == [30, 4]


# -- inbound -----------------------------------------------------------------------------------
def test_url_verification_is_a_handshake() -> None:
    payload = sample("url_verification.json")
    assert ADAPTER.handshake(channel(), payload) == (200, {"challenge": payload["challenge"]})
    assert ADAPTER.handshake(channel(), sample("event_message.json")) is None


def test_message_events() -> None:
    (top,) = ADAPTER.parse_inbound(sample("event_message.json"))
    assert (top.sender, top.text, top.external_id) == ("U2147483697", "Live long and prospect.",
                                                       "Ev0PV52K21")
    assert top.thread_key == "C024BE91L:1355517523.000005"  # replies go in its thread
    (reply,) = ADAPTER.parse_inbound(sample("event_thread_reply.json"))
    assert reply.thread_key == top.thread_key and reply.metadata["thread_ts"] == "1355517523.000005"
    (dm,) = ADAPTER.parse_inbound(sample("event_im.json"))
    assert dm.thread_key == "D024BE91L"
    (shared,) = ADAPTER.parse_inbound(sample("event_file_share.json"))
    assert shared.text == "Here is the screenshot"
    (att,) = shared.attachments
    assert att["type"] == "image" and att["file_id"] == "F0S43PZDF" and att["size"] == 137531
    assert att["url_private"].endswith("/tedair.gif")


@pytest.mark.parametrize("payload, words", [
    (sample("event_bot_message.json"), "bot"),
    (sample("event_reaction_added.json"), "reaction_added"),
    ({**sample("event_message.json"), "event": {**sample("event_message.json")["event"],
                                                "bot_id": "B123ABC456"}}, "bot"),
    ({**sample("event_message.json"), "event": {**sample("event_message.json")["event"],
                                                "subtype": "channel_join"}}, "channel_join"),
    ({"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1518467820}, "app_rate"),
])
def test_ignored(payload: Any, words: str) -> None:
    with pytest.raises(InboundIgnored, match=words):
        ADAPTER.parse_inbound(payload)


@pytest.mark.parametrize("payload", [None, [], {"event": {}}, {"type": "event_callback"},
                                     {"type": "event_callback", "event": {"type": 5}}])
def test_malformed(payload: Any) -> None:
    with pytest.raises(InboundError) as info:
        ADAPTER.parse_inbound(payload)
    assert not isinstance(info.value, InboundIgnored)


def test_signature_agrees_with_slack_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.dumps(sample("event_message.json")).encode()
    stamp = str(int(time.time()))
    signature = slack_signature(SECRET, stamp, raw)
    assert slack.sign(SECRET, stamp, raw) == signature
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
    assert SignatureVerifier(SECRET).is_valid_request(raw, headers)
    assert ADAPTER.verify_signature(channel(), headers, raw) is True
    assert ADAPTER.verify_signature(channel(), headers, raw + b" ") is False
    assert ADAPTER.verify_signature(channel(signing_secret="other"), headers, raw) is False
    # Five minutes and one second later the same request is stale, for Slack's SDK and for us.
    later = time.time() + 301
    monkeypatch.setattr(slack, "now", lambda: later)
    assert not SignatureVerifier(SECRET, clock=_Clock(later)).is_valid_request(raw, headers)
    assert ADAPTER.verify_signature(channel(), headers, raw) is False


class _Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


async def test_auth_test_action(api: SlackStandIn, session: aiohttp.ClientSession) -> None:
    done = await ADAPTER.run_action(session, channel(api.api_base), "auth_test", "https://gw/in")
    assert done.ok and done.data["bot_id"] == "B12345678" and done.data["request_url"] == "https://gw/in"
    assert api.requests[0].path == "/api/auth.test"
    api.revoked = True
    refused = await ADAPTER.run_action(session, channel(api.api_base), "auth_test", "https://gw/in")
    assert not refused.ok and "token_revoked" in (refused.error or "")

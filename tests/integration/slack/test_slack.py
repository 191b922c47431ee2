"""Slack on the real server against a stand-in Web API: Events API requests signed the way
Slack signs them (checked against slack_sdk's own SignatureVerifier), the url_verification
handshake, messages threaded by Slack thread, replies through the REST API posted into that
thread, Slack's retries deduplicated, forged and stale signatures refused, every error class
through the delivery queue — never a 500."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.signature import SignatureVerifier

from tests.integration.slack.standins import Reply, SlackStandIn, message_event, sample
from tests.integration.telegram.conftest import (
    action,
    conversations_of,
    download,
    health_of,
    unique,
)
from tests.integration.whatsapp.conftest import activities, delivery_of, eventually, post_inbound
from tests.support.api import Api
from tests.support.server import Server

TOKEN = "xoxb-17653672481-19874698323-integration"
SIGNING_SECRET = "8f742231b10e8888abcd99integration"
CHANNEL = "C024BE91L"
_events = itertools.count(1)
_ts = itertools.count(1_600_000_000)


def event_id() -> str:
    return f"Ev{next(_events):08d}"


def ts() -> str:
    return f"{next(_ts)}.000200"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(TOKEN, SIGNING_SECRET, channels={CHANNEL, "D024BE91L"}) as s:
        yield s  # type: ignore[misc]


async def slack_channel(api: Api, standin: SlackStandIn, tenant: dict[str, Any] | None = None,
                        **config: Any) -> dict[str, Any]:
    tenant = tenant or await api.tenant(unique("slack"))
    cfg = {"bot_token": TOKEN, "signing_secret": SIGNING_SECRET,
           "api_base_url": standin.api_base, **config}
    channel = await api.channel(tenant["id"], name="slack", type="slack", mode="duplex",
                                config=cfg)
    return {"tenant": tenant, "key": tenant["api_key"], "channel": channel}


def wire(server: Server, standin: SlackStandIn, channel_id: str) -> None:
    """What the Slack app's Event Subscriptions page does: the Request URL."""
    standin.webhook_url = f"{server.url}/api/v1/channels/{channel_id}/inbound"


def test_stand_in_signs_like_slack() -> None:
    """The stand-in's signature is the one slack_sdk computes and accepts, so the tests below
    sign exactly as Slack does."""
    standin = SlackStandIn(TOKEN, SIGNING_SECRET)
    raw = json.dumps(sample("event_message.json")).encode()
    headers = standin.webhook_headers(raw)
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert headers["X-Slack-Signature"] == verifier.generate_signature(
        timestamp=headers["X-Slack-Request-Timestamp"], body=raw)
    assert verifier.is_valid_request(raw, headers)
    standin.clock_skew = -301
    assert not verifier.is_valid_request(raw, standin.webhook_headers(raw))


async def test_url_verification(chat_server: Server, capi: Api, slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    wire(chat_server, slack, s["channel"]["id"])
    challenge = sample("url_verification.json")
    status, body = await slack.notify(challenge)
    assert status == 200 and body == {"challenge": challenge["challenge"]}
    # Unsigned, the challenge is not answered.
    status, body = await post_inbound(capi, s["channel"]["id"], challenge)
    assert status == 401 and body["code"] == "invalid_signature"
    done = await action(capi, s["channel"]["id"], "auth_test")
    assert done["data"]["result"]["bot_id"] == "B12345678"
    assert done["data"]["result"]["request_url"] == slack.webhook_url
    assert slack.requests[-1].path == "/api/auth.test"
    assert slack.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_end_to_end_message_reply_in_thread(chat_server: Server, capi: Api,
                                                  slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    cid = s["channel"]["id"]
    wire(chat_server, slack, cid)
    top = ts()
    status, body = await slack.notify(message_event(event_id(), CHANNEL, "U2147483697",
                                                    "Can someone help?", top))
    assert status == 201, body
    conv_id = body["conversation_id"]
    (first,) = await activities(capi, s["key"], conv_id)
    assert (first["sender"], first["text"]) == ("U2147483697", "Can someone help?")
    assert first["metadata"]["slack_ts"] == top

    reply = await capi.post_activity(conv_id, s["key"], text="Sure, what's up?", sender="agent")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent")
    (posted,) = slack.posted
    assert (posted["channel"], posted["thread_ts"], posted["text"]) == (CHANNEL, top,
                                                                          "Sure, what's up?")
    assert row["provider_message_id"] == posted["ts"]
    seen = slack.requests[-1]
    assert seen.path == "/api/chat.postMessage"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"

    # The user answers in the thread: same conversation. A new top-level message: a new one.
    _, again = await slack.notify(message_event(event_id(), CHANNEL, "U2147483697",
                                                "My login fails", ts(), thread_ts=top))
    assert again["conversation_id"] == conv_id
    _, other = await slack.notify(message_event(event_id(), CHANNEL, "U2147483697", "Also", ts()))
    assert other["conversation_id"] != conv_id


async def test_direct_messages_are_one_conversation(chat_server: Server, capi: Api,
                                                    slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    wire(chat_server, slack, s["channel"]["id"])
    dm = sample("event_im.json")
    dm["event_id"] = event_id()
    _, one = await slack.notify(dm)
    dm2 = sample("event_im.json")
    dm2.update(event_id=event_id())
    dm2["event"].update(ts=ts(), text="still there?")
    _, two = await slack.notify(dm2)
    assert one["conversation_id"] == two["conversation_id"]
    reply = await capi.post_activity(one["conversation_id"], s["key"], text="yes")
    await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent")
    assert slack.posted[-1] == {"ts": slack.posted[-1]["ts"], "channel": "D024BE91L", "text": "yes"}


async def test_file_share_becomes_attachment(chat_server: Server, capi: Api,
                                             slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    wire(chat_server, slack, s["channel"]["id"])
    status, body = await slack.notify(sample("event_file_share.json"))
    assert status == 201
    (act,) = await activities(capi, s["key"], body["conversation_id"])
    assert act["text"] == "Here is the screenshot"
    (att,) = act["attachments"]
    assert att["type"] == "image" and att["file_id"] == "F0S43PZDF"
    assert att["mimetype"] == "image/gif" and att["size"] == 137531
    assert att["url_private_download"].endswith("/download/tedair.gif")


async def test_retried_event_creates_nothing(chat_server: Server, capi: Api,
                                             slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    wire(chat_server, slack, s["channel"]["id"])
    event = message_event(event_id(), CHANNEL, "U1", "once", ts())
    first = await slack.notify(event)
    slack.retry_num = 1  # Slack's retry: same event_id, X-Slack-Retry-Num, signed afresh
    second = await slack.notify(event)
    assert first[0] == 201 and second[0] == 200 and second[1]["duplicate"] is True
    assert len(await activities(capi, s["key"], first[1]["conversation_id"])) == 1


async def test_forged_or_stale_signature_refused(chat_server: Server, capi: Api,
                                                 slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    cid = s["channel"]["id"]
    wire(chat_server, slack, cid)
    event = message_event(event_id(), CHANNEL, "U1", "let me in", ts())
    slack.clock_skew = -301  # older than Slack's five minutes
    stale = await slack.notify(event)
    slack.clock_skew = 400  # from the future
    future = await slack.notify(event)
    slack.clock_skew = 0
    raw = json.dumps(event).encode()
    good = slack.webhook_headers(raw)
    forged = {**good, "X-Slack-Signature": "v0=" + "0" * 64}
    other_body = {**good}
    for status, body in (stale, future, await post_inbound(capi, cid, None, raw=raw, headers=forged),
                         await post_inbound(capi, cid, None, raw=raw + b" ", headers=other_body),
                         await post_inbound(capi, cid, event)):
        assert status == 401 and body["code"] == "invalid_signature", body
    assert await conversations_of(capi, cid) == []


async def test_bots_other_events_and_bad_input(chat_server: Server, capi: Api,
                                               slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    cid = s["channel"]["id"]
    wire(chat_server, slack, cid)
    for payload, reason in ((sample("event_bot_message.json"),
                             "Slack message from a bot ignored (no echo loops)"),
                            (sample("event_reaction_added.json"),
                             "Slack event of type 'reaction_added' ignored"),
                            (sample("event_reaction_added.json"),
                             "Slack event of type 'reaction_added' ignored")):
        status, body = await slack.notify(payload)
        assert status == 200 and body == {"status": "ignored", "reason": reason}
    assert chat_server.log().count("'reaction_added' ignored") == 1  # logged once
    for bad in ({"type": "event_callback"}, {"no": "type"}, [1], {"type": "event_callback",
                                                                  "event": "message"}):
        status, body = await slack.notify(bad)
        assert status == 400 and body["code"] == "unparseable_inbound", body
    assert await conversations_of(capi, cid) == []


async def _conversation(chat_server: Server, capi: Api, slack: SlackStandIn,
                        **config: Any) -> tuple[dict[str, Any], str, str]:
    s = await slack_channel(capi, slack, **config)
    wire(chat_server, slack, s["channel"]["id"])
    top = ts()
    _, body = await slack.notify(message_event(event_id(), CHANNEL, "U1", "hello", top))
    return s, body["conversation_id"], top


@pytest.mark.parametrize("setup, code", [
    (lambda a: a.channels.discard(CHANNEL), "channel_not_found"),
    (lambda a: a.outside.add(CHANNEL), "not_in_channel"),
])
async def test_final_errors_fail_at_once(chat_server: Server, capi: Api, slack: SlackStandIn,
                                         setup: Any, code: str) -> None:
    s, conv_id, _ = await _conversation(chat_server, capi, slack)
    setup(slack)
    reply = await capi.post_activity(conv_id, s["key"], text="answer")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "failed")
    assert row["last_error"] == f"Slack API error: {code}" and row["attempts"] == 1


async def test_rate_limits_5xx_and_timeouts_retried(chat_server: Server, capi: Api,
                                                    slack: SlackStandIn) -> None:
    s, conv_id, top = await _conversation(chat_server, capi, slack, timeout_seconds=0.5)
    slack.script = [Reply(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}),
                    Reply(200, {"ok": False, "error": "ratelimited"}),
                    Reply(500, {"ok": False, "error": "internal_error"}),
                    Reply(200, sample("post_message_response.json"), delay=3)]
    reply = await capi.post_activity(conv_id, s["key"], text="answer")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent", timeout=20)
    assert row["attempts"] == 5
    posts = [r for r in slack.requests if r.path == "/api/chat.postMessage"]
    assert len(posts) == 5 and all(p.body["thread_ts"] == top for p in posts)


async def test_revoked_token_fails_and_marks_channel_unhealthy(chat_server: Server, capi: Api,
                                                               slack: SlackStandIn) -> None:
    s, conv_id, _ = await _conversation(chat_server, capi, slack)
    slack.revoked = True
    reply = await capi.post_activity(conv_id, s["key"], text="answer")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "failed")
    assert row["last_error"] == "Slack API error: token_revoked" and row["attempts"] == 1
    cid = s["channel"]["id"]
    assert await eventually(lambda: health_of(capi, cid), "the channel's health") == "unhealthy"
    refused = await action(capi, cid, "auth_test", expect=502)
    assert "token_revoked" in refused["detail"]


async def _settled(api: Api, key: str, conv_id: str) -> dict[str, Any]:
    """The first attachment of the conversation's last activity once its background download
    has ended (stored or failed)."""
    async def probe() -> dict[str, Any] | None:
        att: dict[str, Any] = (await activities(api, key, conv_id))[-1]["attachments"][0]
        return att if att.get("status") in ("stored", "failed") else None
    return await eventually(probe, "the attachment's download", timeout=20)


async def test_shared_file_downloaded_with_the_bot_token(chat_server: Server, capi: Api,
                                                         slack: SlackStandIn) -> None:
    s = await slack_channel(capi, slack)
    wire(chat_server, slack, s["channel"]["id"])
    event = sample("event_file_share.json")
    event["event_id"] = event_id()
    f = event["event"]["files"][0]
    f["url_private"] = slack.file_url("T061EG9R6-F0S43PZDF/tedair.gif")
    f["url_private_download"] = slack.file_url("T061EG9R6-F0S43PZDF/download/tedair.gif")
    slack.files["T061EG9R6-F0S43PZDF/download/tedair.gif"] = b"GIF89a-tedair"
    _, body = await slack.notify(event)
    key = {"x-api-key": s["key"]}
    # Downloaded in the background as the message came in (gateway/workers/media.py).
    att = await _settled(capi, s["key"], body["conversation_id"])
    assert att["status"] == "stored", att
    assert att["name"] == "tedair.gif" and att["contentType"] == "image/gif"
    seen = slack.requests[-1]
    assert seen.path == "/files-pri/T061EG9R6-F0S43PZDF/download/tedair.gif"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    status, content = await download(capi, att["contentUrl"], key)
    assert status == 200 and content == b"GIF89a-tedair"
    # On request, the stored copy: nothing downloaded again.
    path = (f"/api/v1/conversations/{body['conversation_id']}/activities/{body['activity_id']}"
            "/attachments/0/fetch")
    calls = len(slack.requests)
    fetched = await capi.ok("POST", path, 200, headers=key)
    assert fetched["data"]["url"] == att["contentUrl"] and len(slack.requests) == calls
    # A file URL on another host never gets the bot token.
    event2 = sample("event_file_share.json")
    event2["event_id"] = event_id()
    event2["event"]["files"][0]["url_private_download"] = "https://evil.example/steal"
    event2["event"]["files"][0]["url_private"] = "https://evil.example/steal"
    _, body2 = await slack.notify(event2)
    att2 = await _settled(capi, s["key"], body2["conversation_id"])
    assert att2["status"] == "failed" and "not on a Slack host" in att2["error"], att2
    status, problem, _ = await capi.call(
        "POST", f"/api/v1/conversations/{body2['conversation_id']}/activities/"
                f"{body2['activity_id']}/attachments/0/fetch", headers=key)
    assert status == 400 and problem["code"] == "not_downloadable"

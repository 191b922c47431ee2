"""The Telegram adapter against a stand-in Bot API on loopback: every request checked (path
with the token, method, JSON body), every documented answer sorted into the right result;
parsing of the sample updates; the secret-token check; the webhook management actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters import get
from adapters.base import (
    ChannelInfo,
    InboundError,
    InboundIgnored,
    MediaError,
    MediaFile,
    OutboundActivity,
)
from adapters.telegram import TelegramAdapter
from tests.integration.telegram.standins import Reply, TelegramStandIn, sample, tg_error

ADAPTER = TelegramAdapter()
TOKEN = "123456789:AAE-unit_token"
SECRET = "unit-secret_token"
CHAT = "1111111"


def channel(base: str | None = None, **config: Any) -> ChannelInfo:
    cfg: dict[str, Any] = {"bot_token": TOKEN, "secret_token": SECRET}
    if base:
        cfg["api_base_url"] = base
    cfg.update(config)
    return ChannelInfo(id="ch-1", tenant_id="t-1", name="tg", type="telegram", mode="duplex",
                       config=cfg, secret="whsec_x")


def activity(text: str | None = "Hello from converger", thread_sender: str | None = CHAT,
             attachments: list[Any] | None = None, **metadata: Any) -> OutboundActivity:
    return OutboundActivity(
        id="act-1", type="message", sender="agent", text=text, attachments=attachments or [],
        metadata=metadata, conversation_id="conv-1", tenant_id="t-1",
        timestamp="2026-12-07T09:00:00.000000Z", delivery_id="del-1", thread_sender=thread_sender)


@pytest.fixture
async def bot() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn(token=TOKEN, chats={CHAT, "-1001234567890"}) as s:
        yield s  # type: ignore[misc]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


# -- config ------------------------------------------------------------------------------------
def test_registered() -> None:
    assert isinstance(get("telegram"), TelegramAdapter)
    assert ADAPTER.delivers and set(ADAPTER.secret_fields) == {"bot_token", "secret_token"}
    assert {f.key for f in ADAPTER.config_fields} >= {"bot_token", "secret_token", "api_base_url"}


@pytest.mark.parametrize("config, message", [
    ({}, "telegram config missing: bot_token, secret_token"),
    ({"bot_token": TOKEN, "secret_token": "has space"}, "'secret_token' must be 1-256"),
    ({"bot_token": "abc", "secret_token": SECRET}, "'bot_token' must look like"),
    ({"bot_token": TOKEN, "secret_token": SECRET, "default_chat_id": "general"},
     "'default_chat_id'"),
    ({"bot_token": TOKEN, "secret_token": SECRET, "api_base_url": "api.telegram.org"},
     "'api_base_url'"),
])
def test_config_refused(config: dict[str, Any], message: str) -> None:
    assert message in (ADAPTER.validate_config(config) or "")


def test_config_accepted() -> None:
    assert ADAPTER.validate_config({"bot_token": TOKEN, "secret_token": SECRET,
                                    "default_chat_id": "@acme_news", "timeout_seconds": 5}) is None


# -- outbound ----------------------------------------------------------------------------------
async def test_send_text_to_the_chat(bot: TelegramStandIn, session: aiohttp.ClientSession) -> None:
    result = await ADAPTER.deliver(session, channel(bot.url), activity(reply_to_message_id=1365))
    assert result.ok and result.provider_message_id == str(bot.sent[0]["message_id"])
    seen = bot.requests[0]
    assert seen.path == f"/bot{TOKEN}/sendMessage"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.body == {"chat_id": CHAT, "text": "Hello from converger",
                         "reply_parameters": {"message_id": 1365,
                                              "allow_sending_without_reply": True}}
    assert result.metadata == {"chat_id": CHAT, "telegram_message_ids": [result.provider_message_id]}


async def test_chat_from_metadata_then_default(bot: TelegramStandIn,
                                               session: aiohttp.ClientSession) -> None:
    ch = channel(bot.url, default_chat_id="-1001234567890")
    await ADAPTER.deliver(session, ch, activity(thread_sender=None))
    await ADAPTER.deliver(session, ch, activity(thread_sender="999", telegram_chat_id=CHAT))
    assert [r.body["chat_id"] for r in bot.requests] == ["-1001234567890", CHAT]
    none = await ADAPTER.deliver(session, channel(bot.url), activity(thread_sender=None))
    assert not none.ok and not none.retryable and "no Telegram chat" in (none.error or "")
    assert len(bot.requests) == 2


async def test_media(bot: TelegramStandIn, session: aiohttp.ClientSession) -> None:
    photo = {"type": "image", "url": "https://example.com/a.jpg", "size": 1000}
    doc = {"type": "document", "file_id": "BQACAgIAAxkBAAIBaGVa-doc"}
    one = await ADAPTER.deliver(session, channel(bot.url), activity("caption", attachments=[photo]))
    assert one.ok
    assert bot.requests[-1].path.endswith("/sendPhoto")
    assert bot.requests[-1].body == {"chat_id": CHAT, "photo": photo["url"], "caption": "caption"}
    two = await ADAPTER.deliver(session, channel(bot.url), activity("text", attachments=[photo, doc]))
    assert two.ok and len(two.metadata["telegram_message_ids"]) == 3
    assert [r.path.rsplit("/", 1)[1] for r in bot.requests[1:]] == [
        "sendMessage", "sendPhoto", "sendDocument"]
    assert bot.requests[-1].body == {"chat_id": CHAT, "document": doc["file_id"]}


async def test_media_refused_before_sending(bot: TelegramStandIn,
                                            session: aiohttp.ClientSession) -> None:
    big = {"type": "image", "url": "https://example.com/big.jpg", "size": 6 * 1024 * 1024}
    result = await ADAPTER.deliver(session, channel(bot.url), activity(attachments=[big]))
    assert not result.ok and not result.retryable and "5 MB limit" in (result.error or "")
    local = {"type": "document", "url": "/uploads/t/file.pdf"}
    result = await ADAPTER.deliver(session, channel(bot.url), activity(attachments=[local]))
    assert not result.ok and not result.retryable and "absolute" in (result.error or "")
    empty = await ADAPTER.deliver(session, channel(bot.url), activity(text="  "))
    assert not empty.ok and not empty.retryable
    assert bot.requests == []


@pytest.mark.parametrize("setup, retryable, words", [
    (lambda b: b.blocked.add(CHAT), False, "Forbidden: bot was blocked by the user [error_code 403]"),
    (lambda b: b.chats.discard(CHAT), False, "Bad Request: chat not found [error_code 400]"),
    (lambda b: setattr(b, "revoked", True), False, "returned 401: Unauthorized"),
])
async def test_errors_fail_at_once(bot: TelegramStandIn, session: aiohttp.ClientSession,
                                   setup: Any, retryable: bool, words: str) -> None:
    setup(bot)
    result = await ADAPTER.deliver(session, channel(bot.url), activity())
    assert not result.ok and result.retryable is retryable
    assert words in (result.error or "")
    assert result.channel_unhealthy is bot.revoked


async def test_flood_control_honours_retry_after(bot: TelegramStandIn,
                                                 session: aiohttp.ClientSession) -> None:
    bot.script = [Reply(429, sample("error_too_many_requests.json")),
                  Reply(429, tg_error(429, "Too Many Requests: retry after 3", retry_after=3),
                        headers={"Retry-After": "20"}),
                  Reply(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})]
    first = await ADAPTER.deliver(session, channel(bot.url), activity())
    assert not first.ok and first.retryable and first.retry_after == 11
    second = await ADAPTER.deliver(session, channel(bot.url), activity())
    assert second.retry_after == 20  # the longer of the header and parameters.retry_after
    third = await ADAPTER.deliver(session, channel(bot.url), activity())
    assert not third.ok and third.retryable and "Bad Gateway" in (third.error or "")


async def test_timeout_is_retryable(bot: TelegramStandIn, session: aiohttp.ClientSession) -> None:
    bot.script = [Reply(200, sample("send_message_response.json"), delay=2)]
    result = await ADAPTER.deliver(session, channel(bot.url, timeout_seconds=0.2), activity())
    assert not result.ok and result.retryable and "timeout" in (result.error or "")


# -- inbound -----------------------------------------------------------------------------------
def test_text_update() -> None:
    (m,) = ADAPTER.parse_inbound(sample("update_text.json"))
    assert (m.sender, m.text, m.external_id, m.thread_key) == ("1111111", "/start", "10000", "1111111")
    assert m.metadata["profile_name"] == "Test Firstname Test Lastname"
    assert m.metadata["username"] == "Testusername"
    assert m.metadata["telegram_message_id"] == 1365 and m.metadata["update_type"] == "message"
    assert ADAPTER.parse_status(sample("update_text.json")) is None


def test_reply_edit_channel_post_and_callback() -> None:
    (reply,) = ADAPTER.parse_inbound(sample("update_reply.json"))
    assert reply.metadata["reply_to"] == 1334
    (edited,) = ADAPTER.parse_inbound(sample("update_edited.json"))
    assert edited.metadata["edited"] is True and edited.text == "Edited text"
    assert edited.external_id == "10002"  # a new update: a new activity, marked edited
    (post,) = ADAPTER.parse_inbound(sample("update_channel_post.json"))
    assert post.thread_key == post.sender == "-1009876543210"
    assert post.metadata["chat_title"] == "Announcements"
    (cb,) = ADAPTER.parse_inbound(sample("update_callback_query.json"))
    assert cb.text == "Data from button callback" and cb.thread_key == "1111111"
    assert cb.attachments == [{"type": "callback", "data": "Data from button callback",
                               "callback_query_id": "4382bfdwdsb323b2d9"}]


def test_media_become_typed_attachments() -> None:
    (photo,) = ADAPTER.parse_inbound(sample("update_photo.json"))
    assert photo.text == "The view from here"
    assert photo.attachments == [{"type": "image", "file_id": "AgACAgIAAxkBAAIBZ2Va-large",
                                  "file_unique_id": "AQADlarge", "file_size": 80417,
                                  "width": 1280, "height": 960}]
    (doc,) = ADAPTER.parse_inbound(sample("update_document_large.json"))
    assert doc.attachments[0]["type"] == "document" and doc.attachments[0]["too_large"] is True
    assert doc.attachments[0]["file_name"] == "recording.mp4"
    (mixed,) = ADAPTER.parse_inbound(sample("update_voice_location_contact.json"))
    assert [a["type"] for a in mixed.attachments] == ["voice", "location", "contact"]
    assert mixed.thread_key == "-1001234567890" and mixed.sender == "1111111"
    assert mixed.attachments[1] == {"type": "location", "latitude": 52.370216,
                                    "longitude": 4.895168}


def test_other_update_kinds_are_ignored_not_refused() -> None:
    with pytest.raises(InboundIgnored, match="inline_query"):
        ADAPTER.parse_inbound(sample("update_inline_query.json"))
    with pytest.raises(InboundIgnored, match="my_chat_member"):
        ADAPTER.parse_inbound({"update_id": 5, "my_chat_member": {"chat": {"id": 1}}})


@pytest.mark.parametrize("payload", [
    None, [], {"message": {"text": "x"}}, {"update_id": "10", "message": {}},
    {"update_id": True, "message": {}}, {"update_id": 10}, {"update_id": 10, "message": "text"},
])
def test_malformed_updates(payload: Any) -> None:
    with pytest.raises(InboundError) as info:
        ADAPTER.parse_inbound(payload)
    assert not isinstance(info.value, InboundIgnored)


def test_secret_token() -> None:
    ch = channel()
    assert ADAPTER.verify_signature(ch, {"X-Telegram-Bot-Api-Secret-Token": SECRET}, b"{}") is True
    assert ADAPTER.verify_signature(ch, {"x-telegram-bot-api-secret-token": SECRET}, b"{}") is True
    assert ADAPTER.verify_signature(ch, {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}, b"") is False
    assert ADAPTER.verify_signature(ch, {}, b"{}") is False


# -- management --------------------------------------------------------------------------------
async def test_set_webhook_and_info(bot: TelegramStandIn, session: aiohttp.ClientSession) -> None:
    url = "https://gw.example.com/api/v1/channels/ch-1/inbound"
    done = await ADAPTER.run_action(session, channel(bot.url), "set_webhook", url)
    assert done.ok and done.data["url"] == url
    assert bot.requests[0].path == f"/bot{TOKEN}/setWebhook"
    assert bot.requests[0].body == {"url": url, "secret_token": SECRET, "allowed_updates": [
        "message", "edited_message", "channel_post", "edited_channel_post", "callback_query"]}
    info = await ADAPTER.run_action(session, channel(bot.url), "webhook_info", url)
    assert info.ok and info.data["url"] == url and info.data["pending_update_count"] == 0
    bot.revoked = True
    refused = await ADAPTER.run_action(session, channel(bot.url), "webhook_info", url)
    assert not refused.ok and "401: Unauthorized" in (refused.error or "")
    unknown = await ADAPTER.run_action(session, channel(bot.url), "reboot", url)
    assert not unknown.ok and "no action 'reboot'" in (unknown.error or "")


@pytest.mark.parametrize("attachment", [{}, {"file_id": [1]}, {"type": "image", "url": "x"},
                                        {"file_id": ""}, {"file_id": None, "too_large": True}])
async def test_fetch_media_without_a_file_id(session: aiohttp.ClientSession,
                                             attachment: dict[str, Any]) -> None:
    got = await ADAPTER.fetch_media(session, channel("http://127.0.0.1:9"), attachment, 1000)
    assert isinstance(got, MediaError) and got.kind == "unsupported"


async def test_fetch_media(bot: TelegramStandIn, session: aiohttp.ClientSession) -> None:
    bot.files["doc-1"] = b"x" * 100
    got = await ADAPTER.fetch_media(session, channel(bot.url), {
        "type": "document", "file_id": "doc-1", "file_name": "a.pdf", "mime_type": "application/pdf"},
        1000)
    assert got == MediaFile(body=b"x" * 100, content_type="application/pdf", name="a.pdf")
    small = await ADAPTER.fetch_media(session, channel(bot.url), {"file_id": "doc-1"}, 99)
    assert isinstance(small, MediaError) and small.kind == "too_large"  # the body was over
    gone = await ADAPTER.fetch_media(session, channel(bot.url), {"file_id": "nope"}, 1000)
    assert isinstance(gone, MediaError) and gone.kind == "provider"
    assert "invalid file_id" in gone.error

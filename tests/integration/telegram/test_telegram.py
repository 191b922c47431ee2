"""Telegram on the real server against a stand-in Bot API: the webhook registered through the
management action, updates posted by the stand-in with the secret token it was given, replies
through the REST API reaching the stand-in addressed to the chat, every error class through the
delivery queue, and the bad input a webhook can bring — never a 500."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.telegram.conftest import (
    action,
    conversations_of,
    download,
    health_of,
    unique,
)
from tests.integration.telegram.standins import (
    Reply,
    TelegramStandIn,
    sample,
    text_update,
    tg_error,
)
from tests.integration.whatsapp.conftest import activities, delivery_of, eventually, post_inbound
from tests.support.api import Api
from tests.support.server import Server

TOKEN = "987654321:AAH-integration_token"
SECRET = "tg-integration_secret"
_ids = itertools.count(700_000)
_chats = itertools.count(5_000_000)


@pytest.fixture
async def bot() -> AsyncIterator[TelegramStandIn]:
    async with TelegramStandIn(token=TOKEN) as s:
        yield s  # type: ignore[misc]


async def telegram(api: Api, bot: TelegramStandIn, register: bool = True,
                   **config: Any) -> dict[str, Any]:
    """A tenant and a telegram channel on the stand-in, its webhook registered through the
    management action (so the stand-in posts to it with the secret token)."""
    tenant = await api.tenant(unique("tg"))
    cfg = {"bot_token": TOKEN, "secret_token": SECRET, "api_base_url": bot.url, **config}
    channel = await api.channel(tenant["id"], name="telegram", type="telegram", mode="duplex",
                                config=cfg)
    if register:
        done = await action(api, channel["id"], "set_webhook")
        assert done["data"]["ok"] and done["data"]["result"]["url"] == bot.webhook_url
    return {"tenant": tenant, "key": tenant["api_key"], "channel": channel}


def new_chat(bot: TelegramStandIn) -> int:
    chat = next(_chats)
    bot.chats.add(str(chat))
    return chat


async def test_end_to_end_message_reply_to_the_chat(chat_server: Server, capi: Api,
                                                    bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    cid = t["channel"]["id"]
    assert bot.webhook_url == f"{chat_server.url}/api/v1/channels/{cid}/inbound"
    assert bot.secret_token == SECRET
    assert bot.requests[0].path == f"/bot{TOKEN}/setWebhook"
    info = await action(capi, cid, "webhook_info")
    assert info["data"]["result"]["url"] == bot.webhook_url

    chat = new_chat(bot)
    status, body = await bot.notify(text_update(next(_ids), chat, "Where is my order?"))
    assert status == 201, body
    conv_id = body["conversation_id"]
    (first,) = await activities(capi, t["key"], conv_id)
    assert first["text"] == "Where is my order?" and first["sender"] == str(chat)
    assert first["metadata"]["profile_name"] == "Test Firstname Test Lastname"

    reply = await capi.post_activity(conv_id, t["key"], text="On its way!", sender="agent",
                                     metadata={"reply_to_message_id": first["metadata"]
                                               ["telegram_message_id"]})
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent")
    (sent,) = bot.sent
    assert sent["method"] == "sendMessage" and sent["chat_id"] == str(chat)
    assert sent["text"] == "On its way!"
    assert sent["reply_parameters"]["message_id"] == first["metadata"]["telegram_message_id"]
    assert row["provider_message_id"] == str(sent["message_id"])
    seen = bot.requests[-1]
    assert seen.path == f"/bot{TOKEN}/sendMessage" and seen.headers["Content-Type"] == "application/json"

    # A second message from the same chat continues the conversation; another chat starts its own.
    _, again = await bot.notify(text_update(next(_ids), chat, "Thanks"))
    assert again["conversation_id"] == conv_id
    _, other = await bot.notify(text_update(next(_ids), new_chat(bot), "Hello"))
    assert other["conversation_id"] != conv_id


async def test_group_chat_is_one_conversation(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    group = -new_chat(bot)
    bot.chats.add(str(group))
    _, one = await bot.notify(text_update(next(_ids), group, "hi", user_id=1))
    _, two = await bot.notify(text_update(next(_ids), group, "hi too", user_id=2))
    assert one["conversation_id"] == two["conversation_id"]
    acts = await activities(capi, t["key"], one["conversation_id"])
    assert [a["sender"] for a in acts] == ["1", "2"]
    reply = await capi.post_activity(one["conversation_id"], t["key"], text="hello all")
    await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent")
    assert bot.sent[-1]["chat_id"] == str(group)


async def test_media_become_attachments(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    bot.chats.add("1111111")  # the samples' chat
    photo = sample("update_photo.json")
    photo["update_id"] = next(_ids)
    status, body = await bot.notify(photo)
    assert status == 201
    (act,) = await activities(capi, t["key"], body["conversation_id"])
    assert act["text"] == "The view from here"
    # Downloaded in the background (test_files_downloaded_in_the_background): a status.
    assert act["attachments"][0].pop("status") in ("pending", "stored", "failed")
    act["attachments"][0].pop("error", None)
    assert act["attachments"] == [{"type": "image", "file_id": "AgACAgIAAxkBAAIBZ2Va-large",
                                   "file_unique_id": "AQADlarge", "file_size": 80417,
                                   "width": 1280, "height": 960}]
    doc = sample("update_document_large.json")
    doc["update_id"] = next(_ids)
    _, body = await bot.notify(doc)
    acts = await activities(capi, t["key"], body["conversation_id"])
    assert acts[-1]["attachments"][0]["too_large"] is True  # over getFile's 20 MB

    # The photo goes back out by its file id; a reply with a file over the URL limit fails
    # at once without calling Telegram.
    echo = await capi.post_activity(body["conversation_id"], t["key"], text="Got it",
                                    attachments=[act["attachments"][0]])
    await delivery_of(capi, echo["id"], lambda d: d["status"] == "sent")
    assert bot.sent[-1]["method"] == "sendPhoto"
    assert bot.sent[-1]["photo"] == "AgACAgIAAxkBAAIBZ2Va-large"
    assert bot.sent[-1]["caption"] == "Got it"
    def sends() -> int:  # not the background downloads' getFile calls
        return len([r for r in bot.requests if not r.path.endswith("/getFile")])
    calls = sends()
    big = await capi.post_activity(body["conversation_id"], t["key"], text="big", attachments=[
        {"type": "document", "url": "https://example.com/big.zip", "size": 30 * 1024 * 1024}])
    row = await delivery_of(capi, big["id"], lambda d: d["status"] == "failed")
    assert "20 MB limit" in row["last_error"] and row["attempts"] == 1
    assert sends() == calls


async def test_retried_update_creates_nothing(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    update = text_update(next(_ids), new_chat(bot), "once")
    first = await bot.notify(update)
    second = await bot.notify(update)
    assert first[0] == 201 and second[0] == 200 and second[1]["duplicate"] is True
    assert second[1]["activity_id"] == first[1]["activity_id"]
    assert len(await activities(capi, t["key"], first[1]["conversation_id"])) == 1


async def test_forged_secret_token_refused(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    cid = t["channel"]["id"]
    update = text_update(next(_ids), new_chat(bot), "let me in")
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                    {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}):
        status, body = await post_inbound(capi, cid, update, headers=headers)
        assert status == 401 and body["code"] == "invalid_signature", body
    assert await conversations_of(capi, cid) == []


async def test_other_updates_acknowledged_and_bad_ones_refused(capi: Api, chat_server: Server,
                                                               bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    cid = t["channel"]["id"]
    header = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    inline = sample("update_inline_query.json")
    for _ in range(3):  # acknowledged every time (Telegram must not retry), logged once
        status, body = await post_inbound(capi, cid, inline, headers=header)
        assert status == 200 and body == {"status": "ignored",
                                          "reason": "Telegram update of type 'inline_query' ignored"}
    assert chat_server.log().count("'inline_query' ignored") == 1
    for bad in ({"message": {"text": "no update id"}}, {"update_id": 1}, [1, 2], "text"):
        status, body = await post_inbound(capi, cid, bad, headers=header)
        assert status == 400 and body["code"] == "unparseable_inbound", body
    status, body = await post_inbound(capi, cid, None, raw=b'{"update_id": 1, "message": {',
                                      headers=header)
    assert status == 400 and body["code"] == "malformed_json"
    assert await conversations_of(capi, cid) == []


async def _reply(capi: Api, bot: TelegramStandIn, t: dict[str, Any], chat: int) -> dict[str, Any]:
    _, body = await bot.notify(text_update(next(_ids), chat, "hello"))
    return await capi.post_activity(body["conversation_id"], t["key"], text="answer")


@pytest.mark.parametrize("setup, message", [
    (lambda b, chat: b.blocked.add(str(chat)), "Forbidden: bot was blocked by the user"),
    (lambda b, chat: b.chats.discard(str(chat)), "Bad Request: chat not found"),
])
async def test_final_errors_fail_at_once(capi: Api, bot: TelegramStandIn, setup: Any,
                                         message: str) -> None:
    t = await telegram(capi, bot)
    chat = new_chat(bot)
    _, body = await bot.notify(text_update(next(_ids), chat, "hello"))
    setup(bot, chat)
    reply = await capi.post_activity(body["conversation_id"], t["key"], text="answer")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "failed")
    assert message in row["last_error"] and row["attempts"] == 1


async def test_flood_control_5xx_and_timeouts_retried(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot, timeout_seconds=0.5)
    chat = new_chat(bot)
    bot.script = [Reply(429, tg_error(429, "Too Many Requests: retry after 2", retry_after=2)),
                  Reply(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
                  Reply(200, sample("send_message_response.json"), delay=3)]
    reply = await _reply(capi, bot, t, chat)
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "sent", timeout=20)
    assert row["attempts"] == 4 and bot.sent[-1]["text"] == "answer"
    sends = [r for r in bot.requests if r.path.endswith("/sendMessage")]
    assert len(sends) == 4 and all(r.body["chat_id"] == str(chat) for r in sends)


async def test_revoked_token_fails_and_marks_channel_unhealthy(capi: Api,
                                                               bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    chat = new_chat(bot)
    _, body = await bot.notify(text_update(next(_ids), chat, "hello"))
    bot.revoked = True
    reply = await capi.post_activity(body["conversation_id"], t["key"], text="answer")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "failed")
    assert row["last_error"] == "Telegram Bot API returned 401: Unauthorized [error_code 401]"
    cid = t["channel"]["id"]
    assert await eventually(lambda: health_of(capi, cid), "the channel's health") == "unhealthy"
    refused = await action(capi, cid, "webhook_info", expect=502)
    assert refused["code"] == "provider_error" and "Unauthorized" in refused["detail"]


async def test_actions_refused_cleanly(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot, register=False)
    cid = t["channel"]["id"]
    unknown = await action(capi, cid, "reboot", expect=404)
    assert unknown["code"] == "unknown_action"
    ws = await capi.channel(t["tenant"]["id"], name="ws", type="websocket")
    assert (await action(capi, ws["id"], "set_webhook", expect=404))["code"] == "unknown_action"
    status, _, _ = await capi.call("POST", f"/api/admin/channels/{cid}/actions/set_webhook")
    assert status == 401
    done = await action(capi, cid, "delete_webhook")
    assert done["data"]["ok"] is True and bot.webhook_url is None


async def test_channel_config_and_secrets(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot, register=False)
    cfg = t["channel"]["config"]
    assert cfg["bot_token"] == "****" and cfg["secret_token"] == "****"
    tenant = t["tenant"]["id"]
    for bad in ({"bot_token": TOKEN}, {"bot_token": "nope", "secret_token": SECRET},
                {"bot_token": TOKEN, "secret_token": "has spaces"}):
        status, body, _ = await capi.call("POST", "/api/admin/channels", headers=capi.admin, json={
            "tenant_id": tenant, "name": unique("bad"), "type": "telegram", "config": bad})
        assert status == 422 and body["code"] == "validation_failed", body


async def _settled(api: Api, key: str, conv_id: str, index: int = -1) -> dict[str, Any]:
    """The first attachment of the conversation's activity ``index`` once its background
    download has ended (stored or failed)."""
    async def probe() -> dict[str, Any] | None:
        att: dict[str, Any] = (await activities(api, key, conv_id))[index]["attachments"][0]
        return att if att.get("status") in ("stored", "failed") else None
    return await eventually(probe, "the attachment's download", timeout=20)


async def test_inbound_file_downloaded_into_the_upload_store(capi: Api, bot: TelegramStandIn) -> None:
    t = await telegram(capi, bot)
    bot.chats.add("1111111")
    photo = sample("update_photo.json")
    photo["update_id"] = next(_ids)
    bot.files["AgACAgIAAxkBAAIBZ2Va-large"] = b"\xff\xd8\xff-a-jpeg-photo"
    _, body = await bot.notify(photo)
    conv_id, act_id = body["conversation_id"], body["activity_id"]
    key = {"x-api-key": t["key"]}
    # Downloaded in the background (gateway/workers/media.py): getFile, then the file.
    att = await _settled(capi, t["key"], conv_id)
    assert att["status"] == "stored", att
    assert att["contentType"] == "image/jpeg"
    assert att["size"] == len(bot.files["AgACAgIAAxkBAAIBZ2Va-large"])
    assert [r.path for r in bot.requests[-2:]] == [
        f"/bot{TOKEN}/getFile", f"/file/bot{TOKEN}/documents/AgACAgIAAxkBAAIBZ2Va-large"]
    assert bot.requests[-2].body == {"file_id": "AgACAgIAAxkBAAIBZ2Va-large"}
    status, content = await download(capi, att["contentUrl"], key)
    assert status == 200 and content == b"\xff\xd8\xff-a-jpeg-photo"
    # Asked for on request, the stored copy is the answer: nothing downloaded again.
    path = f"/api/v1/conversations/{conv_id}/activities/{act_id}/attachments/0/fetch"
    calls = len(bot.requests)
    fetched = await capi.ok("POST", path, 200, headers=key)
    assert fetched["data"]["url"] == att["contentUrl"] and len(bot.requests) == calls

    # Over getFile's 20 MB: refused before asking Telegram; no such attachment: 404.
    doc = sample("update_document_large.json")
    doc["update_id"] = next(_ids)
    _, big = await bot.notify(doc)
    status, problem, _ = await capi.call(
        "POST", f"/api/v1/conversations/{big['conversation_id']}/activities/"
                f"{big['activity_id']}/attachments/0/fetch", headers=key)
    assert status == 413 and problem["code"] == "file_too_large"
    status, problem, _ = await capi.call("POST", path.replace("/0/", "/5/"), headers=key)
    assert status == 404
    # An activity posted through the REST API has no provider file; a revoked token is a 502.
    mine = await capi.post_activity(conv_id, t["key"], text="x",
                                    attachments=[{"type": "image", "file_id": "abc"}])
    status, problem, _ = await capi.call(
        "POST", f"/api/v1/conversations/{conv_id}/activities/{mine['id']}/attachments/0/fetch",
        headers=key)
    assert status == 400 and problem["code"] == "not_downloadable"
    bot.files["AgACAgIAAxkBAAIBZ2Va-medium"] = b"medium"
    photo2 = sample("update_photo.json")
    photo2["update_id"] = next(_ids)
    photo2["message"]["photo"] = photo2["message"]["photo"][:2]
    bot.revoked = True  # before it comes in: the background download cannot have it either
    _, second = await bot.notify(photo2)
    status, problem, _ = await capi.call(
        "POST", f"/api/v1/conversations/{conv_id}/activities/{second['activity_id']}"
                "/attachments/0/fetch", headers=key)
    assert status == 502 and problem["code"] == "provider_error"
    assert "Unauthorized" in problem["detail"]
    # Another tenant cannot reach the file nor fetch it.
    other = await capi.tenant(unique("tg-other"))
    status, _, _ = await capi.call("GET", fetched["data"]["url"],
                                   headers={"x-api-key": other["api_key"]})
    assert status == 404
    status, _, _ = await capi.call("POST", path, headers={"x-api-key": other["api_key"]})
    assert status == 404

"""The admin channel form and list for Telegram and Slack: their inputs with help text, the
inbound URL to paste into the provider's console, and their management actions run from the
page against stand-in providers (the provider's refusal shown, never a 500)."""

from __future__ import annotations

import html
import re

from tests.integration.slack.standins import SlackStandIn
from tests.integration.telegram.standins import TelegramStandIn
from tests.integration.web.conftest import Client
from tests.support.api import Api
from tests.support.server import Server

TG_TOKEN = "123456789:AAE-web_token"
SLACK_TOKEN = "xoxb-web-token"


def _errors(body: str) -> list[str]:
    return re.findall(r'class="errors">([^<]+)', body)


async def test_form_has_the_fields_and_help(admin: Client) -> None:
    status, body, _ = await admin.get("/admin/channels")
    assert status == 200
    for name in ("config.telegram.bot_token", "config.telegram.secret_token",
                 "config.telegram.default_chat_id", "config.slack.bot_token",
                 "config.slack.signing_secret", "config.slack.default_channel"):
        assert f'name="{name}"' in body, name
    # Secrets are password inputs; each input says where its value comes from.
    assert re.search(r'name="config\.telegram\.bot_token" type="password"', body)
    assert re.search(r'name="config\.slack\.signing_secret" type="password"', body)
    assert "From @BotFather" in body and "Signing Secret" in body


async def test_create_telegram_from_the_form_and_register_its_webhook(
        admin: Client, web_api: Api, web_server: Server) -> None:
    t = await web_api.tenant("tg-web")
    base = {"tenant_id": t["id"], "name": "tg", "type": "telegram", "mode": "duplex"}
    status, body, _ = await admin.post("/admin/channels", {**base,
                                                           "config.telegram.bot_token": "nope"})
    assert status == 422 and any("telegram config missing: secret_token" in e
                                 for e in _errors(body))
    async with TelegramStandIn(token=TG_TOKEN) as bot:
        status, body, _ = await admin.post("/admin/channels", {
            **base, "config.telegram.bot_token": TG_TOKEN,
            "config.telegram.secret_token": "web-secret",
            "config.telegram.api_base_url": bot.url})
        assert status == 201, _errors(body)
        cid = re.search(r'/admin/channels/([0-9a-f-]{36})/token', body).group(1)
        inbound = f"{web_server.url}/api/v1/channels/{cid}/inbound"
        assert f'id="inbound-{cid}">{inbound}</code>' in body
        assert TG_TOKEN not in body and "web-secret" not in body

        status, body, _ = await admin.post(f"/admin/channels/{cid}/actions/set_webhook", {})
        assert status == 200 and "Set webhook: done" in body
        assert bot.webhook_url == inbound and bot.secret_token == "web-secret"
        status, body, _ = await admin.post(f"/admin/channels/{cid}/actions/webhook_info", {})
        assert status == 200 and f'"url": "{inbound}"' in html.unescape(body)

        bot.revoked = True
        status, body, _ = await admin.post(f"/admin/channels/{cid}/actions/webhook_info", {})
        assert status == 502 and "Webhook info failed: Telegram Bot API returned 401" in body
    status, _, headers = await admin.post(f"/admin/channels/{cid}/actions/reboot", {})
    assert status == 302 and headers["location"] == "/admin/channels"
    _, body, _ = await admin.get("/admin/channels")
    assert "telegram channels have no action" in html.unescape(body)


async def test_slack_channel_row(admin: Client, web_api: Api, web_server: Server) -> None:
    t = await web_api.tenant("slack-web")
    async with SlackStandIn(SLACK_TOKEN, "s3cret") as slack:
        ch = await web_api.channel(t["id"], name="slack-web", type="slack", mode="duplex", config={
            "bot_token": SLACK_TOKEN, "signing_secret": "s3cret", "api_base_url": slack.api_base,
            "default_channel": "C0123456789"})
        _, body, _ = await admin.get(f"/admin/channels?tenant_id={t['id']}")
        row = body[body.index('data-channel="slack-web"'):]
        row = row[:row.index("</tr>")]
        assert "Default Slack channel id: C0123456789" in row
        assert f"{web_server.url}/api/v1/channels/{ch['id']}/inbound" in row
        assert "Auth test" in row
        status, body, _ = await admin.post(f"/admin/channels/{ch['id']}/actions/auth_test", {})
        assert status == 200 and "Subarachnoid Workspace" in body

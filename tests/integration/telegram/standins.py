"""A stand-in Telegram Bot API: a real aiohttp server on loopback that checks every request
converger sends (path with the bot token, method, JSON body) the way the Bot API does, answers
with its documented success and error shapes, and posts updates to the webhook registered
with it (``setWebhook``), with the secret token it was given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.integration.whatsapp.standins import Reply, StandIn

SAMPLES = Path(__file__).parent / "samples"
__all__ = ["Reply", "TelegramStandIn", "sample", "text_update"]


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def tg_error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


# What each method needs, as the Bot API checks it: (field, accepted types).
REQUIRED = {
    "sendMessage": ("text", str), "sendPhoto": ("photo", str), "sendDocument": ("document", str),
    "sendVideo": ("video", str), "sendAudio": ("audio", str), "sendVoice": ("voice", str),
}


class TelegramStandIn(StandIn):
    """``POST /bot<token>/<method>``. ``chats`` are the chats the bot may write to (others:
    400 chat not found), ``blocked`` those whose user blocked the bot (403); ``revoked``
    makes every call a 401 Unauthorized."""

    def __init__(self, token: str, chats: set[str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.chats = chats if chats is not None else set()
        self.blocked: set[str] = set()
        self.revoked = False
        self.secret_token: str | None = None
        self.sent: list[dict[str, Any]] = []  # accepted sends: {"method", "message_id", **body}
        self.files: dict[str, bytes] = {}  # file_id → content, served by getFile + /file/
        self._next_id = 5000

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{bot}/{method}", self.call)
        app.router.add_get("/file/{bot}/{path:.+}", self.download)

    async def download(self, request: web.Request) -> web.Response:
        """``https://api.telegram.org/file/bot<token>/<file_path>``."""
        await self.record(request)
        if request.match_info["bot"] != f"bot{self.token}" or self.revoked:
            return web.json_response(tg_error(401, "Unauthorized"), status=401)
        file_id = request.match_info["path"].removeprefix("documents/")
        if file_id not in self.files:
            return web.json_response(tg_error(404, "Not Found"), status=404)
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    def webhook_headers(self, raw: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.secret_token
        return headers

    async def call(self, request: web.Request) -> web.Response:
        seen = await self.record(request)
        if request.match_info["bot"] != f"bot{self.token}" or self.revoked:
            return web.json_response(tg_error(401, "Unauthorized"), status=401)
        if request.content_type != "application/json" or not isinstance(seen.body, dict):
            return web.json_response(tg_error(400, "Bad Request: message text is empty"),
                                     status=400)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        method, body = request.match_info["method"], seen.body
        if method == "setWebhook":
            return self._set_webhook(body)
        if method == "getWebhookInfo":
            info = sample("webhook_info.json")
            info["result"]["url"] = self.webhook_url or ""
            info["result"]["allowed_updates"] = body.get("allowed_updates", [])
            return web.json_response(info)
        if method == "deleteWebhook":
            self.webhook_url = self.secret_token = None
            return web.json_response({"ok": True, "result": True,
                                      "description": "Webhook was deleted"})
        if method == "getFile":
            file_id = body.get("file_id")
            if file_id not in self.files:
                return web.json_response(tg_error(400, "Bad Request: invalid file_id"),
                                         status=400)
            return web.json_response({"ok": True, "result": {
                "file_id": file_id, "file_unique_id": "u-" + file_id,
                "file_size": len(self.files[file_id]), "file_path": f"documents/{file_id}"}})
        if method not in REQUIRED:
            return web.json_response(tg_error(404, "Not Found"), status=404)
        return self._send(method, body)

    def _set_webhook(self, body: dict[str, Any]) -> web.Response:
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return web.json_response(tg_error(400, "Bad Request: bad webhook: invalid URL"),
                                     status=400)
        self.webhook_url = url
        self.secret_token = body.get("secret_token")
        return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})

    def _send(self, method: str, body: dict[str, Any]) -> web.Response:
        field, kind = REQUIRED[method]
        chat = body.get("chat_id")
        if not isinstance(chat, str | int) or isinstance(chat, bool):
            return web.json_response(tg_error(400, "Bad Request: chat_id is empty"), status=400)
        if not isinstance(body.get(field), kind) or not body[field]:
            return web.json_response(
                tg_error(400, f"Bad Request: message {field} is empty"), status=400)
        if str(chat) not in self.chats:
            return web.json_response(tg_error(400, "Bad Request: chat not found"), status=400)
        if str(chat) in self.blocked:
            return web.json_response(tg_error(403, "Forbidden: bot was blocked by the user"),
                                     status=403)
        self._next_id += 1
        self.sent.append({"method": method, "message_id": self._next_id, **body})
        answer = sample("send_message_response.json")
        answer["result"].update(message_id=self._next_id, chat={"id": chat, "type": "private"})
        return web.json_response(answer)


def text_update(update_id: int, chat_id: int, text: str, *, message_id: int | None = None,
                user_id: int | None = None) -> dict[str, Any]:
    """An update shaped like update_text.json, from ``user_id`` (default: the chat) in
    ``chat_id``."""
    payload = sample("update_text.json")
    msg = payload["message"]
    payload["update_id"] = update_id
    msg["chat"]["id"] = chat_id
    msg["from"]["id"] = user_id if user_id is not None else chat_id
    msg["message_id"] = message_id if message_id is not None else update_id
    msg["text"] = text
    return payload

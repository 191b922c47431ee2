"""A stand-in Slack Web API: a real aiohttp server on loopback that checks every request
converger sends (path, Bearer token, JSON body) the way Slack does — answering errors as
``200 {"ok": false, "error": …}`` like Slack — and posts Events API requests to converger
signed with the app's signing secret exactly as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.integration.whatsapp.standins import Reply, StandIn

SAMPLES = Path(__file__).parent / "samples"
__all__ = ["Reply", "SlackStandIn", "message_event", "sample", "slack_signature"]


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def slack_signature(secret: str, timestamp: str, raw: bytes) -> str:
    """Slack's request signature, computed here from Slack's description (the tests check it
    against slack_sdk's SignatureVerifier)."""
    base = b"v0:" + timestamp.encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackStandIn(StandIn):
    """``POST /api/<method>``: ``chat.postMessage`` and ``auth.test``. ``channels`` the bot
    is a member of; ``outside`` channels it exists in but was not invited to
    (not_in_channel); any other id is channel_not_found. ``revoked`` answers token_revoked."""

    def __init__(self, token: str, signing_secret: str, channels: set[str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.signing_secret = signing_secret
        self.channels = channels if channels is not None else set()
        self.outside: set[str] = set()
        self.revoked = False
        self.clock_skew = 0  # seconds added to the signing timestamp (a stale request)
        self.retry_num: int | None = None  # X-Slack-Retry-Num on the next notifications
        self.posted: list[dict[str, Any]] = []  # accepted posts: {"ts", **body}
        self.files: dict[str, bytes] = {}  # path under /files-pri/ → content
        self._ts = 1_700_000_000

    @property
    def api_base(self) -> str:
        return f"{self.url}/api"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self.call)
        app.router.add_get("/files-pri/{path:.+}", self.download)

    def file_url(self, path: str) -> str:
        return f"{self.url}/files-pri/{path}"

    async def download(self, request: web.Request) -> web.Response:
        """A private file: with the bot token, its bytes; without, Slack's sign-in page."""
        await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}" or self.revoked:
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        body = self.files.get(request.match_info["path"])
        if body is None:
            return web.Response(status=404, text="file not found")
        return web.Response(body=body, content_type="image/gif")

    def webhook_headers(self, raw: bytes) -> dict[str, str]:
        stamp = str(int(time.time()) + self.clock_skew)
        headers = {"Content-Type": "application/json", "User-Agent": "Slackbot 1.0",
                   "X-Slack-Request-Timestamp": stamp,
                   "X-Slack-Signature": slack_signature(self.signing_secret, stamp, raw)}
        if self.retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(self.retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return headers

    async def call(self, request: web.Request) -> web.Response:
        seen = await self.record(request)
        method = request.match_info["method"]
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if self.revoked:
            return web.json_response({"ok": False, "error": "token_revoked"})
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        if method == "auth.test":
            return web.json_response(sample("auth_test_response.json"))
        if method != "chat.postMessage":
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return web.json_response({"ok": False, "error": "invalid_form_data"})
        body = seen.body if isinstance(seen.body, dict) else {}
        channel = body.get("channel")
        if not isinstance(body.get("text"), str) or not body["text"]:
            return web.json_response({"ok": False, "error": "no_text"})
        if channel in self.outside:
            return web.json_response({"ok": False, "error": "not_in_channel"})
        if channel not in self.channels:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        thread = body.get("thread_ts")
        if thread is not None and not isinstance(thread, str):
            return web.json_response({"ok": False, "error": "invalid_thread_ts"})
        self._ts += 1
        ts = f"{self._ts}.000100"
        self.posted.append({"ts": ts, **body})
        answer = sample("post_message_response.json")
        answer.update(channel=channel, ts=ts)
        answer["message"].update(text=body["text"], ts=ts)
        if thread:
            answer["message"]["thread_ts"] = thread
        return web.json_response(answer)


def message_event(event_id: str, channel: str, user: str, text: str, ts: str, *,
                  thread_ts: str | None = None) -> dict[str, Any]:
    """An event_callback shaped like event_message.json (event_thread_reply.json with
    ``thread_ts``)."""
    payload = sample("event_thread_reply.json" if thread_ts else "event_message.json")
    event = payload["event"]
    event.update(channel=channel, user=user, text=text, ts=ts, event_ts=ts)
    if thread_ts:
        event["thread_ts"] = thread_ts
    payload["event_id"] = event_id
    return payload

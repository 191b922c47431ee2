"""Stand-in SMS providers: real aiohttp servers on loopback speaking Twilio's Messages resource
(form-encoded, HTTP basic auth) and posting Twilio's form webhooks, signed as Twilio signs them."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.integration.whatsapp.standins import Reply, StandIn

SAMPLES = Path(__file__).parent / "samples"
__all__ = ["MediaStorage", "Reply", "TwilioStandIn", "VonageStandIn", "basic", "sample"]


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    """The REST API's error body."""
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class TwilioStandIn(StandIn):
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` as Twilio answers it: basic auth
    with the account SID and auth token (else 401, error 20003), a form body with ``To``, the
    channel's ``From`` (or ``MessagingServiceSid``) and ``Body`` or ``MediaUrl`` (else 400
    21602 / 21606), ``To`` a valid number (else 400 21211) that has not texted STOP
    (``unsubscribed``: 400 21610). An accepted message gets a 201 and the Message resource;
    ``auto_statuses`` then go to its ``StatusCallback``, signed as Twilio signs them."""

    def __init__(self, account_sid: str, auth_token: str, number: str) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.number = number
        self.unsubscribed: set[str] = set()
        self.sent: list[dict[str, Any]] = []  # accepted: {"sid", "To", "From", "Body", "MediaUrl", …}
        self.answers: list[tuple[int, str, str]] = []  # converger's (status, content type, body)
        self.status_urls: dict[str, str] = {}  # message sid → its StatusCallback
        self._next = 1
        self.cdn: MediaStorage | None = None  # where inbound media URLs redirect to

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.create)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{message}/Media/{media}",
                           self.media_resource)

    async def media_resource(self, request: web.Request) -> web.Response:
        """A Media resource's URL (an inbound MMS's ``MediaUrl{n}``): Basic auth enforced (else
        401, error 20003); a media sid it does not hold is 404 (20404); else a 307 to the
        file's short-lived URL on the storage stand-in (``cdn``), as Twilio redirects."""
        await self.record(request)
        if request.match_info["sid"] != self.account_sid \
                or request.headers.get("Authorization") != basic(self.account_sid, self.auth_token):
            return web.json_response(twilio_error(20003, "Authenticate", 401), status=401)
        media = request.match_info["media"]
        if self.cdn is None or media not in self.cdn.files:
            return web.json_response(twilio_error(
                20404, f"The requested resource {request.path} was not found", 404), status=404)
        raise web.HTTPTemporaryRedirect(f"{self.cdn.url}/media.twiliocdn.com/{self.account_sid}/"
                                        f"{media}?X-Amz-Signature=abc123&X-Amz-Expires=14400")

    async def create(self, request: web.Request) -> web.Response:
        seen = await self.record(request)
        expected = basic(self.account_sid, self.auth_token)
        if request.match_info["sid"] != self.account_sid \
                or request.headers.get("Authorization") != expected:
            return web.json_response(twilio_error(20003, "Authenticate", 401), status=401)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response(twilio_error(21602, "Message body is required.", 400),
                                     status=400)
        form = await request.post()
        fields = {k: form.getall(k) for k in set(form.keys())}
        one = {k: str(v[0]) for k, v in fields.items()}
        seen.body = {**one, "MediaUrl": [str(u) for u in fields.get("MediaUrl", [])]}
        to = one.get("To", "")
        if one.get("From") != self.number and not one.get("MessagingServiceSid"):
            return web.json_response(twilio_error(
                21606, "The 'From' phone number provided is not a valid message-capable Twilio "
                       "phone number for this destination/account", 400), status=400)
        if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
            return web.json_response(twilio_error(
                21211, f"The 'To' number {to} is not a valid phone number.", 400), status=400)
        if to in self.unsubscribed:
            return web.json_response(twilio_error(
                21610, "Attempt to send to unsubscribed recipient", 400), status=400)
        if not one.get("Body") and not fields.get("MediaUrl"):
            return web.json_response(twilio_error(21602, "Message body is required.", 400),
                                     status=400)
        sid = f"SM{self._next:032x}"
        self._next += 1
        self.sent.append({"sid": sid, **seen.body})
        resource = {**sample("twilio_send_response.json"), "sid": sid, "to": to,
                    "from": one.get("From"), "body": one.get("Body", ""), "status": "queued"}
        callback = one.get("StatusCallback")
        if callback:
            self.status_urls[sid] = callback
            if self.auto_statuses:
                task = asyncio.get_running_loop().create_task(self._statuses(sid, to))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        return web.json_response(resource, status=201)

    def status_payload(self, message_id: str, status: str, to: str) -> Any:
        body: dict[str, str] = {
            "SmsSid": message_id, "SmsStatus": status, "MessageStatus": status, "To": to,
            "MessageSid": message_id, "AccountSid": self.account_sid, "From": self.number,
            "ApiVersion": "2010-04-01"}
        if status in ("undelivered", "failed"):
            body.update(ErrorCode="30003", ErrorMessage="Unreachable destination handset")
        return body

    async def _statuses(self, message_id: str, to: str) -> None:
        await asyncio.sleep(0)  # after the send's answer has gone out, as Twilio does
        for status in self.auto_statuses:
            await self.status(message_id, status, to)

    async def status(self, message_id: str, status: str, to: str) -> tuple[int, str, str]:
        """The status callback Twilio posts to the message's ``StatusCallback``."""
        return await self.post_form(self.status_urls[message_id],
                                    self.status_payload(message_id, status, to))

    def signature(self, url: str, params: dict[str, str]) -> str:
        return str(RequestValidator(self.auth_token).compute_signature(url, params))

    async def post_form(self, url: str, params: dict[str, str], *,
                        signature: str | None = None) -> tuple[int, str, str]:
        """POST ``params`` form-encoded to ``url`` with ``X-Twilio-Signature`` as Twilio does
        (``signature`` overrides it); converger's (status, content type, body)."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": signature if signature is not None
                   else self.signature(url, params),
                   "I-Twilio-Idempotency-Token": params.get("MessageSid", "")}
        async with self._client.post(url, data=urlencode(params).encode(),
                                     headers=headers) as resp:
            answer = (resp.status, resp.content_type, await resp.text())
            self.answers.append(answer)
            return answer

    async def text_in(self, params: dict[str, str], *,
                      signature: str | None = None) -> tuple[int, str, str]:
        """A text message to the channel's number (the incoming-message webhook)."""
        assert self.webhook_url, "set webhook_url first"
        return await self.post_form(self.webhook_url, params, signature=signature)


# -- Vonage ------------------------------------------------------------------------------------
class MediaStorage(StandIn):
    """The storage Twilio's media URLs redirect to (a pre-signed S3 URL on another origin):
    ``files`` media sid → (bytes, content type). Like S3, it refuses a request that carries an
    ``Authorization`` header besides the URL's own signature (400 InvalidArgument), so a
    client that forwarded the account's credentials here fails."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[bytes, str]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/media.twiliocdn.com/{sid}/{media}", self.get)

    async def get(self, request: web.Request) -> web.Response:
        await self.record(request)
        if "Authorization" in request.headers:
            return web.Response(status=400, content_type="application/xml", text=(
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; "
                "only the X-Amz-Algorithm query parameter, Signature query string parameter or "
                "the Authorization header should be specified</Message></Error>"))
        item = self.files.get(request.match_info["media"])
        if item is None or not request.query.get("X-Amz-Signature"):
            return web.Response(status=403)
        return web.Response(body=item[0], content_type=item[1])


def vonage_error(status: int, title: str, detail: str) -> dict[str, Any]:
    """The Messages API's error body (RFC 7807)."""
    return {"type": f"https://developer.vonage.com/api-errors/messages#{status}",
            "title": title, "detail": detail, "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf"}


class VonageStandIn(StandIn):
    """``POST /v1/messages`` as the Messages API answers it: a Bearer JWT signed RS256 by the
    application's private key (checked with its public key, ``application_id`` claim) or basic
    auth with the API key and secret; a JSON body with ``channel: sms``, ``message_type: text``,
    ``to`` (digits), ``from`` the account's number, ``text`` (else 422). 202 and a
    ``message_uuid``; ``auto_statuses`` follow, signed as Vonage signs webhooks (HS256 JWT with
    the signature secret and ``payload_hash``)."""

    def __init__(self, number: str, signature_secret: str, *, application_id: str | None = None,
                 public_key: Any = None, api_key: str | None = None,
                 api_secret: str | None = None) -> None:
        super().__init__()
        self.number = number
        self.signature_secret = signature_secret
        self.application_id = application_id
        self.public_key = public_key
        self.api_key = api_key
        self.api_secret = api_secret
        self.sent: list[dict[str, Any]] = []
        self.clock_skew = 0
        self.status_url: str | None = None
        self._next = 1

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.send)

    def _authorized(self, header: str) -> bool:
        import jwt

        if header.startswith("Bearer ") and self.public_key is not None:
            try:
                claims = jwt.decode(header[7:], self.public_key, algorithms=["RS256"])
            except jwt.PyJWTError:
                return False
            return bool(claims.get("application_id") == self.application_id and claims.get("jti"))
        if header.startswith("Basic ") and self.api_key:
            return header == basic(self.api_key, self.api_secret or "")
        return False

    async def send(self, request: web.Request) -> web.Response:
        seen = await self.record(request)
        if not self._authorized(request.headers.get("Authorization", "")):
            return web.json_response(vonage_error(401, "Unauthorized",
                                                  "You did not provide correct credentials."),
                                     status=401)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        body = seen.body
        if not isinstance(body, dict) or body.get("channel") != "sms" \
                or body.get("message_type") != "text" or not body.get("text"):
            return web.json_response(vonage_error(422, "Invalid params",
                                                  "The value of one or more parameters is "
                                                  "invalid."), status=422)
        to = str(body.get("to", ""))
        if not to.isdigit() or not 7 <= len(to) <= 15 or body.get("from") != self.number:
            return web.json_response(vonage_error(422, "Invalid params",
                                                  "The value of one or more parameters is "
                                                  "invalid."), status=422)
        message_uuid = f"aaaaaaaa-bbbb-4ccc-8ddd-{self._next:012d}"
        self._next += 1
        self.sent.append({**body, "message_uuid": message_uuid})
        if self.auto_statuses and self.status_url:
            task = asyncio.get_running_loop().create_task(self._statuses(message_uuid, to))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return web.json_response({"message_uuid": message_uuid}, status=202)

    def status_payload(self, message_id: str, status: str, to: str) -> Any:
        body: dict[str, Any] = {"message_uuid": message_id, "to": to, "from": self.number,
                                "timestamp": "2026-12-07T10:00:05Z", "status": status,
                                "channel": "sms"}
        if status in ("rejected", "undeliverable"):
            body["error"] = {"type": "https://developer.vonage.com/api-errors/messages#1320",
                             "title": 1320, "detail": "Message failed because the number is "
                             "blocked"}
        return body

    async def _statuses(self, message_id: str, to: str) -> None:
        await asyncio.sleep(0)
        for status in self.auto_statuses:
            assert self.status_url
            await self.post(self.status_url, self.status_payload(message_id, status, to))

    def webhook_headers(self, raw: bytes) -> dict[str, str]:
        import hashlib
        import time as _time

        import jwt

        token = jwt.encode({"iat": int(_time.time()) + self.clock_skew, "jti": "jti-" + str(
            self._next), "iss": "Vonage", "payload_hash": hashlib.sha256(raw).hexdigest(),
            "api_key": self.api_key or "abcd1234", "application_id": self.application_id},
            self.signature_secret, algorithm="HS256")
        return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    async def post(self, url: str, payload: Any,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        raw = json.dumps(payload).encode()
        async with self._client.post(url, data=raw,
                                     headers=headers or self.webhook_headers(raw)) as resp:
            return resp.status, await resp.json(content_type=None)

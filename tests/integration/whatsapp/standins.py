"""Stand-in provider servers: real aiohttp servers on loopback that speak the documented
WhatsApp Cloud API (Graph) and Infobip WhatsApp formats.

Each one checks every request converger sends (path, auth header, JSON body) the way the
provider would, answers with the provider's documented success or error shapes, records
what it received, and can be told to answer the next requests differently (429, 500, a
stall) with ``script``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

# Copies of the shared provider samples, plus payloads derived from the providers' docs.
SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


@dataclass
class Reply:
    """A scripted answer: status, JSON body, headers; ``delay`` stalls before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


class StandIn:
    """Shared plumbing: start/stop on a free loopback port, a request log, a reply script,
    and the provider's side of the webhooks: ``notify`` posts a payload to ``webhook_url`` the
    way the provider does (its headers, its signature or credentials), and with
    ``auto_statuses`` every accepted message is followed by those status webhooks, in order,
    as the provider sends them on its own."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.script: list[Reply] = []
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.webhook_url: str | None = None
        self.auto_statuses: list[str] = []
        self.callbacks: list[tuple[int, Any]] = []  # converger's answers to our webhooks
        self._client: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> StandIn:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._client:
            await self._client.close()
        if self._runner:
            await self._runner.cleanup()

    async def settled(self) -> None:
        """Wait until the automatic status webhooks sent so far have been answered."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def webhook_headers(self, raw: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    async def notify(self, payload: Any) -> tuple[int, Any]:
        """POST ``payload`` to ``webhook_url`` as the provider would; converger's answer."""
        assert self.webhook_url, "set webhook_url first"
        if self._client is None:
            self._client = aiohttp.ClientSession()
        raw = json.dumps(payload).encode()
        async with self._client.post(self.webhook_url, data=raw,
                                     headers=self.webhook_headers(raw)) as resp:
            body = await resp.json(content_type=None)
            self.callbacks.append((resp.status, body))
            return resp.status, body

    def status_payload(self, message_id: str, status: str, to: str) -> Any:
        raise NotImplementedError

    def accepted(self, message_id: str, to: str) -> None:
        """A message was accepted: send the automatic status webhooks after answering."""
        if self.auto_statuses and self.webhook_url:
            task = asyncio.get_running_loop().create_task(self._statuses(message_id, to))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _statuses(self, message_id: str, to: str) -> None:
        await asyncio.sleep(0)  # after the send's answer has gone out, as the provider does
        for status in self.auto_statuses:
            await self.notify(self.status_payload(message_id, status, to))

    async def __aenter__(self) -> StandIn:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def record(self, request: web.Request) -> Seen:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen = Seen(request.method, request.path, dict(request.headers), body, raw)
        self.requests.append(seen)
        self.arrived.set()
        return seen

    async def scripted(self) -> web.Response | None:
        if not self.script:
            return None
        reply = self.script.pop(0)
        if reply.delay:
            await asyncio.sleep(reply.delay)  # a provider that stalls: the client's timeout fires
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[Seen]:
        """Wait until ``n`` requests have arrived (no sleeping: an event per arrival)."""
        async def _wait() -> None:
            while len(self.requests) < n:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.requests


# -- Meta ------------------------------------------------------------------------------------
def meta_error(message: str, code: int, type_: str = "OAuthException", **extra: Any) -> dict[str, Any]:
    """The Graph API's error envelope (see meta_error_response.json)."""
    return {"error": {"message": message, "type": type_, "code": code,
                      "fbtrace_id": "AbCdEfGhIjKlMnOpQrStUvW", **extra}}


class MetaStandIn(StandIn):
    """``POST /{version}/{phone_number_id}/messages`` as the Cloud API answers it.

    ``allowed`` (when set) is the test-mode recipient list: anyone else gets Meta's
    error 131030; a ``to`` that is not a phone number gets 100 "Invalid parameter".
    """

    def __init__(self, token: str = "meta-token", phone_number_id: str = "106540352242922",
                 version: str = "v26.0", allowed: set[str] | None = None,
                 app_secret: str | None = None) -> None:
        super().__init__()
        self.token = token
        self.phone_number_id = phone_number_id
        self.version = version
        self.allowed = allowed
        self.app_secret = app_secret  # signs the webhooks (X-Hub-Signature-256) when set
        self.sent: list[dict[str, Any]] = []  # accepted messages: {"id", "to", "text"}
        self.waba_id = "102290129340398"
        self.media: dict[str, dict[str, Any]] = {}
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.upload_script: list[Reply] = []  # answers to the next media uploads
        self._hang = asyncio.Event()
        self.templates: list[dict[str, Any]] = sample("meta_message_templates.json")["data"]

    def webhook_headers(self, raw: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if self.app_secret:
            digest = hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = "sha256=" + digest
        return headers

    def status_payload(self, message_id: str, status: str, to: str) -> Any:
        payload = meta_status_notification(message_id, status, to, str(int(time.time())))
        payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = \
            self.phone_number_id
        return payload

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{phone}/messages", self.messages)
        app.router.add_post("/{version}/{phone}/media", self.upload_media)
        app.router.add_get("/{version}/{waba}/message_templates", self.message_templates)
        app.router.add_get("/{version}/{media_id}", self.media_info)
        app.router.add_get("/whatsapp_media/{media_id}", self.media_file)
        app.router.add_get("/cdn/{name}", self.cdn_file)

    async def stop(self) -> None:
        self._hang.set()  # a stalled download answers, so the runner stops at once
        await super().stop()

    def add_media(self, media_id: str, body: bytes, mime_type: str, *, served_as: str | None = None,
                  fault: str | None = None, gate: asyncio.Event | None = None,
                  fail_first: int = 0) -> None:
        """A file Meta holds: ``fault`` ``expired`` (the id lookup answers Graph's error 100),
        ``gone`` (the file URL 404s) or ``hang`` (the file URL never answers). With ``gate``
        the file URL answers only once the gate is set; its first ``fail_first`` requests
        answer 503."""
        self.media[media_id] = {"body": body, "mime_type": mime_type,
                                "served_as": served_as or mime_type, "fault": fault,
                                "gate": gate, "fail_first": fail_first}

    async def upload_media(self, request: web.Request) -> web.Response:
        """``POST /{version}/{phone_number_id}/media`` as the Cloud API documents it
        (developers.facebook.com/docs/whatsapp/cloud-api/reference/media, "Upload media"):
        ``multipart/form-data`` with ``messaging_product`` "whatsapp", the file's MIME ``type``
        and the ``file`` itself (of that type); answers ``{"id": "<media id>"}``, after which the
        id is retrievable like any media Meta holds. Recorded with ``body`` the form's fields
        (the file as ``{"filename", "content_type", "content"}``)."""
        problem: str | None = None
        fields: dict[str, Any] = {}
        if not request.content_type.startswith("multipart/form-data"):
            problem = "the body must be multipart/form-data"
        else:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    fields[part.name] = {"filename": part.filename,
                                         "content_type": part.headers.get("Content-Type"),
                                         "content": await part.read()}
                else:
                    fields[part.name] = await part.text()
        seen = Seen(request.method, request.path, dict(request.headers), fields, b"")
        self.requests.append(seen)
        self.arrived.set()
        if request.match_info["version"] != self.version or \
                request.match_info["phone"] != self.phone_number_id:
            return web.json_response(meta_error(
                f"Unsupported post request. Object with ID '{request.match_info['phone']}' "
                "does not exist", 100, "GraphMethodException", error_subcode=33), status=400)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(meta_error(
                "Error validating access token: Session has expired.", 190, error_subcode=463),
                status=401)
        if self.upload_script:  # the upload's own script: the sends keep theirs
            reply = self.upload_script.pop(0)
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        upload = fields.get("file")
        if problem is None:
            problem = (
                (fields.get("messaging_product") != "whatsapp" and "messaging_product")
                or (not isinstance(upload, dict) and "file")
                or (not isinstance(fields.get("type"), str) and "type")
                or (set(fields) - {"messaging_product", "type", "file"}
                    and ", ".join(sorted(set(fields) - {"messaging_product", "type", "file"})))
                or (upload["content_type"] != fields["type"] and "type (not the file's type)")
                or (fields["type"] not in UPLOAD_TYPES and f"type {fields['type']}")
                or None)
        if problem:
            return web.json_response(meta_error(f"(#100) Invalid parameter: {problem}", 100),
                                     status=400)
        assert isinstance(upload, dict)
        media_id = str(1_000_000_000_000_000 + len(self.media) + 1)
        self.add_media(media_id, upload["content"], fields["type"])
        return web.json_response({"id": media_id})

    async def media_info(self, request: web.Request) -> web.Response:
        """``GET /{version}/{media_id}``: the documented retrieve-media-URL answer."""
        await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(meta_error(
                "Error validating access token: Session has expired.", 190, error_subcode=463),
                status=401)
        media_id = request.match_info["media_id"]
        item = self.media.get(media_id)
        if item is None or item["fault"] == "expired":
            return web.json_response(meta_error(
                f"Unsupported get request. Object with ID '{media_id}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation", 100,
                "GraphMethodException", error_subcode=33), status=400)
        return web.json_response({
            "messaging_product": "whatsapp", "url": f"{self.url}/whatsapp_media/{media_id}",
            "mime_type": item["mime_type"], "sha256": hashlib.sha256(item["body"]).hexdigest(),
            "file_size": len(item["body"]), "id": media_id})

    async def cdn_file(self, request: web.Request) -> web.Response:
        """A business's own file server (not Meta): ``cdn[name]`` as (bytes, content type),
        without credentials; 404 for anything else."""
        await self.record(request)
        item = self.cdn.get(request.match_info["name"])
        if item is None:
            return web.Response(status=404)
        return web.Response(body=item[0], content_type=item[1])

    async def media_file(self, request: web.Request) -> web.StreamResponse:
        """The file itself, for the same access token only."""
        await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        item = self.media.get(request.match_info["media_id"])
        if item is None or item["fault"] == "gone":
            return web.Response(status=404)
        if item.get("gate") is not None:
            await item["gate"].wait()
        if item.get("fail_first", 0) > 0:
            item["fail_first"] -= 1
            return web.Response(status=503, text="Service Unavailable")
        if item["fault"] == "hang":
            try:
                await asyncio.wait_for(self._hang.wait(), 30)
            except TimeoutError:
                pass
            return web.Response(status=504)
        return web.Response(body=item["body"], content_type=item["served_as"])

    async def message_templates(self, request: web.Request) -> web.Response:
        """``GET /{version}/{waba_id}/message_templates``: the WABA's templates, two to a page
        with Graph's cursor paging (``paging.next`` an absolute URL)."""
        await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(meta_error(
                "Error validating access token: Session has expired.", 190, error_subcode=463),
                status=401)
        if request.match_info["waba"] != self.waba_id:
            return web.json_response(meta_error(
                f"Unsupported get request. Object with ID '{request.match_info['waba']}' does "
                "not exist", 100, "GraphMethodException", error_subcode=33), status=400)
        start = int(request.query.get("after", "0"))
        page = self.templates[start:start + 2]
        body: dict[str, Any] = {"data": page, "paging": {"cursors": {"before": str(start),
                                                                     "after": str(start + 2)}}}
        if start + 2 < len(self.templates):
            body["paging"]["next"] = (f"{self.url}{request.path}?fields={request.query['fields']}"
                                      f"&limit=2&after={start + 2}")
        return web.json_response(body)

    async def messages(self, request: web.Request) -> web.Response:
        seen = await self.record(request)
        if request.match_info["version"] != self.version:
            return web.json_response(meta_error(
                f"Unsupported post request. Version {request.match_info['version']}", 100,
                "GraphMethodException"), status=400)
        if request.match_info["phone"] != self.phone_number_id:
            return web.json_response(meta_error(
                f"Unsupported post request. Object with ID '{request.match_info['phone']}' "
                "does not exist", 100, "GraphMethodException", error_subcode=33), status=400)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(meta_error(
                "Error validating access token: Session has expired.", 190, error_subcode=463),
                status=401)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        body = seen.body if isinstance(seen.body, dict) else {}
        problem = self._check(body)
        if problem:
            return web.json_response(problem, status=400)
        to = body["to"]
        if self.allowed is not None and to.lstrip("+") not in self.allowed:
            return web.json_response(meta_error(
                "(#131030) Recipient phone number not in allowed list", 131030,
                error_data={"messaging_product": "whatsapp",
                            "details": "Recipient phone number not in allowed list"}),
                status=400)
        wamid = "wamid." + uuid.uuid4().hex.upper()
        kind = body["type"]
        self.sent.append({"id": wamid, "to": to, "type": kind, kind: body[kind],
                          "text": body["text"]["body"] if kind == "text" else None})
        self.accepted(wamid, to)
        answer = sample("meta_send_response.json")
        answer["contacts"] = [{"input": to, "wa_id": to.lstrip("+")}]
        answer["messages"] = [{"id": wamid, "message_status": "accepted"}]
        return web.json_response(answer)

    @staticmethod
    def _check(body: dict[str, Any]) -> dict[str, Any] | None:
        """The documented request body (developers.facebook.com/docs/whatsapp/cloud-api/
        messages: text, image, document, audio, video, sticker, template), field by field:
        nothing more than the documented fields, each of its documented type."""
        kind = body.get("type")
        allowed = {"messaging_product", "recipient_type", "to", "type", str(kind)}
        if request_problem := (
            (body.get("messaging_product") != "whatsapp" and "messaging_product")
            or (body.get("recipient_type") != "individual" and "recipient_type")
            or (kind not in MEDIA_FIELDS and kind not in ("text", "template") and "type")
            or (not isinstance(body.get(str(kind)), dict) and str(kind))
            or (set(body) - allowed and ", ".join(sorted(set(body) - allowed)))
            or (not isinstance(body.get("to"), str) and "to")
            or _part_problem(str(kind), body[str(kind)])
        ):
            return meta_error(f"(#100) Invalid parameter: {request_problem}", 100)
        if not body["to"].lstrip("+").isdigit():
            return meta_error("(#100) Invalid parameter", 100,
                              error_data={"messaging_product": "whatsapp",
                                          "details": "Parameter 'to' is not a valid phone number"})
        return None


# The MIME types the media endpoint takes ("Supported media types" of the media reference).
UPLOAD_TYPES = frozenset({
    "audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg", "text/plain",
    "application/pdf", "application/vnd.ms-powerpoint", "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "image/jpeg", "image/png", "image/webp", "video/mp4", "video/3gpp"})

# The fields each media message type takes: exactly one of id and link, and these.
MEDIA_FIELDS: dict[str, set[str]] = {
    "image": {"caption"}, "video": {"caption"}, "document": {"caption", "filename"},
    "audio": set(), "sticker": set(),
}


def _part_problem(kind: str, part: dict[str, Any]) -> str | None:
    """What is wrong with the ``text``/media/``template`` object of a message, or None."""
    if kind == "text":
        if not isinstance(part.get("body"), str) or set(part) - {"body", "preview_url"}:
            return "text.body"
        return None
    if kind in MEDIA_FIELDS:
        if ("id" in part) == ("link" in part):
            return f"{kind}: exactly one of id and link"
        if set(part) - {"id", "link"} - MEDIA_FIELDS[kind]:
            return f"{kind}: " + ", ".join(sorted(set(part) - {"id", "link"} - MEDIA_FIELDS[kind]))
        if not all(isinstance(v, str) and v for v in part.values()):
            return f"{kind}: every field is a non-empty string"
        if "link" in part and not part["link"].startswith(("http://", "https://")):
            return f"{kind}.link"
        return None
    # template
    if set(part) - {"name", "language", "components"} or not isinstance(part.get("name"), str):
        return "template.name"
    language = part.get("language")
    if not isinstance(language, dict) or set(language) != {"code"} or not isinstance(
            language["code"], str):
        return "template.language"
    for c in part.get("components", []):
        if not isinstance(c, dict) or c.get("type") not in ("header", "body", "button"):
            return "template.components.type"
        for p in c.get("parameters", []):
            ptype = p.get("type") if isinstance(p, dict) else None
            if ptype == "text" and isinstance(p.get("text"), str) and set(p) == {"type", "text"}:
                continue
            if ptype in ("image", "video", "document") and set(p) == {"type", ptype} and \
                    isinstance(p[ptype], dict) and (p[ptype].get("link") or p[ptype].get("id")):
                continue
            return "template.components.parameters"
    return None


# -- Infobip ---------------------------------------------------------------------------------
def infobip_error(message_id: str, text: str, **extra: Any) -> dict[str, Any]:
    """Infobip's classic error envelope."""
    return {"requestError": {"serviceException": {"messageId": message_id, "text": text, **extra}}}


# Infobip's media endpoints and the content fields each takes besides ``mediaUrl``.
INFOBIP_MEDIA: dict[str, set[str]] = {
    "image": {"caption"}, "video": {"caption"}, "document": {"caption", "filename"},
    "audio": set(), "sticker": set(),
}


class InfobipStandIn(StandIn):
    """``POST /whatsapp/1/message/text`` as Infobip answers it."""

    def __init__(self, api_key: str = "ib-key", sender: str = "447860099299",
                 basic: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.sender = sender
        self.basic = basic  # the notification profile's Basic credentials, when set
        self.sent: list[dict[str, Any]] = []
        self.files: dict[str, tuple[bytes, str]] = {}  # inbound media served at their URLs
        self.templates: list[dict[str, Any]] = [{
            "id": "111", "businessAccountId": 222, "name": "order_update", "language": "en",
            "status": "APPROVED", "category": "UTILITY", "structure": {
                "header": {"format": "IMAGE"},
                "body": {"text": "Hi {{1}}, your order {{2}} is on its way."},
                "type": "MEDIA"}}]

    def webhook_headers(self, raw: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.basic:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    def status_payload(self, message_id: str, status: str, to: str) -> Any:
        if status == "SEEN":
            payload = sample("infobip_seen_report.json")
            payload["results"][0].update(messageId=message_id, to=to)
            return payload
        return infobip_report(message_id, status, to)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/whatsapp/1/message/text", self.text)
        app.router.add_post("/whatsapp/1/message/template", self.template)
        app.router.add_get("/whatsapp/2/senders/{sender}/templates", self.list_templates)
        app.router.add_get("/whatsapp/1/senders/{sender}/media/{media_id}", self.media_file)
        for kind in INFOBIP_MEDIA:
            app.router.add_post(f"/whatsapp/1/message/{kind}", self.media)

    async def list_templates(self, request: web.Request) -> web.Response:
        """``GET /whatsapp/2/senders/{sender}/templates``: ``{"templates": [...]}`` with each
        template's ``structure`` (header, body, footer, buttons)."""
        await self.record(request)
        if request.headers.get("Authorization") != f"App {self.api_key}":
            return web.json_response(infobip_error("UNAUTHORIZED", "Invalid login details"),
                                     status=401)
        return web.json_response({"templates": self.templates})

    async def media_file(self, request: web.Request) -> web.Response:
        """An inbound message's media URL: the file, for the API key only."""
        await self.record(request)
        if request.headers.get("Authorization") != f"App {self.api_key}":
            return web.Response(status=401)
        item = self.files.get(request.match_info["media_id"])
        if item is None:
            return web.Response(status=404)
        return web.Response(body=item[0], content_type=item[1])

    async def _admit(self, request: web.Request) -> tuple[Seen, web.Response | None]:
        seen = await self.record(request)
        if request.headers.get("Authorization") != f"App {self.api_key}":
            return seen, web.json_response(infobip_error("UNAUTHORIZED", "Invalid login details"),
                                           status=401)
        return seen, await self.scripted()

    def _accept(self, to: str, kind: str, content: dict[str, Any]) -> web.Response:
        message_id = str(uuid.uuid4())
        self.sent.append({"id": message_id, "to": to, "type": kind, "content": content,
                          "text": content.get("text")})
        self.accepted(message_id, to)
        answer = sample("infobip_send_response.json")
        answer.update(to=to, messageId=message_id)
        return web.json_response(answer)

    async def media(self, request: web.Request) -> web.Response:
        """``/whatsapp/1/message/{image,document,audio,video,sticker}``: ``content.mediaUrl``
        and, where the type has them, ``caption`` and ``filename`` (Infobip's API reference)."""
        seen, early = await self._admit(request)
        if early is not None:
            return early
        kind = request.path.rsplit("/", 1)[-1]
        body = seen.body if isinstance(seen.body, dict) else {}
        content = body.get("content") if isinstance(body.get("content"), dict) else {}
        errors = self._common(body)
        url = content.get("mediaUrl")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            errors["content.mediaUrl"] = ["must be a valid URL"]
        extra = set(content) - {"mediaUrl"} - INFOBIP_MEDIA[kind]
        if extra or set(body) - {"from", "to", "content"}:
            errors["content"] = [f"unknown fields {sorted(extra)}"]
        if errors:
            return web.json_response(
                infobip_error("BAD_REQUEST", "Bad request", validationErrors=errors), status=400)
        return self._accept(body["to"], kind, content)

    async def template(self, request: web.Request) -> web.Response:
        """``/whatsapp/1/message/template``: ``{"messages": [{"from", "to", "content":
        {"templateName", "templateData": {"body": {"placeholders"}, "header"?}, "language"}}]}``."""
        seen, early = await self._admit(request)
        if early is not None:
            return early
        body = seen.body if isinstance(seen.body, dict) else {}
        messages = body.get("messages")
        msg = messages[0] if isinstance(messages, list) and len(messages) == 1 and \
            isinstance(messages[0], dict) else {}
        content = msg.get("content") if isinstance(msg.get("content"), dict) else {}
        errors = self._common(msg)
        data = content.get("templateData") if isinstance(content.get("templateData"), dict) else {}
        placeholders = (data.get("body") or {}).get("placeholders") if isinstance(
            data.get("body"), dict) else None
        if not isinstance(content.get("templateName"), str) or not isinstance(
                content.get("language"), str):
            errors["content"] = ["templateName and language are required"]
        if not isinstance(placeholders, list) or not all(isinstance(p, str) for p in placeholders):
            errors["content.templateData.body.placeholders"] = ["must be a list of strings"]
        if errors:
            return web.json_response(
                infobip_error("BAD_REQUEST", "Bad request", validationErrors=errors), status=400)
        message_id = str(uuid.uuid4())
        self.sent.append({"id": message_id, "to": msg["to"], "type": "template",
                          "content": content, "text": None})
        self.accepted(message_id, msg["to"])
        return web.json_response({"messages": [{"to": msg["to"], "messageId": message_id,
                                                "status": {"groupId": 1, "groupName": "PENDING",
                                                           "id": 7, "name": "PENDING_ENROUTE"}}]})

    def _common(self, body: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if body.get("from") != self.sender:
            errors["from"] = ["sender is not registered"]
        to = body.get("to")
        if not isinstance(to, str) or not to.lstrip("+").isdigit() or len(to.lstrip("+")) < 8:
            errors["to"] = ["invalid destination address"]
        return errors

    async def text(self, request: web.Request) -> web.Response:
        seen = await self.record(request)
        if request.headers.get("Authorization") != f"App {self.api_key}":
            return web.json_response(infobip_error("UNAUTHORIZED", "Invalid login details"),
                                     status=401)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        body = seen.body if isinstance(seen.body, dict) else {}
        content = body.get("content") if isinstance(body.get("content"), dict) else {}
        errors: dict[str, list[str]] = {}
        if body.get("from") != self.sender:
            errors["from"] = ["sender is not registered"]
        to = body.get("to")
        if not isinstance(to, str) or not to.lstrip("+").isdigit() or len(to.lstrip("+")) < 8:
            errors["to"] = ["invalid destination address"]
        if not isinstance(content.get("text"), str) or not content["text"]:
            errors["content.text"] = ["must not be blank"]
        if errors:
            return web.json_response(
                infobip_error("BAD_REQUEST", "Bad request", validationErrors=errors), status=400)
        message_id = str(uuid.uuid4())
        self.sent.append({"id": message_id, "to": to, "type": "text", "content": content,
                          "text": content["text"]})
        self.accepted(message_id, to)
        answer = sample("infobip_send_response.json")
        answer.update(to=to, messageId=message_id)
        return web.json_response(answer)


# -- payloads the providers post to converger ------------------------------------------------
def meta_text_notification(sender: str, text: str, wamid: str | None = None,
                           phone_number_id: str = "106540352242922") -> dict[str, Any]:
    """A one-message text notification shaped like meta_inbound_text.json."""
    payload = sample("meta_inbound_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = phone_number_id
    value["contacts"][0]["wa_id"] = sender
    msg = value["messages"][0]
    msg.update(id=wamid or "wamid." + uuid.uuid4().hex.upper(), **{"from": sender})
    msg["text"]["body"] = text
    return payload


def meta_status_notification(wamid: str, status: str, recipient: str,
                             timestamp: str = "1750263800") -> dict[str, Any]:
    """A one-status notification shaped like meta_status_read.json."""
    payload = sample("meta_status_read.json")
    s = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    s.update(id=wamid, status=status, recipient_id=recipient, timestamp=timestamp)
    return payload


def infobip_text_message(sender: str, text: str, message_id: str | None = None) -> dict[str, Any]:
    payload = sample("infobip_inbound_text.json")
    r = payload["results"][0]
    r.update(messageId=message_id or uuid.uuid4().hex, **{"from": sender})
    r["message"]["text"] = text
    return payload


def infobip_report(message_id: str, group: str, to: str) -> dict[str, Any]:
    payload = sample("infobip_delivery_report.json")
    r = payload["results"][0]
    r.update(messageId=message_id, to=to)
    r["status"]["groupName"] = group
    return payload

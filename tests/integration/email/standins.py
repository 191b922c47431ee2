"""A stand-in SendGrid: the v3 Mail Send API on loopback (Bearer API key, the JSON body checked
as SendGrid checks it, 202 with ``X-Message-Id``), and SendGrid's side of the webhooks: Inbound
Parse posts (multipart, basic auth from the URL) and signed Event Webhook posts."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.email_sendgrid import sign_event
from tests.integration.whatsapp.standins import Reply, StandIn

SAMPLES = Path(__file__).parent / "samples"
__all__ = ["Reply", "SendgridStandIn", "sample"]


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def sg_errors(message: str, field: str | None = None) -> dict[str, Any]:
    return {"errors": [{"message": message, "field": field, "help": None}]}


class SendgridStandIn(StandIn):
    def __init__(self, api_key: str, senders: set[str]) -> None:
        super().__init__()
        self.api_key = api_key
        self.senders = senders  # verified senders: another from.email → 403
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.sent: list[dict[str, Any]] = []  # accepted bodies, with "x_message_id"
        self.clock_skew = 0
        self._next = 1

    @property
    def public_key(self) -> str:
        """The verification key, as Mail Settings → Signed Event Webhook shows it."""
        return base64.b64encode(self.key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/mail/send", self.send)

    async def send(self, request: web.Request) -> web.Response:
        seen = await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(sg_errors("The provided authorization grant is invalid, "
                                               "expired, or revoked"), status=401)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        body = seen.body
        if not isinstance(body, dict):
            return web.json_response(sg_errors("Bad Request"), status=400)
        pers = body.get("personalizations")
        if not (isinstance(pers, list) and pers and isinstance(pers[0], dict)
                and isinstance(pers[0].get("to"), list) and pers[0]["to"]):
            return web.json_response(sg_errors("The personalizations field is required",
                                               "personalizations"), status=400)
        to = pers[0]["to"][0].get("email", "")
        if "@" not in to:
            return web.json_response(sg_errors("Does not contain a valid address.",
                                               "personalizations.0.to.0.email"), status=400)
        sender = body.get("from", {}).get("email")
        if sender not in self.senders:
            return web.json_response(sg_errors(
                "The from address does not match a verified Sender Identity.", "from"), status=403)
        if not body.get("subject") or not body.get("content"):
            return web.json_response(sg_errors("The subject is required.", "subject"), status=400)
        msg_id = f"SgMsg{self._next:08d}Xyz"
        self._next += 1
        self.sent.append({**body, "x_message_id": msg_id})
        return web.Response(status=202, headers={"X-Message-Id": msg_id})

    def event_headers(self, raw: bytes) -> dict[str, str]:
        stamp = str(int(time.time()) + self.clock_skew)
        return {"Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                "X-Twilio-Email-Event-Webhook-Signature": sign_event(self.key, stamp, raw)}

    async def events(self, url: str, events: list[dict[str, Any]],
                     headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """An Event Webhook post, signed (``headers`` replace the signature)."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        raw = json.dumps(events).encode()
        async with self._client.post(url, data=raw, headers=headers or self.event_headers(raw)
                                     ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def parse(self, url: str, fields: dict[str, str], *, user: str, password: str,
                    files: dict[str, tuple[str, str, bytes]] | None = None) -> tuple[int, Any]:
        """An Inbound Parse post: multipart/form-data, basic auth from the destination URL."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        for name, (filename, ctype, content) in (files or {}).items():
            form.add_field(name, content, filename=filename, content_type=ctype)
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        async with self._client.post(url, data=form, headers={"Authorization": auth}) as resp:
            return resp.status, await resp.json(content_type=None)

"""The embedded SMTP server (aiosmtpd) that takes inbound mail when ``CONVERGER_SMTP_PORT`` is
set, for on-prem installs that point an MX or a relay at it (docs/channels/email.md).

Generic over channel types: a channel whose adapter names a ``mailbox`` (its address and size
limit) receives the mail sent to that address. ``RCPT TO`` an address no active inbound channel
has is refused (550); a mail over the server's SIZE or the channel's own limit is refused (552);
a mail the adapter cannot parse is refused (550, its reason); a failure of ours is a 451, so the
sending server keeps the mail and tries again — a 250 means the mail is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiosmtpd.smtp import SMTP, Envelope, Session
from sanic import Sanic

import adapters
from adapters.base import Adapter, ChannelInfo, InboundError, InboundIgnored
from store import channels as channel_store
from store import tenants
from store.models import Channel

from .context import Gateway
from .domain import inbound as inbound_ops
from .domain.channels import channel_info
from .domain.errors import DomainError

INBOUND_MODES = ("inbound", "duplex")


def mail_types() -> list[str]:
    """The channel types that take mail (their adapter answers ``mailbox``)."""
    probe = ChannelInfo(id="", tenant_id="", name="", type="", mode="inbound", secret="",
                        config={"from_address": "probe@example.com"})
    return [t for t, a in adapters.REGISTRY.items() if a.mailbox(probe) is not None]


class Mailboxes:
    """aiosmtpd's handler: recipients checked against the channels' addresses, each accepted
    mail parsed by its channel's adapter and received like an inbound webhook."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.types = mail_types()

    async def _owners(self, address: str) -> list[tuple[Channel, ChannelInfo, Adapter, int]]:
        address = address.strip().lower()
        found = []
        for channel in await self.gw.db.read(channel_store.active_of_types, self.types):
            adapter = adapters.get(channel.type)
            if adapter is None or channel.mode not in INBOUND_MODES:
                continue
            info = channel_info(self.gw.cipher, channel)
            box = adapter.mailbox(info)
            if box is not None and box[0] == address:
                found.append((channel, info, adapter, box[1]))
        return found

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        try:
            owners = await self._owners(address)
        except Exception:
            self.gw.log.exception("smtp: looking up the mailbox %s failed", address)
            return "451 4.3.0 Temporary failure, try again later"
        if not owners:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            return await self._deliver(raw, envelope.mail_from or "", envelope.rcpt_tos)
        except Exception:
            self.gw.log.exception("smtp: a mail from %s could not be stored", envelope.mail_from)
            return "451 4.3.0 Temporary failure, try again later"

    async def _deliver(self, raw: bytes, mail_from: str, rcpts: Iterable[str]) -> str:
        seen: set[str] = set()
        answers: list[str] = []
        for rcpt in rcpts:
            for channel, info, adapter, limit in await self._owners(rcpt):
                if channel.id in seen:
                    continue
                seen.add(channel.id)
                answers.append(await self._one(channel, info, adapter, limit, raw, mail_from,
                                               list(rcpts)))
        refused = [a for a in answers if not a.startswith("250")]
        # Every mailbox refused it: the sender gets the (first) reason; some took it: accepted.
        if refused and len(refused) == len(answers):
            return refused[0]
        return "250 2.0.0 Message accepted"

    async def _one(self, channel: Channel, info: ChannelInfo, adapter: Adapter, limit: int,
                   raw: bytes, mail_from: str, rcpts: list[str]) -> str:
        if len(raw) > limit:
            return f"552 5.3.4 Message too big for this mailbox (at most {limit} bytes)"
        tenant = await self.gw.db.read(tenants.get, channel.tenant_id)
        if tenant is None or not tenant.active:
            return "550 5.2.1 Mailbox disabled"
        try:
            messages = adapter.parse_inbound({"raw": raw, "mail_from": mail_from,
                                              "rcpt_tos": rcpts})
        except InboundIgnored as exc:
            self.gw.log.info("smtp: channel %s: %s", channel.id, exc)
            return "250 2.0.0 Message accepted"
        except InboundError as exc:
            return f"550 5.6.0 {str(exc)[:200]}"
        for msg in messages:
            try:
                await inbound_ops.receive(self.gw, channel, msg)
            except DomainError:
                if msg.conversation_id is None:
                    raise
                # The conversation it answers is gone or closed: the sender's own thread.
                msg.conversation_id = None
                await inbound_ops.receive(self.gw, channel, msg)
        return "250 2.0.0 Message accepted"


def install(app: Sanic) -> None:
    """Start the SMTP server with the app when ``CONVERGER_SMTP_PORT`` is set."""
    settings = app.ctx.settings
    if not settings.smtp_port:
        return
    box: dict[str, asyncio.Server] = {}

    @app.after_server_start
    async def _start(app: Sanic) -> None:
        gw: Gateway = app.ctx
        handler = Mailboxes(gw)
        host = settings.smtp_host or settings.host

        def factory() -> SMTP:
            return SMTP(handler, data_size_limit=settings.smtp_max_bytes, ident="converger",
                        hostname=None, decode_data=False)

        loop = asyncio.get_running_loop()
        # reuse_port: every worker process listens; the kernel spreads connections.
        box["server"] = await loop.create_server(factory, host, settings.smtp_port,
                                                 reuse_port=True)
        gw.log.info("smtp: taking mail on %s:%s", host, settings.smtp_port)

    @app.before_server_stop
    async def _stop(app: Sanic) -> None:
        server = box.pop("server", None)
        if server is not None:
            server.close()
            await server.wait_closed()


__all__ = ["Mailboxes", "install", "mail_types"]

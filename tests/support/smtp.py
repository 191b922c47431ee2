"""A real SMTP server on loopback (aiosmtpd on the test's own event loop): the stand-in relay
that receives converger's outbound mail, and can be told to answer the next mails with a reply
code (``script``: "451 4.3.0 Try later", "550 5.1.1 No such user") or to stall."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, cast

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        """The mail as a mail client reads it (Python's ``email`` parser, default policy)."""
        return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(self.raw))


class SmtpStandIn:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[str] = []  # reply lines for the next DATA commands ("stall": no answer)
        self.rcpt_script: list[str] = []  # the same for the next RCPT commands
        self.port = 0
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_script:
            return self.rcpt_script.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.script:
            reply = self.script.pop(0)
            if reply == "stall":
                try:
                    await asyncio.wait_for(self._release.wait(), 30)
                except TimeoutError:
                    pass
                return "451 4.3.0 too late"
            return reply
        raw = envelope.original_content or b""
        self.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                      raw if isinstance(raw, bytes) else raw.encode()))
        self.arrived.set()
        return "250 2.0.0 OK: queued"

    async def start(self) -> SmtpStandIn:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="standin.test"),
                                                "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> SmtpStandIn:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        async def _wait() -> None:
            while len(self.received) < n:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.received

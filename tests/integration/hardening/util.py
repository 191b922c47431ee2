"""Small helpers for the hardening tests and the soak script."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.api import Api
from tests.support.hold import Hold


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def deliveries(api: Api, **filters: str) -> list[dict[str, Any]]:
    """Delivery rows from the management API (up to 500)."""
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return (await api.ok("GET", f"/api/admin/deliveries?limit=500&{query}", headers=api.admin))["data"]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    """Open file descriptors of a process, from /proc."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class Recorder:
    """A real aiohttp webhook receiver on loopback that records every request (headers and JSON
    body) per path, answering 200 after ``delay`` seconds. ``hold_after=n``: every request
    after the n-th is recorded but left unanswered until ``release()`` (``held`` counts them),
    so a test can count on requests in flight whatever the machine's speed. Kept here so these
    tests depend on no other suite's helpers."""

    def __init__(self, delay: float = 0.0, hold_after: int | None = None) -> None:
        self.delay = delay
        self.calls: dict[str, list[tuple[dict[str, str], Any]]] = {}
        self.port = 0
        self._runner: Any = None
        self.hold = Hold(hold_after)

    @property
    def held(self) -> int:
        return self.hold.held

    def release(self) -> None:
        """Answer the held requests (and every later one)."""
        self.hold.release()

    async def start(self) -> Recorder:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.calls.setdefault(request.match_info["name"], []).append(
                (dict(request.headers), body))
            await self.hold.gate(sum(map(len, self.calls.values())))
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{name}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def open_connections(self) -> int:
        """Client connections the receiver still holds (a killed sender's are closed by the
        kernel; the receiver sees them go once it has read what they had sent)."""
        return len(self._runner.server.connections) if self._runner is not None else 0

"""A real aiohttp webhook receiver on loopback, scripted per path, recording every request."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

from tests.support.hold import Hold


class Call:
    def __init__(self, headers: dict[str, str], body: bytes, at: float) -> None:
        self.headers = headers
        self.body = body
        self.at = at

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Receiver:
    """``url(name)`` is an endpoint; ``plan(name, ...)`` scripts its answers (then 200);
    ``hold(name, after=n)`` leaves every request after the n-th unanswered until ``release``
    (requests in flight that a test can count on, whatever the machine's speed)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[Call]] = defaultdict(list)
        self.plans: dict[str, list[tuple[int, dict[str, str], float]]] = defaultdict(list)
        self.delay: dict[str, float] = {}
        self._holds: dict[str, Hold] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{name}", self._handle)
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

    def plan(self, name: str, *answers: tuple[int, dict[str, str], float]) -> None:
        self.plans[name] = list(answers)

    def hold(self, name: str, after: int) -> None:
        """Requests to ``name`` after the ``after``-th are recorded but not answered until
        ``release(name)`` (or until their sender goes away)."""
        self._holds[name] = Hold(after)

    @property
    def held(self) -> defaultdict[str, int]:
        """Requests waiting on a hold now, by endpoint."""
        return defaultdict(int, {name: h.held for name, h in self._holds.items()})

    def release(self, name: str) -> None:
        hold = self._holds.pop(name, None)
        if hold is not None:
            hold.release()

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        self.calls[name].append(Call(dict(request.headers), body, time.monotonic()))
        hold = self._holds.get(name)
        if hold is not None:
            await hold.gate(len(self.calls[name]))
        plan = self.plans.get(name)
        status, headers, delay = plan.pop(0) if plan else (200, {}, self.delay.get(name, 0.0))
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "nope")

    async def wait_calls(self, name: str, n: int, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while len(self.calls[name]) < n:
            assert time.monotonic() < deadline, f"{name}: {len(self.calls[name])} of {n} calls"
            await asyncio.sleep(0.01)
        return self.calls[name]

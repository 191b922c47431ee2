"""A small Phoenix Channels client over aiohttp's WebSocket, for tests: v1 or v2 frames."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp


class Frame:
    def __init__(self, join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> None:
        self.join_ref, self.ref, self.topic, self.event, self.payload = (
            join_ref, ref, topic, event, payload)

    def __repr__(self) -> str:
        return f"Frame({self.join_ref!r}, {self.ref!r}, {self.topic!r}, {self.event!r}, {self.payload!r})"


class Phx:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, vsn: str) -> None:
        self.ws = ws
        self.vsn = vsn
        self._refs = itertools.count(1)
        self.inbox: list[Frame] = []
        self.raw: list[str] = []

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, base_ws: str, path: str, token: str,
                      vsn: str = "2.0.0", **params: str) -> Phx:
        q = {"token": token, **params}
        if vsn:
            q["vsn"] = vsn
        ws = await session.ws_connect(f"{base_ws}{path}?{urlencode(q)}", autoping=True,
                                      max_msg_size=0)
        return cls(ws, vsn or "1.0.0")

    def encode(self, join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> str:
        if self.vsn == "2.0.0":
            return json.dumps([join_ref, ref, topic, event, payload])
        return json.dumps({"join_ref": join_ref, "ref": ref, "topic": topic, "event": event,
                           "payload": payload})

    async def send(self, topic: str, event: str, payload: Any, join_ref: Any = None) -> str:
        ref = str(next(self._refs))
        await self.ws.send_str(self.encode(join_ref, ref, topic, event, payload))
        return ref

    async def next(self, timeout: float = 5.0) -> Frame:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {msg.type} {msg.data!r} {msg.extra!r}")
        self.raw.append(msg.data)
        data = json.loads(msg.data)
        if self.vsn == "2.0.0":
            assert isinstance(data, list) and len(data) == 5, data
            return Frame(*data)
        assert isinstance(data, dict), data
        return Frame(data["join_ref"], data["ref"], data["topic"], data["event"], data["payload"])

    async def expect(self, pred: Any, timeout: float = 5.0) -> Frame:
        """The first frame (from the inbox, then the wire) matching ``pred``."""
        for i, f in enumerate(self.inbox):
            if pred(f):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching frame")
            f = await self.next(left)
            if pred(f):
                return f
            self.inbox.append(f)

    async def reply(self, ref: str, timeout: float = 5.0) -> Frame:
        return await self.expect(lambda f: f.event == "phx_reply" and f.ref == ref, timeout)

    async def join(self, topic: str, payload: Any = None) -> Frame:
        ref = str(next(self._refs))
        await self.ws.send_str(self.encode(ref, ref, topic, "phx_join", payload or {}))
        return await self.reply(ref)

    async def push(self, topic: str, event: str, payload: Any, join_ref: Any = None) -> Frame:
        ref = await self.send(topic, event, payload, join_ref)
        return await self.reply(ref)

    async def events(self, event: str, n: int, timeout: float = 10.0) -> list[Frame]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            out.append(await self.expect(lambda f: f.event == event,
                                         max(0.01, deadline - time.monotonic())))
        return out

    async def quiet(self, event: str, within: float = 0.3) -> bool:
        """True when no ``event`` frame arrives for ``within`` seconds (a negative check)."""
        try:
            await self.expect(lambda f: f.event == event, within)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.ws.close()

"""The WebSocket layer itself (gateway/wire.py: the ``websockets`` Sans-I/O protocol on the
connection's transport), at the level of frames: what a browser or a library client may send
that the Phoenix tests above never do — fragmented messages, pings, a frame right behind the
handshake, a burst of messages in one packet, bytes that are not UTF-8."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Any
from urllib.parse import urlencode, urlsplit

from websockets.frames import Frame, Opcode

from tests.support.server import Server

PATH = "/socket/websocket"
CONT, TEXT, CLOSE, PING, PONG = 0x0, 0x1, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One client frame (masked, as a client must), serialised by the websockets library."""
    return Frame(Opcode(opcode), payload, fin=fin).serialize(mask=True)


def heartbeat(ref: str) -> bytes:
    return json.dumps([None, ref, "phoenix", "heartbeat", {}]).encode()


class Wire:
    """A client socket at the byte level."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: Server, token: str, early: bytes = b"") -> Wire:
        """The opening handshake; ``early`` is written in the same write, right behind it."""
        url = f"{server.ws_url}{PATH}?" + urlencode({"token": token, "vsn": "2.0.0"})
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode() + early)
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def frame(self) -> tuple[int, bytes]:
        async with asyncio.timeout(10):
            first, second = await self.reader.readexactly(2)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            assert not second & 0x80, "a server's frames are not masked"
            return first & 0x0F, await self.reader.readexactly(n)

    async def message(self) -> Any:
        opcode, data = await self.frame()
        assert opcode == TEXT, (opcode, data)
        return json.loads(data)

    async def closed(self) -> tuple[int, str]:
        while True:
            opcode, data = await self.frame()
            if opcode == CLOSE:
                return struct.unpack("!H", data[:2])[0], data[2:].decode()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def test_a_fragmented_message_is_joined_and_a_ping_answered(
    server: Server, world: dict[str, Any]
) -> None:
    ws = await Wire.open(server, world["user_token"])
    data = heartbeat("7")
    # A ping between the fragments is answered at once (control frames may interleave).
    await ws.send(frame(TEXT, data[:5], fin=False) + frame(PING, b"are you there")
                  + frame(CONT, data[5:12], fin=False) + frame(CONT, data[12:]))
    assert await ws.frame() == (PONG, b"are you there")
    reply = await ws.message()
    assert reply[1] == "7" and reply[3] == "phx_reply"
    assert reply[4]["status"] == "ok"
    await ws.close()


async def test_a_frame_sent_with_the_handshake_is_answered(
    server: Server, world: dict[str, Any]
) -> None:
    # A client may send its first frame before it has read the 101 (the bytes then arrive with
    # the request, and the HTTP parser reads them): it is the socket's first message.
    ws = await Wire.open(server, world["user_token"], early=frame(TEXT, heartbeat("1")))
    reply = await ws.message()
    assert reply[1] == "1" and reply[4]["status"] == "ok"
    await ws.close()


async def test_a_burst_of_messages_is_answered_in_order(
    server: Server, world: dict[str, Any]
) -> None:
    # 200 messages in one write: past the first, they wait for the socket's dispatcher (and
    # the socket stops reading while 16 wait); every one is answered, in the order sent.
    topic = f"conversation:{world['conv_id']}"
    burst = [json.dumps(["9", "0", topic, "phx_join", {}]).encode()]
    for i in range(1, 200):
        event = "heartbeat" if i % 3 == 0 else "nonsense"
        burst.append(json.dumps([None, str(i), "phoenix" if i % 3 == 0 else topic, event,
                                 {}]).encode())
    ws = await Wire.open(server, world["user_token"])
    await ws.send(b"".join(frame(TEXT, m) for m in burst))
    refs = []
    for _ in range(200):
        msg = await ws.message()
        assert msg[3] == "phx_reply"
        refs.append(int(msg[1]))
    assert refs == list(range(200))
    # Reading resumed: the socket still answers.
    await ws.send(frame(TEXT, heartbeat("x")))
    assert (await ws.message())[1] == "x"
    await ws.close()


async def test_text_that_is_not_utf8_closes_1007(
    server: Server, world: dict[str, Any]
) -> None:
    ws = await Wire.open(server, world["user_token"])
    await ws.send(frame(TEXT, b'["1", "1", "phoenix", "heartbeat", "\xff\xfe"]'))
    code, reason = await ws.closed()
    assert code == 1007 and reason
    await ws.close()


async def test_a_close_from_the_client_is_answered_and_ends_the_connection(
    server: Server, world: dict[str, Any]
) -> None:
    ws = await Wire.open(server, world["user_token"])
    await ws.send(frame(CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert await ws.closed() == (1000, "bye")
    async with asyncio.timeout(10):
        assert await ws.reader.read() == b""  # the server closed the TCP connection
    await ws.close()

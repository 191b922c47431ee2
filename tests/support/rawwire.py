"""Clients at the level of bytes, for tests that must say exactly what goes on the wire and
when: a WebSocket frame header alone, with no payload after it (``RawSocket``), or an HTTP
request head announcing a body that never follows (``status_of_announced_body``).

Why: a client that really sends a too-large frame or body races the server. The server answers
(close 1009, 413) and closes as soon as the header announces too many bytes, while the client
is still writing the rest; the client then gets "Connection lost" or "Cannot write to closing
transport" (or a reset that swallows the answer) instead of the answer, depending on timing and
on its socket's send buffer. Sending only the header leaves nothing in flight, so the server's
answer is always read. Sockets are opened with a small send buffer (``SNDBUF``) so that a test
that still depended on writing a lot would show it."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from urllib.parse import urlsplit

SNDBUF = 4096  # bytes: the client's SO_SNDBUF
TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


async def _connect(url: str, sndbuf: int, timeout: float
                   ) -> tuple[str, int, asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock)
    return host, port, reader, writer


async def status_of_announced_body(base_url: str, method: str, path: str,
                                   headers: dict[str, str], length: int,
                                   sndbuf: int = SNDBUF, timeout: float = 10.0) -> int:
    """The status of a request whose head announces ``length`` body bytes, none of which is
    sent (for a server that refuses it from the head alone)."""
    host, port, reader, writer = await _connect(base_url, sndbuf, timeout)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}",
                 f"Content-Length: {length}", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(timeout):
            status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str, sndbuf: int = SNDBUF, timeout: float = 10.0) -> RawSocket:
        """Connect to ``ws://host:port/path?query`` and complete the opening handshake."""
        host, port, reader, writer = await _connect(url, sndbuf, timeout)
        parts = urlsplit(url)
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"no upgrade: {head[:200]!r}")
        return cls(reader, writer)

    async def send_header(self, opcode: int, length: int) -> None:
        """A final frame's header announcing ``length`` payload bytes (and its mask key), and
        nothing of the payload."""
        if length < 126:
            size = bytes([0x80 | length])
        elif length < 1 << 16:
            size = bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            size = bytes([0x80 | 127]) + struct.pack("!Q", length)
        self.writer.write(bytes([0x80 | opcode]) + size + os.urandom(4))
        await self.writer.drain()

    async def _frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        mask = await self.reader.readexactly(4) if second & 0x80 else b""
        data = await self.reader.readexactly(length)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return first & 0x0F, data

    async def closed(self, timeout: float = 15.0) -> tuple[int | None, str]:
        """The server's close code and reason (frames before it are passed over)."""
        async with asyncio.timeout(timeout):
            while True:
                opcode, data = await self._frame()
                if opcode == CLOSE:
                    if len(data) < 2:
                        return None, ""
                    return struct.unpack("!H", data[:2])[0], data[2:].decode(errors="replace")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

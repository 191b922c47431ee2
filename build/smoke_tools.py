"""Helpers for build/smoke.sh, standard library only (the smoke test must not need the venv).

    python3 build/smoke_tools.py get FILE PATH          print a value from a JSON file (dotted path)
    python3 build/smoke_tools.py receiver PORTFILE LOG  a webhook receiver on a free loopback port
    python3 build/smoke_tools.py ws URL TOPIC POST_URL API_KEY TEXT
        connect a Phoenix v2 WebSocket, join TOPIC, POST an activity with TEXT, wait for its push
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import struct
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit


def get(file: str, path: str) -> int:
    """Print ``path`` (``data.id``, ``data.0.status``) from the JSON in ``file``."""
    with open(file) as f:
        value: Any = json.load(f)
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    print(value if isinstance(value, str) else json.dumps(value))
    return 0


def receiver(portfile: str, log: str) -> int:
    """Answer 200 to every POST/PUT/PATCH and append {"path","headers","body"} to ``log``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with open(log, "a") as f:
                f.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                    "body": body.decode(errors="replace")}) + "\n")
            out = b'{"ok": true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_POST = do_PUT = do_PATCH = _record

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, portfile)  # the shell polls for the file: never let it read half a number
    server.serve_forever()
    return 0


class WebSocket:
    """Just enough of RFC 6455 for a client: text frames out (masked), frames in."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + ("?" + parts.query if parts.query else "")
        self.sock.sendall((
            f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0].decode()
        if " 101 " not in status + " ":
            raise ConnectionError(f"upgrade refused: {status}")

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, obj: Any) -> None:
        self._send(0x1, json.dumps(obj).encode())

    def recv(self) -> Any:
        """The next text message as JSON (answers pings, raises on close)."""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b1 & 0x80 else b""
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x9:
                self._send(0xA, data)
            elif opcode == 0x8:
                raise ConnectionError(f"server closed the socket: {data[2:].decode(errors='replace')}")
            elif opcode in (0x1, 0x2):
                return json.loads(data)


def _frame(msg: Any) -> tuple[Any, str, str, Any]:
    """(ref, topic, event, payload) from a v2 array or a v1 object frame."""
    if isinstance(msg, list):
        return msg[1], msg[2], msg[3], msg[4]
    return msg.get("ref"), msg.get("topic"), msg.get("event"), msg.get("payload")


def ws(url: str, topic: str, post_url: str, api_key: str, text: str) -> int:
    """Join ``topic``, post an activity over REST, and wait for its push on the socket."""
    deadline = time.monotonic() + 15
    sock = WebSocket(url, timeout=15)
    sock.send(["1", "1", topic, "phx_join", {}])
    while True:
        ref, _, event, payload = _frame(sock.recv())
        if event == "phx_reply" and ref == "1":
            if payload.get("status") != "ok":
                print(f"join refused: {payload}", file=sys.stderr)
                return 1
            break
    req = urllib.request.Request(post_url, method="POST", data=json.dumps(
        {"text": text, "sender": "smoke"}).encode(), headers={
        "x-api-key": api_key, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status != 201:
            print(f"POST activity answered {r.status}", file=sys.stderr)
            return 1
    while time.monotonic() < deadline:
        _, got_topic, event, payload = _frame(sock.recv())
        if event == "new_activity" and got_topic == topic and payload.get("text") == text:
            print(json.dumps(payload))
            return 0
    print("no push within 15 s", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    commands = {"get": get, "receiver": receiver, "ws": ws}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[argv[0]](*argv[1:])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        print(f"smoke_tools {argv[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The bare Sanic baselines for benchmarks, each in its own process, with the gateway's server
settings (single_process, uvloop, no access log, TouchUp as gateway/app.py sets it).

    proc, url = start_echo()       # POST {url}/echo answers {"data": <its JSON body>} with 201
    proc, url = start_broadcast()  # WebSocket {url}/socket/websocket (Phoenix v2 frames: a join
                                   # is answered ok); POST {url}/api/v1/conversations/<id>/activities
                                   # sends its JSON to every socket joined to conversation:<id>
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.server import free_port  # noqa: E402


def run_echo(port: int) -> None:
    """A bare Sanic app with the gateway's server settings: POST /echo answers its JSON body."""
    from sanic import Request, Sanic
    from sanic.response import json as json_response

    app = Sanic("echo", configure_logging=False)
    _config(app)

    @app.post("/echo")
    async def echo(request: Request):  # type: ignore[no-untyped-def]
        return json_response({"data": request.json}, status=201)

    @app.get("/livez")
    async def livez(request: Request):  # type: ignore[no-untyped-def]
        return json_response({"status": "ok"})

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False,
            debug=False, auto_reload=False)


def _config(app: Any) -> None:
    app.config.TOUCHUP = not getattr(sys, "frozen", False)  # as gateway/app.py sets it
    app.config.MOTD = False
    app.config.ACCESS_LOG = False
    app.config.KEEP_ALIVE_TIMEOUT = 75


def run_broadcast(port: int) -> None:
    """A bare Sanic app with the gateway's server settings and the least a real-time push needs:
    a WebSocket endpoint that answers joins, a plain set of sockets per topic (no auth, no store,
    no per-socket queue), and a POST that sends its JSON body, encoded once, to every socket of
    the topic before answering 201."""
    from sanic import Request, Sanic
    from sanic.response import json as json_response

    app = Sanic("broadcast", configure_logging=False)
    _config(app)
    topics: dict[str, set[Any]] = {}

    @app.websocket("/socket/websocket")
    async def socket(request: Request, ws: Any) -> None:  # type: ignore[no-untyped-def]
        joined: list[str] = []
        try:
            async for text in ws:
                join_ref, ref, topic, event, _payload = json.loads(text)
                if event == "phx_join":
                    topics.setdefault(topic, set()).add(ws)
                    joined.append(topic)
                await ws.send(json.dumps([join_ref, ref, topic, "phx_reply",
                                          {"status": "ok", "response": {}}]))
        finally:
            for topic in joined:
                topics[topic].discard(ws)

    @app.post("/api/v1/conversations/<cid:str>/activities")
    async def post(request: Request, cid: str):  # type: ignore[no-untyped-def]
        topic = f"conversation:{cid}"
        frame = json.dumps([None, None, topic, "new_activity", request.json])
        for ws in list(topics.get(topic, ())):
            try:
                await ws.send(frame)
            except Exception:  # a socket closing meanwhile; the others still get it
                topics[topic].discard(ws)
        return json_response({"data": request.json}, status=201)

    @app.get("/livez")
    async def livez(request: Request):  # type: ignore[no-untyped-def]
        return json_response({"status": "ok"})

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False,
            debug=False, auto_reload=False)


def start_echo() -> tuple[subprocess.Popen[bytes], str]:
    """Start the echo app on a free loopback port; returns the process and its base URL."""
    return _start("echo")


def start_broadcast() -> tuple[subprocess.Popen[bytes], str]:
    """Start the broadcast app on a free loopback port; returns the process and its base URL."""
    return _start("broadcast")


def _start(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, str(port), kind], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_live(url, proc)
    return proc, url


def wait_live(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            with urllib.request.urlopen(url + "/livez", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


if __name__ == "__main__":
    if sys.argv[2:3] == ["broadcast"]:
        run_broadcast(int(sys.argv[1]))
    else:
        run_echo(int(sys.argv[1]))

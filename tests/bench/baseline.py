"""The bare Sanic baselines for benchmarks, each in its own process, with the gateway's server
settings (single_process, uvloop, no access log, TouchUp as gateway/app.py sets it).

    proc, url = start_echo()       # POST {url}/echo answers {"data": <its JSON body>} with 201
    proc, url = start_broadcast()  # WebSocket {url}/socket/websocket (Phoenix v2 frames: a join
                                   # is answered ok); POST {url}/api/v1/conversations/<id>/activities
                                   # sends its JSON to every socket joined to conversation:<id>
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.server import free_port  # noqa: E402


def _serve(app: Any, port: int) -> None:
    """``app.run`` on ``port``, or on the listening socket a parent passed (``--fd N``): the
    same process model as ``converger serve --workers N`` (one socket, N processes)."""
    if "--fd" in sys.argv:
        import socket

        sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
        app.run(sock=sock, single_process=True, access_log=False, motd=False, debug=False,
                auto_reload=False)
        return
    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False,
            debug=False, auto_reload=False)


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

    _serve(app, port)


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

    _serve(app, port)


class Group:
    """N processes serving one socket, stopped together (``terminate``/``wait``/``pids``)."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs
        self.pid = procs[0].pid
        self.pids = [p.pid for p in procs]

    def poll(self) -> int | None:
        codes = [p.poll() for p in self.procs]
        return None if any(c is None for c in codes) else codes[0]

    def terminate(self) -> None:
        for p in self.procs:
            p.terminate()

    def wait(self, timeout: float | None = None) -> int:
        return [p.wait(timeout) for p in self.procs][0]


def start_echo(workers: int = 1) -> tuple[Any, str]:
    """Start the echo app on a free loopback port (``workers`` processes on one socket);
    returns the process (a :class:`Group` with several) and its base URL."""
    return _start("echo", workers)


def start_broadcast() -> tuple[subprocess.Popen[bytes], str]:
    """Start the broadcast app on a free loopback port; returns the process and its base URL."""
    return _start("broadcast")


def _start(kind: str, workers: int = 1) -> tuple[Any, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if workers <= 1:
        proc = subprocess.Popen([sys.executable, __file__, str(port), kind], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_live(url, proc)
        return proc, url
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    group = Group([subprocess.Popen(
        [sys.executable, __file__, str(port), kind, "--fd", str(sock.fileno())], cwd=ROOT,
        pass_fds=(sock.fileno(),), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)])
    sock.close()
    wait_live(url, group)  # type: ignore[arg-type]
    time.sleep(1.0)  # the other processes start as fast: give them the same second
    return group, url


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants (a supervisor and its
    workers), from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return total


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

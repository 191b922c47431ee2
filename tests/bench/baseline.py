"""The bare Sanic baseline for benchmarks: a JSON echo app in its own process, with the gateway's
server settings (single_process, uvloop, no access log, TouchUp as gateway/app.py sets it).

    proc, url = start_echo()      # POST {url}/echo answers {"data": <its JSON body>} with 201
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.server import free_port  # noqa: E402


def run_echo(port: int) -> None:
    """A bare Sanic app with the gateway's server settings: POST /echo answers its JSON body."""
    from sanic import Request, Sanic
    from sanic.response import json as json_response

    app = Sanic("echo", configure_logging=False)
    app.config.TOUCHUP = not getattr(sys, "frozen", False)  # as gateway/app.py sets it
    app.config.MOTD = False
    app.config.ACCESS_LOG = False
    app.config.KEEP_ALIVE_TIMEOUT = 75

    @app.post("/echo")
    async def echo(request: Request):  # type: ignore[no-untyped-def]
        return json_response({"data": request.json}, status=201)

    @app.get("/livez")
    async def livez(request: Request):  # type: ignore[no-untyped-def]
        return json_response({"status": "ok"})

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False,
            debug=False, auto_reload=False)


def start_echo() -> tuple[subprocess.Popen[bytes], str]:
    """Start the echo app on a free loopback port; returns the process and its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, str(port)], cwd=ROOT,
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
    run_echo(int(sys.argv[1]))

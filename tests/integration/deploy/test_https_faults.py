"""HTTPS gone wrong (issue 22, "bad input and faults"): a domain that does not point here, an ACME
server that is down or rate-limits, a port that is taken. Each gives a clear message, and the
gateway keeps serving what it can (no crash, no restart loop)."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support import pebble as pebble_support
from tests.support.pebble import Pebble, make_ca_and_leaf
from tests.support.postgres import store_independent
from tests.support.server import ADMIN_TOKEN, COMMAND, ROOT, free_port
from tests.support.tls import TlsServer, https_get, served_cert

pytestmark = store_independent("TLS and ACME: certificates, keys and the ACME account are files in "
                               "the data directory, not in the store")

DOMAIN = "chat.converger.test"


def wait_ready_body(srv: TlsServer, pred: Callable[[dict[str, Any]], bool],
                    timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    status, body = srv.readyz()
    while time.monotonic() < deadline:
        status, body = srv.readyz()
        if pred(body):
            return status, body
        time.sleep(0.1)
    raise AssertionError(f"readyz never matched: {status} {body}\n{srv.log()}")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[TlsServer]]:
    made: list[TlsServer] = []
    yield made
    for srv in made:
        srv.stop()


@pytest.mark.skipif(not pebble_support.available(), reason="Debian's pebble is not installed")
@pytest.mark.parametrize("dns", ["points_elsewhere", "does_not_resolve"])
def test_a_domain_that_does_not_point_here_is_named_and_the_gateway_stays_up(
    tmp_path: Path, servers: list[TlsServer], dns: str
) -> None:
    http_port = free_port()
    with Pebble(tmp_path / "pebble", http_port) as pebble:
        if dns == "points_elsewhere":
            pebble.resolve("elsewhere.converger.test", "127.0.0.2")  # loopback; nothing listens
        else:
            pebble.resolve_nothing()  # no A record at all
        srv = TlsServer(tmp_path / "data", "elsewhere.converger.test",
                        ["--domain", "elsewhere.converger.test"], http_port=http_port,
                        env={"CONVERGER_ACME_DIRECTORY": pebble.directory,
                             "CONVERGER_ACME_CA_BUNDLE": str(pebble.wfe_ca)})
        servers.append(srv)
        srv.start()
        status, body = wait_ready_body(srv, lambda b: "error" in b["checks"]["tls"]
                                       and "could not validate" in b["checks"]["tls"]["error"])
    assert status == 503  # not ready: there is no trusted certificate to serve
    error = body["checks"]["tls"]["error"]
    assert "elsewhere.converger.test" in error and "DNS points at this machine" in error
    # The CA's own reason is passed on: refused connection, or no address for the name.
    assert ("connection refused" if dns == "points_elsewhere" else "could not resolve") in error, error
    assert https_get(srv.https_port, srv.name, "/livez")[0] == 200  # still up (placeholder)
    assert srv.proc is not None and srv.proc.poll() is None
    assert "Traceback" not in srv.log()


def test_an_acme_server_that_is_down_is_named_and_retried(
    tmp_path: Path, servers: list[TlsServer]
) -> None:
    directory = f"https://127.0.0.1:{free_port()}/dir"  # nothing listens there
    srv = TlsServer(tmp_path / "data", DOMAIN, ["--domain", DOMAIN],
                    env={"CONVERGER_ACME_DIRECTORY": directory})
    servers.append(srv)
    srv.start()
    status, body = wait_ready_body(srv, lambda b: "cannot be reached" in b["checks"]["tls"].get("error", ""))
    assert status == 503 and directory in body["checks"]["tls"]["error"]
    _, tls = https_get(srv.https_port, DOMAIN, "/api/admin/tls",
                       headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert tls["data"]["failures"] >= 1 and tls["data"]["next_attempt"]
    assert srv.proc is not None and srv.proc.poll() is None
    assert "Traceback" not in srv.log()


@pytest.fixture
async def rate_limiting_ca() -> AsyncIterator[str]:
    """An ACME server that answers every signed request with 429 ``rateLimited``."""

    def nonce() -> dict[str, str]:
        return {"replay-nonce": secrets.token_urlsafe(16), "cache-control": "no-store"}

    async def directory(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response({"newNonce": f"{base}/nonce", "newAccount": f"{base}/acct",
                                  "newOrder": f"{base}/order", "revokeCert": f"{base}/revoke",
                                  "keyChange": f"{base}/key"})

    async def new_nonce(request: web.Request) -> web.Response:
        return web.Response(status=200, headers=nonce())

    async def limited(request: web.Request) -> web.Response:
        problem = {"type": "urn:ietf:params:acme:error:rateLimited", "status": 429,
                   "detail": "too many new registrations from this address"}
        return web.Response(status=429, body=json.dumps(problem), headers={
            **nonce(), "retry-after": "3600", "content-type": "application/problem+json"})

    app = web.Application()
    app.router.add_get("/dir", directory)
    app.router.add_get("/nonce", new_nonce)
    app.router.add_post("/{tail:.*}", limited)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/dir"
    await runner.cleanup()


async def test_a_rate_limiting_acme_server_is_named_and_waited_out(
    tmp_path: Path, servers: list[TlsServer], rate_limiting_ca: str
) -> None:
    import asyncio

    srv = TlsServer(tmp_path / "data", DOMAIN, ["--domain", DOMAIN],
                    env={"CONVERGER_ACME_DIRECTORY": rate_limiting_ca})
    servers.append(srv)
    await asyncio.to_thread(srv.start)
    status, body = await asyncio.to_thread(
        wait_ready_body, srv, lambda b: "rate-limits" in b["checks"]["tls"].get("error", ""))
    assert status == 503 and "too many new registrations" in body["checks"]["tls"]["error"]
    _, tls = await asyncio.to_thread(https_get, srv.https_port, DOMAIN, "/api/admin/tls",
                                     None, {"authorization": f"Bearer {ADMIN_TOKEN}"})
    waits = time.mktime(time.strptime(tls["data"]["next_attempt"], "%Y-%m-%dT%H:%M:%SZ")) \
        - time.mktime(time.gmtime())
    assert waits > 3000, tls  # at least the hour a rate limit asks for, not the first minute


def test_a_taken_https_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = TlsServer(tmp_path / "data", DOMAIN, ["--domain", DOMAIN], https_port=port)
        env = {"CONVERGER_SECRET_KEY": "k" * 32, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(srv.command(), cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stdout, done
    assert f"cannot serve HTTPS: port {port} on 127.0.0.1 is not available" in lines[0]


def test_a_taken_http_port_warns_and_https_still_serves(
    tmp_path: Path, servers: list[TlsServer]
) -> None:
    ca, cert, key = make_ca_and_leaf(tmp_path / "certs", [DOMAIN])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = TlsServer(tmp_path / "data", DOMAIN, ["--tls-cert", str(cert), "--tls-key", str(key)],
                        http_port=port)
        servers.append(srv)
        srv.start()
        status, body = srv.readyz(ca)
    assert status == 200 and body["checks"]["tls"]["ok"]
    assert f"HTTP port {port} on 127.0.0.1 is not available" in body["checks"]["tls"]["warning"]
    assert f"warning: HTTP port {port} on 127.0.0.1 is not available" in srv.log()


def test_settings_that_cannot_work_are_refused_in_one_line(tmp_path: Path) -> None:
    cases = [
        (["--domain", "*.example.com"], "is not a domain name"),
        (["--domain", "127.0.0.1"], "is not a domain name"),
        (["--domain", "a.example.com", "--tls-cert", "x.pem", "--tls-key", "y.pem"],
         "exclude each other"),
        (["--tls-cert", "x.pem"], "go together"),
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "k.pem")],
         "cannot read"),
    ]
    env = {"CONVERGER_SECRET_KEY": "k" * 32, "PATH": "/usr/bin:/bin"}
    for args, message in cases:
        done = subprocess.run(
            [*COMMAND, "serve", "--data-dir", str(tmp_path / "d"),
             "--https-port", str(free_port()), "--http-port", str(free_port()), *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.skipif(not pebble_support.available(), reason="Debian's pebble is not installed")
@pytest.mark.parametrize("saved", ["near_expiry", "unreadable"])
def test_a_saved_certificate_near_expiry_or_unreadable_is_replaced_on_its_own(
    tmp_path: Path, servers: list[TlsServer], saved: str
) -> None:
    """No forced renewal here: the check loop sees the saved certificate is due (an hour left of
    ten days) or unusable (not PEM) and obtains a new one by itself."""
    http_port = free_port()
    tls_dir = tmp_path / "data" / "tls"
    tls_dir.mkdir(parents=True, mode=0o700)
    old = tls_dir / "certificate.pem"
    if saved == "near_expiry":
        _, cert, key = make_ca_and_leaf(tmp_path / "old", [DOMAIN], not_before=-10 * 86400,
                                        not_after=3600)
        old.write_bytes(key.read_bytes() + cert.read_bytes())
    else:
        old.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    old.chmod(0o600)
    original = old.read_bytes()
    with Pebble(tmp_path / "pebble", http_port) as pebble:
        root = tmp_path / "root.pem"
        root.write_bytes(pebble.root_pem())
        (tls_dir / "certificate.json").write_text(json.dumps({"directory": pebble.directory}))
        srv = TlsServer(tmp_path / "data", DOMAIN, ["--domain", DOMAIN], http_port=http_port,
                        env={"CONVERGER_ACME_DIRECTORY": pebble.directory,
                             "CONVERGER_ACME_CA_BUNDLE": str(pebble.wfe_ca)})
        servers.append(srv)
        srv.start()
        # Pebble's certificates last five years; the old one had an hour.
        status, body = wait_ready_body(srv, lambda b: b["checks"]["tls"].get("days_left", 0) > 300)
    assert status == 200 and body["checks"]["tls"]["ok"] and "warnings" not in body
    assert served_cert(srv.https_port, DOMAIN, root).serial_number == int(
        body["checks"]["tls"]["serial"], 16)
    assert (tls_dir / "certificate.pem.previous").read_bytes() == original  # kept, not lost
    if saved == "unreadable":
        assert "the saved certificate cannot be used" in srv.log()

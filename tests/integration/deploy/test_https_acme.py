"""Automatic HTTPS against Pebble on loopback (issue 22): ``converger serve --domain`` obtains a
certificate over ACME (HTTP-01 answered on its HTTP port), serves the API and WebSockets over
TLS, redirects plain HTTP; a forced renewal swaps the certificate while a WebSocket stays
connected; with Pebble stopped, the current certificate keeps serving and ``/readyz`` warns.

The tests of this module run in order on one gateway and one Pebble (a scenario)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.realtime.phx import Phx
from tests.support import pebble as pebble_support
from tests.support.api import Api
from tests.support.pebble import Pebble
from tests.support.postgres import store_independent
from tests.support.server import free_port
from tests.support.tls import TlsServer, served_cert, session

pytestmark = [pytest.mark.skipif(not pebble_support.available(),
                                 reason="Debian's pebble package is not installed (tests/setup.sh)"),
              store_independent("TLS and ACME: certificates, keys and the ACME account are "
                                "files in the data directory, not in the store")]

DOMAIN = "chat.converger.test"
OTHER = "www.converger.test"


class World:
    pebble: Pebble
    server: TlsServer
    root: Path
    serials: list[int]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("https")
    w = World()
    http_port = free_port()
    w.pebble = Pebble(folder / "pebble", http_port).start()
    w.root = folder / "pebble-root.pem"
    w.root.write_bytes(w.pebble.root_pem())
    w.server = TlsServer(folder / "data", DOMAIN, ["--domain", DOMAIN, "--domain", OTHER],
                         env={"CONVERGER_ACME_DIRECTORY": w.pebble.directory,
                              "CONVERGER_ACME_CA_BUNDLE": str(w.pebble.wfe_ca)},
                         http_port=http_port)
    w.serials = []
    try:
        w.server.start()
        yield w
    finally:
        w.server.stop()
        w.pebble.stop()


@pytest.fixture(scope="module")
async def tls_session(world: World) -> AsyncIterator[aiohttp.ClientSession]:
    async with session(world.root) as s:  # trusts Pebble's root only, verifies names
        yield s


def wait_for_trusted_cert(world: World, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return served_cert(world.server.https_port, DOMAIN, world.root).serial_number
        except OSError as exc:  # ssl.SSLError too: the placeholder is served until then
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"no certificate from Pebble in {timeout}s ({last}):\n"
                         f"{world.server.log()}\n{world.pebble.logs()}")


async def open_socket(s: aiohttp.ClientSession, api: Api, world: World) -> tuple[Phx, dict[str, Any]]:
    w = await api.setup(name=f"tls-{len(world.serials)}-{time.monotonic_ns()}")
    conv_id = w["conversation"]["id"]
    token = (await api.ok("POST", "/api/v1/tokens", 201,
                          json={"conversation_id": conv_id, "user_id": "u1"},
                          headers={"x-channel-token": w["channel_token"]}))["token"]
    phx = await Phx.connect(s, world.server.ws_url, "/socket/websocket", token)
    joined = await phx.join(f"conversation:{conv_id}")
    assert joined.payload["status"] == "ok"
    return phx, w


async def test_obtains_a_certificate_and_serves_the_api_and_a_websocket_over_tls(
    world: World, tls_session: aiohttp.ClientSession
) -> None:
    serial = wait_for_trusted_cert(world)
    world.serials.append(serial)
    cert = served_cert(world.server.https_port, OTHER, world.root)  # one certificate, both names
    assert cert.serial_number == serial

    api = Api(tls_session, world.server.url)
    status, body, _ = await api.call("GET", "/readyz")
    assert status == 200 and body["checks"]["tls"]["ok"], body
    assert sorted(body["checks"]["tls"]["names"]) == [DOMAIN, OTHER]
    assert "warnings" not in body

    phx, w = await open_socket(tls_session, api, world)  # wss:// through the same TLS
    a = await api.post_activity(w["conversation"]["id"], w["api_key"], text="over tls", sender="b")
    push = await phx.expect(lambda f: f.event == "new_activity")
    assert push.payload["id"] == a["id"]
    await phx.close()

    # Over HTTPS the admin panel's session cookie is marked Secure.
    async with tls_session.get(world.server.url + "/admin/login") as r:
        cookies = r.headers.getall("set-cookie", [])
    assert cookies and all("Secure" in c for c in cookies), cookies

    # The public URL defaults to https://<first domain>[:port]: the first-admin link uses it.
    assert f"https://{DOMAIN}:{world.server.https_port}/admin/setup/" in world.server.log()
    tls = (await api.ok("GET", "/api/admin/tls", headers=api.admin))["data"]
    assert tls["mode"] == "acme" and tls["failures"] == 0 and tls["directory"] == world.pebble.directory

    # Keys and certificates: mode 0600 in a 0700 directory of the data directory.
    folder = world.server.data_dir / "tls"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert "certificate.pem" in files and any(f.startswith("account-") for f in files), files
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


async def test_the_http_port_answers_challenges_only_and_redirects_the_rest(world: World) -> None:
    async with aiohttp.ClientSession() as plain:
        base = f"http://127.0.0.1:{world.server.http_port}"
        for host, target in ((DOMAIN, DOMAIN), (OTHER, OTHER), ("evil.example", DOMAIN)):
            async with plain.post(f"{base}/api/v1/x?y=1", headers={"host": host},
                                  allow_redirects=False) as r:
                assert r.status == 308  # the method and body are kept
                assert r.headers["location"] == (
                    f"https://{target}:{world.server.https_port}/api/v1/x?y=1")
        async with plain.get(f"{base}/.well-known/acme-challenge/unknown") as r:
            assert r.status == 404


async def test_a_forced_renewal_swaps_the_certificate_while_a_websocket_stays_connected(
    world: World, tls_session: aiohttp.ClientSession
) -> None:
    api = Api(tls_session, world.server.url)
    phx, w = await open_socket(tls_session, api, world)
    before = served_cert(world.server.https_port, DOMAIN, world.root).serial_number

    renewed = await api.ok("POST", "/api/admin/tls/renew", headers=api.admin)
    after = served_cert(world.server.https_port, DOMAIN, world.root).serial_number
    assert after != before and renewed["data"]["serial"] == format(after, "x")
    world.serials.append(after)
    assert (world.server.data_dir / "tls" / "certificate.pem.previous").exists()

    # The socket opened on the old certificate still works both ways.
    hb = await phx.reply(await phx.send("phoenix", "heartbeat", {}))
    assert hb.payload["status"] == "ok"
    a = await api.post_activity(w["conversation"]["id"], w["api_key"], text="after", sender="b")
    push = await phx.expect(lambda f: f.event == "new_activity")
    assert push.payload["id"] == a["id"]
    await phx.close()


@pytest.fixture
def read_only_tls_dir(world: World) -> Iterator[Path]:
    """``<data>/tls`` as a read-only bind mount (root ignores file modes)."""
    folder = world.server.data_dir / "tls"
    if os.geteuid() != 0:
        pytest.skip("needs root to bind-mount read-only")
    import subprocess

    if subprocess.run(["mount", "--bind", str(folder), str(folder)]).returncode != 0:
        pytest.skip("cannot bind-mount")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)]).returncode != 0:
            pytest.skip("cannot remount read-only")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


async def test_a_renewal_that_cannot_be_saved_keeps_the_current_certificate(
    world: World, tls_session: aiohttp.ClientSession, read_only_tls_dir: Path
) -> None:
    api = Api(tls_session, world.server.url)
    before = (read_only_tls_dir / "certificate.pem").read_bytes()
    status, body, _ = await api.call("POST", "/api/admin/tls/renew", headers=api.admin)
    assert status == 502 and body["code"] == "acme_failed", body
    assert "could not be saved" in body["detail"] and "read-only" in body["detail"]
    assert served_cert(world.server.https_port, DOMAIN, world.root).serial_number == world.serials[-1]
    assert (read_only_tls_dir / "certificate.pem").read_bytes() == before
    status, ready, _ = await api.call("GET", "/readyz")
    assert status == 200 and any("could not be saved" in x for x in ready["warnings"]), ready


async def test_with_the_acme_server_gone_the_current_certificate_keeps_serving(
    world: World, tls_session: aiohttp.ClientSession
) -> None:
    world.pebble.stop()
    api = Api(tls_session, world.server.url)
    status, body, _ = await api.call("POST", "/api/admin/tls/renew", headers=api.admin)
    assert status == 502 and body["code"] == "acme_failed", body
    assert "cannot be reached" in body["detail"] and "still serving" in body["detail"]

    assert served_cert(world.server.https_port, DOMAIN, world.root).serial_number == world.serials[-1]
    status, ready, _ = await api.call("GET", "/readyz")
    assert status == 200, ready  # ready (the certificate is good), with a warning
    assert ready["checks"]["tls"]["ok"] and "cannot be reached" in ready["checks"]["tls"]["warning"]
    assert any(w.startswith("tls: ") for w in ready["warnings"])
    status, text, _ = await api.call("GET", "/metrics")
    assert status == 200
    metrics = dict(line.split(" ", 1) for line in text.splitlines()
                   if line.startswith("converger_tls_"))
    assert float(metrics["converger_tls_certificate_days_left"]) > 300
    assert float(metrics["converger_tls_renewal_failures"]) >= 1

    # A restart with the CA still gone serves the saved certificate at once.
    world.server.stop()
    world.server.start()
    assert served_cert(world.server.https_port, DOMAIN, world.root).serial_number == world.serials[-1]
    status, ready = world.server.readyz(world.root)
    assert status == 200 and ready["checks"]["tls"]["ok"], ready

"""``--tls-cert``/``--tls-key``: the gateway serves given files and reloads them when they change;
files that do not match are refused at start (one line) and, later, not loaded (the previous
certificate keeps serving, ``/readyz`` warns)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pebble import make_ca_and_leaf
from tests.support.postgres import store_independent
from tests.support.server import COMMAND, ROOT, free_port
from tests.support.tls import TlsServer, served_cert

pytestmark = store_independent("TLS: the certificate and key are files the gateway reads, not in the store")

DOMAIN = "files.converger.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TlsServer]:
    srv = TlsServer(tmp_path / "data", DOMAIN, ["--tls-cert", str(tmp_path / "live" / "cert.pem"),
                                                "--tls-key", str(tmp_path / "live" / "key.pem")])
    yield srv
    srv.stop()


def install(pair: tuple[Path, Path, Path], live: Path, key_from: tuple[Path, Path, Path] | None = None) -> None:
    """Copy a certificate (and a key, by default its own) into ``live`` (rename: atomic)."""
    live.mkdir(exist_ok=True)
    for src, name in ((pair[1], "cert.pem"), ((key_from or pair)[2], "key.pem")):
        tmp = live / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        tmp.replace(live / name)


def test_a_key_that_does_not_match_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    a = make_ca_and_leaf(tmp_path / "a", [DOMAIN])
    b = make_ca_and_leaf(tmp_path / "b", [DOMAIN])
    done = subprocess.run(
        [*COMMAND, "serve", "--data-dir", str(tmp_path / "data"), "--https-port", str(free_port()),
         "--http-port", "0", "--tls-cert", str(a[1]), "--tls-key", str(b[2])],
        cwd=ROOT, env={"CONVERGER_SECRET_KEY": "k" * 32, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        f"converger: cannot serve HTTPS: {a[1]} / {b[2]}: the key does not match the certificate"]


def test_changed_files_are_reloaded_and_a_mismatch_keeps_the_previous_certificate(
    tmp_path: Path, server: TlsServer
) -> None:
    live = tmp_path / "live"
    a = make_ca_and_leaf(tmp_path / "a", [DOMAIN])
    b = make_ca_and_leaf(tmp_path / "b", [DOMAIN])
    install(a, live)
    server.start()
    first = served_cert(server.https_port, DOMAIN, a[0]).serial_number
    status, body = server.readyz(a[0])
    assert status == 200 and body["checks"]["tls"]["mode"] == "files"

    install(b, live, key_from=a)  # b's certificate with a's key: must not be loaded
    deadline = time.monotonic() + 30
    while "warning" not in server.readyz(a[0])[1]["checks"]["tls"]:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    status, body = server.readyz(a[0])
    assert status == 200 and "does not match" in body["checks"]["tls"]["warning"]
    assert served_cert(server.https_port, DOMAIN, a[0]).serial_number == first

    install(b, live)  # now the right key: loaded, the warning goes
    deadline = time.monotonic() + 30
    while True:
        try:
            second = served_cert(server.https_port, DOMAIN, b[0]).serial_number
            break
        except OSError:  # still a's certificate: not trusted by b's CA
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
    assert second != first
    status, body = server.readyz(b[0])
    assert status == 200 and "warning" not in body["checks"]["tls"] and "warnings" not in body

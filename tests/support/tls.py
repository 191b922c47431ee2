"""A real ``converger serve`` with HTTPS on loopback, and clients that reach it by name.

The gateway's domain (e.g. ``chat.converger.test``) is resolved to 127.0.0.1 by the clients
themselves (a static aiohttp resolver, ``server_hostname`` on raw sockets): nothing else on the
machine is changed.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509

from .server import ADMIN_TOKEN, COMMAND, ROOT, Server, free_port, track


class Loopback(AbstractResolver):
    """Every name is 127.0.0.1."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


def client_context(cafile: Path | None) -> ssl.SSLContext:
    """Trusts only ``cafile`` (verification on); no CA: verification off."""
    if cafile is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(cafile))


def session(cafile: Path | None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=Loopback(), ssl=client_context(cafile))
    return aiohttp.ClientSession(connector=connector)


def served_cert(port: int, name: str, cafile: Path | None = None) -> x509.Certificate:
    """The certificate the server presents for ``name`` (verified against ``cafile`` if given)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with client_context(cafile).wrap_socket(sock, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def https_get(port: int, name: str, path: str, cafile: Path | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTPS GET by hand (``http.client`` with SNI ``name``); JSON bodies decoded."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sock = client_context(cafile).wrap_socket(sock, server_hostname=name)  # used as is
    try:
        conn.request("GET", path, headers={"host": name, **(headers or {})})
        resp = conn.getresponse()
        body = resp.read()
        ctype = resp.getheader("content-type") or ""
        return resp.status, (json.loads(body) if "json" in ctype and body else body.decode())
    finally:
        conn.close()


class TlsServer(Server):
    """``converger serve`` with HTTPS options; ``start()`` waits until ``/livez`` answers over
    TLS (on the placeholder certificate, if that is what it serves yet)."""

    def __init__(self, data_dir: Path, name: str, args: list[str], env: dict[str, str] | None = None,
                 https_port: int | None = None, http_port: int | None = None) -> None:
        super().__init__(data_dir, env=env)
        self.name = name
        self.https_port = https_port or free_port()
        self.http_port = http_port or free_port()
        self._port_chosen = https_port is None and http_port is None
        self.args = args

    def repick_ports(self) -> None:
        self.https_port, self.http_port = free_port(), free_port()

    @property
    def url(self) -> str:
        return f"https://{self.name}:{self.https_port}"

    @property
    def ws_url(self) -> str:
        return f"wss://{self.name}:{self.https_port}"

    def command(self) -> list[str]:
        return [*COMMAND, "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                "--https-port", str(self.https_port), "--http-port", str(self.http_port), *self.args]

    def spawn(self) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CONVERGER_ADMIN_TOKEN": ADMIN_TOKEN,
               "CONVERGER_SECRET_KEY": "test-secret-key-0123456789", "PYTHONUNBUFFERED": "1",
               "CONVERGER_RATE_LIMIT_TOKENS": "0", "CONVERGER_RATE_LIMIT_ACTIVITIES": "0",
               "CONVERGER_TLS_CHECK_INTERVAL": "1", **self.extra_env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        track(self.proc)  # killed at the session's end if a test left it running
        return self.proc

    def wait_live(self, timeout: float = 20.0) -> TlsServer:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, body = https_get(self.https_port, self.name, "/readyz")
                if body["checks"]["startup"]["ok"]:
                    return self
            except (OSError, ssl.SSLError, urllib.error.URLError, KeyError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become live in {timeout}s:\n{self.log()}")

    def readyz(self, cafile: Path | None = None) -> tuple[int, Any]:
        return https_get(self.https_port, self.name, "/readyz", cafile)

"""Pebble (Let's Encrypt's ACME test server, Debian's ``pebble`` package) on loopback.

``pebble-challtestsrv`` is its DNS: every name resolves to 127.0.0.1 (no AAAA), so Pebble's
HTTP-01 validation connects to the gateway's HTTP port on loopback; no hosts file is touched and
no packet leaves the machine. Pebble serves its ACME API over HTTPS with a certificate made here
(``wfe_ca`` is the file to trust for it); the CA that signs the gateway's certificates is made
by Pebble at each start (``root_pem()``). Nothing sleeps at random (``PEBBLE_VA_NOSLEEP``) and
every nonce is good (``PEBBLE_WFE_NONCEREJECT=0``), so runs are deterministic.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .server import free_port, track


def available() -> bool:
    return bool(shutil.which("pebble") and shutil.which("pebble-challtestsrv"))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca_and_leaf(folder: Path, names: list[str], ips: tuple[str, ...] = (),
                     not_before: float = -300, not_after: float = 2 * 86400) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf it signs: ``(ca.pem, leaf.pem, leaf.key)``; the leaf is valid
    from ``not_before`` to ``not_after`` seconds from now."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "converger test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(seconds=not_before))
            .not_valid_after(now + datetime.timedelta(seconds=not_after))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_key_pem(key))
    return paths


class Pebble:
    """``pebble`` + ``pebble-challtestsrv``, validating HTTP-01 on ``http_port`` of 127.0.0.1."""

    def __init__(self, folder: Path, http_port: int) -> None:
        self.folder = folder
        self.http_port = http_port
        self.port, self.mgmt_port, self.dns_port, self.dns_mgmt_port = (
            free_port(), free_port(), free_port(), free_port())
        self.procs: list[subprocess.Popen[bytes]] = []
        self.wfe_ca, cert, key = make_ca_and_leaf(folder / "wfe", ["localhost"], ("127.0.0.1",))
        self.config = folder / "pebble.json"
        self.config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(cert), "privateKey": str(key),
            "httpPort": http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}))

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{name}.log", "ab")
        self.procs.append(track(subprocess.Popen([name, *args], stdout=log,
                                                 stderr=subprocess.STDOUT, env=env, cwd=self.folder)))
        log.close()

    def start(self, timeout: float = 20.0) -> Pebble:
        self._spawn("pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}",
                    "-http01", "", "-https01", "", "-tlsalpn01", "",
                    "-management", f"127.0.0.1:{self.dns_mgmt_port}",
                    "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
        self._spawn("pebble", "-config", str(self.config),
                    "-dnsserver", f"127.0.0.1:{self.dns_port}",
                    env={"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1",
                         "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited: {self.logs()}")
            try:
                self.get(self.directory)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pebble did not start in {timeout}s: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.folder.glob("*.log"))

    def get(self, url: str) -> bytes:
        ctx = ssl.create_default_context(cafile=str(self.wfe_ca))
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return bytes(resp.read())

    def root_pem(self) -> bytes:
        """The root that signs what Pebble issues (new at every Pebble start)."""
        return self.get(f"https://127.0.0.1:{self.mgmt_port}/roots/0")

    def resolve(self, name: str, ip: str) -> None:
        """Make challtestsrv answer ``name`` with ``ip`` (a loopback address) from now on."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.dns_mgmt_port}/add-a",
                                     data=json.dumps({"host": name, "addresses": [ip]}).encode())
        with urllib.request.urlopen(req, timeout=5):
            pass

    def resolve_nothing(self) -> None:
        """Make every name without an explicit address resolve to nothing (no A record)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.dns_mgmt_port}/set-default-ipv4",
                                     data=json.dumps({"ip": ""}).encode())
        with urllib.request.urlopen(req, timeout=5):
            pass

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()

    def __enter__(self) -> Pebble:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

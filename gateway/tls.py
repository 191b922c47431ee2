"""HTTPS: the certificate the server presents, where it comes from, and how it is swapped.

Two sources (``Settings.tls``):
- ``acme``: ``CONVERGER_DOMAINS`` — a certificate obtained and renewed over ACME
  (:mod:`gateway.acme_client`), kept with its account key in ``<data_dir>/tls`` (mode 0600);
- ``files``: ``CONVERGER_TLS_CERT``/``CONVERGER_TLS_KEY`` — reloaded when the files change.

The server's one ``ssl.SSLContext`` is built once and given to Sanic; a new certificate is first
loaded into a throwaway context (which proves it matches its key), then into the live one. New
handshakes get the new certificate; connections already open (a WebSocket) keep theirs and
stay up. Whatever fails — the CA is down or rate-limits, validation fails, the data directory is
read-only, the new files do not match — the current certificate goes on being served, the
failure is logged and shown by ``/readyz`` (a warning), ``GET /api/admin/tls`` and the
``converger_tls_*`` metrics, and the attempt is retried with backoff. A certificate on disk is
replaced only by a complete, validated one (write, fsync, rename); the one before stays beside
it as ``certificate.pem.previous``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.core import GaugeMetricFamily
from sanic.http.tls.context import create_context

from . import metrics
from .config import Settings

T = TypeVar("T")
RETRY_FIRST, RETRY_MAX = 60.0, 6 * 3600.0  # seconds: backoff of failed ACME attempts


class TlsError(Exception):
    """A certificate cannot be used (unreadable, not matching its key, not saved)."""


class CertInfo(NamedTuple):
    names: tuple[str, ...]
    not_before: float
    not_after: float
    issuer: str
    serial: str

    def days_left(self, now: float) -> float:
        return (self.not_after - now) / 86400


def inspect(chain_pem: bytes) -> CertInfo:
    """The leaf certificate's names, validity and issuer."""
    try:
        cert = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError as exc:
        raise TlsError(f"not a PEM certificate ({exc})") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(names, cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp(),
                    cert.issuer.rfc4514_string(), format(cert.serial_number, "x"))


def server_context() -> ssl.SSLContext:
    """Sanic's server defaults: TLS 1.2+, AEAD ciphers, ALPN http/1.1."""
    return create_context()


def check_pair(cert: Path, key: Path | None = None) -> CertInfo:
    """Load ``cert`` (and ``key``; else the key is in ``cert``) into a throwaway context: a clear
    error when a file is unreadable or the key does not match."""
    try:
        chain = cert.read_bytes()
        server_context().load_cert_chain(str(cert), str(key) if key else None)
    except ssl.SSLError as exc:  # before OSError, its base class
        why = "the key does not match the certificate" if "MISMATCH" in str(exc) else str(exc)
        raise TlsError(f"{cert}{' / ' + str(key) if key else ''}: {why}") from None
    except OSError as exc:
        raise TlsError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return inspect(chain)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600 (write, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class CertStore:
    """``<data_dir>/tls``: the ACME account key (one per directory URL) and the certificate
    (key and chain in one file, so they are replaced together)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir) / "tls"
        self.current = self.dir / "certificate.pem"
        self.meta = self.dir / "certificate.json"

    def _mkdir(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def account_key(self, directory_url: str) -> bytes:
        from .acme_client import new_key_pem

        tag = hashlib.sha256(directory_url.encode()).hexdigest()[:12]
        path = self.dir / f"account-{tag}.pem"
        if path.exists():
            return path.read_bytes()
        self._mkdir()
        key = new_key_pem()
        write_private(path, key)
        return key

    def directory_of_current(self) -> str | None:
        try:
            return str(json.loads(self.meta.read_text())["directory"])
        except (OSError, ValueError, KeyError):
            return None

    def save(self, key_pem: bytes, chain_pem: bytes, directory_url: str) -> Path:
        """Check the pair, then replace the current certificate (keeping the one before)."""
        self._mkdir()
        staged = self.dir / "certificate.pem.new"
        write_private(staged, key_pem + chain_pem)
        try:
            check_pair(staged)
        except TlsError:
            staged.unlink(missing_ok=True)
            raise
        if self.current.exists():
            os.replace(self.current, self.dir / "certificate.pem.previous")
        os.replace(staged, self.current)
        write_private(self.meta, json.dumps({"directory": directory_url}).encode())
        return self.current


def placeholder_pem(name: str) -> bytes:
    """A self-signed certificate (and its key) served until the first real one arrives: never
    trusted, and ``/readyz`` is not ready while it is served."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "converger placeholder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + cert.public_bytes(serialization.Encoding.PEM))


def load_pem(context: ssl.SSLContext, pem: bytes) -> None:
    """Load a key and chain held in memory (``load_cert_chain`` reads files only): through a
    private temporary file, removed at once; nothing lands in the data directory."""
    with tempfile.NamedTemporaryFile(prefix="converger-tls-", suffix=".pem") as tmp:
        tmp.write(pem)
        tmp.flush()
        context.load_cert_chain(tmp.name)


async def in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a daemon thread: an ACME exchange still waiting on the network must not
    hold up the process's exit the way the default executor's threads do."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if not fut.done():
            fut.set_exception(exc) if exc is not None else fut.set_result(value)

    def work() -> None:
        try:
            value, exc = fn(), None
        except BaseException as err:  # handed to the awaiting task
            value, exc = None, err
        try:
            loop.call_soon_threadsafe(settle, value, exc)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass

    threading.Thread(target=work, name="acme", daemon=True).start()
    return await fut


class _Collector:
    """``converger_tls_*`` gauges, computed when scraped; none without HTTPS."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .tls_serve import active

        manager = active()
        if manager is None or manager.cert is None:
            return
        days = GaugeMetricFamily("converger_tls_certificate_days_left",
                                 "Days until the served certificate expires.")
        days.add_metric([], round(manager.cert.days_left(manager.now()), 3))
        yield days
        failures = GaugeMetricFamily("converger_tls_renewal_failures",
                                     "Certificate renewals failed in a row (0 after a success).")
        failures.add_metric([], manager.failures)
        yield failures


metrics.REGISTRY.register(_Collector())


def retry_delay(failures: int, scale: float = 1.0, least: float = 0.0) -> float:
    """Seconds before the next ACME attempt after ``failures`` failures in a row."""
    return max(least, min(RETRY_MAX, RETRY_FIRST * 2 ** max(0, failures - 1)) * scale)


def describe(settings: Settings) -> str:
    return ", ".join(settings.domain_list) if settings.tls == "acme" else settings.tls_cert

"""Serving HTTPS: the certificate manager of a running gateway (see :mod:`gateway.tls`), the
plain-HTTP port (ACME HTTP-01 answers, redirects to HTTPS), and ``/api/admin/tls``.

Start-up order: ``create_app`` builds the manager and its SSL context (the current certificate,
or a self-signed placeholder when there is none yet); ``server.run`` hands the context to Sanic;
``after_server_start`` opens the HTTP port and starts the check loop, whose first turn obtains a
certificate when needed. ``before_server_stop`` stops both.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from . import errors
from .config import Settings
from .tls import (
    CertInfo,
    CertStore,
    TlsError,
    check_pair,
    in_thread,
    load_pem,
    placeholder_pem,
    retry_delay,
    server_context,
)

_ACTIVE: list[Tls] = []
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


def active() -> Tls | None:
    """The running manager (one per process), for the metrics collector."""
    return _ACTIVE[-1] if _ACTIVE else None


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, privileged), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        try:
            sock.bind((host, port))
        except PermissionError:
            return (f"port {port} needs root or CAP_NET_BIND_SERVICE (the unit written by "
                    "`converger service install` grants it)")
        except OSError as exc:
            return f"port {port} on {host} is not available ({exc.strerror or exc})"
    return None


def preflight(settings: Settings) -> tuple[str | None, str | None]:
    """``(error, warning)`` for ``converger serve`` before it starts: the HTTPS port must be free
    and given files must be a matching pair; a taken HTTP port only warns (HTTPS still serves)."""
    problem = port_problem(settings.host, settings.https_port)
    if problem:
        return f"cannot serve HTTPS: {problem}", None
    if settings.tls == "files":
        try:
            check_pair(Path(settings.tls_cert), Path(settings.tls_key))
        except TlsError as exc:
            return f"cannot serve HTTPS: {exc}", None
    if settings.http_port:
        problem = port_problem(settings.host, settings.http_port)
        if problem:
            return None, (f"HTTP {problem}: no redirect to HTTPS"
                          + (" and no ACME HTTP-01 answers (retrying)" if settings.tls == "acme" else ""))
    return None, None


class Tls:
    """The certificate of one running gateway: loaded, checked, renewed, swapped."""

    def __init__(self, settings: Settings, log: Any, now: Callable[[], float] = time.time) -> None:
        self.settings, self.log, self.now = settings, log, now
        self.store = CertStore(settings.data_dir)
        self.context = server_context()
        self.cert: CertInfo | None = None
        self.source = ""  # file the served certificate came from
        self.challenges: dict[str, str] = {}
        self.failures = 0
        self.last_error: str | None = None
        self.last_attempt: float | None = None
        self.last_success: float | None = None
        self.next_attempt = 0.0
        self.http_error: str | None = None
        self._stamp: tuple[int, ...] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._runner: Any = None
        self._task: asyncio.Task[None] | None = None
        self._load_initial()

    # -- loading ----------------------------------------------------------------------------
    def _load_initial(self) -> None:
        s = self.settings
        if s.tls == "files":
            self.activate(Path(s.tls_cert), Path(s.tls_key))  # preflight checked: raises if bad
            self._stamp = self._files_stamp()
            return
        if self.store.current.exists():
            try:
                self.activate(self.store.current)
                return
            except TlsError as exc:  # unusable file: obtain a new one, keep the file for study
                self.log.error("the saved certificate cannot be used (%s); obtaining a new one", exc)
        load_pem(self.context, placeholder_pem(s.domain_list[0]))
        self.cert, self.source = None, "placeholder"

    def activate(self, cert: Path, key: Path | None = None) -> CertInfo:
        """Prove the pair on a throwaway context, then load it into the live one."""
        info = check_pair(cert, key)
        self.context.load_cert_chain(str(cert), str(key) if key else None)
        self.cert, self.source = info, str(cert)
        return info

    def _files_stamp(self) -> tuple[int, ...] | None:
        try:
            a, b = os.stat(self.settings.tls_cert), os.stat(self.settings.tls_key)
        except OSError:
            return None
        return (a.st_mtime_ns, a.st_size, a.st_ino, b.st_mtime_ns, b.st_size, b.st_ino)

    # -- the check loop ---------------------------------------------------------------------
    def renewal_due(self) -> bool:
        s = self.settings
        if self.cert is None:
            return True
        if set(s.domain_list) - set(self.cert.names):
            return True  # a domain was added
        if self.store.directory_of_current() not in (None, s.acme_directory):
            return True  # another CA (staging → production)
        lifetime = (self.cert.not_after - self.cert.not_before) / 86400
        return self.cert.days_left(self.now()) < min(s.acme_renew_days, lifetime / 3)

    async def check(self) -> None:
        """One turn: reload changed files, or renew a due ACME certificate."""
        if self.settings.http_port and self._runner is None:
            await self._open_http_port()
        if self.settings.tls == "files":
            self._reload_files()
        elif self.renewal_due() and self.now() >= self.next_attempt:
            try:
                await self.renew()
            except TlsError:
                pass  # logged and shown by renew(); retried after the backoff

    def _reload_files(self) -> None:
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            info = self.activate(Path(self.settings.tls_cert), Path(self.settings.tls_key))
        except TlsError as exc:
            self.last_error = f"new certificate files not loaded ({exc}); still serving the previous one"
            self.log.error("%s", self.last_error)
            return
        self.last_error, self.last_success = None, self.now()
        self.log.info("certificate reloaded from %s (expires %s)", self.settings.tls_cert,
                      time.strftime("%Y-%m-%d", time.gmtime(info.not_after)))

    async def renew(self) -> CertInfo:
        """Obtain a certificate now and swap it in; on failure raise :class:`TlsError` and keep
        serving the current one."""
        from .acme_client import AcmeError, Order

        s = self.settings
        async with self._lock:
            self.last_attempt = self.now()
            try:
                order = Order(s.acme_directory, self.store.account_key(s.acme_directory),
                              email=s.acme_email, ca_bundle=s.acme_ca_bundle)
                key_pem, chain = await in_thread(lambda: order.obtain(
                    s.domain_list, self.challenges.__setitem__,
                    lambda token: self.challenges.pop(token, None)))
                try:
                    path = self.store.save(key_pem, chain, s.acme_directory)
                except OSError as exc:
                    raise TlsError(f"the new certificate could not be saved in {self.store.dir} "
                                   f"({exc.strerror or exc}); is the data directory read-only?") from None
                info = self.activate(path)
            except (AcmeError, TlsError, OSError) as exc:
                self.failures += 1
                least = getattr(exc, "retry_after", 0.0)
                self.next_attempt = self.now() + retry_delay(self.failures, s.backoff_scale, least)
                serving = (f"still serving the current certificate ({self.cert.days_left(self.now()):.0f} "
                           "days left)" if self.cert else "no certificate yet")
                self.last_error = f"{exc}; {serving}"
                self.log.error("certificate for %s not obtained: %s; next attempt in %.0fs",
                               ", ".join(s.domain_list), self.last_error,
                               self.next_attempt - self.now())
                raise TlsError(self.last_error) from None
            self.failures, self.last_error, self.next_attempt = 0, None, 0.0
            self.last_success = self.now()
            self.log.info("certificate for %s obtained from %s (serial %s, expires %s)",
                          ", ".join(info.names), s.acme_directory, info.serial,
                          time.strftime("%Y-%m-%d", time.gmtime(info.not_after)))
            return info

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # the loop must outlive any one bad turn
                self.log.exception("certificate check failed")
            try:
                async with asyncio.timeout(self.settings.tls_check_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    # -- the plain-HTTP port ----------------------------------------------------------------
    async def _open_http_port(self) -> None:
        from aiohttp import web

        s = self.settings
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._http_handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, s.host, s.http_port).start()
        except OSError as exc:
            await runner.cleanup()
            error = (f"HTTP port {s.http_port} on {s.host} is not available ({exc.strerror or exc}): "
                     "no redirect to HTTPS" + (", no ACME HTTP-01 answers" if s.tls == "acme" else ""))
            if error != self.http_error:
                self.log.error("%s; retrying every %ss", error, s.tls_check_interval)
            self.http_error = error
            return
        self._runner, self.http_error = runner, None
        self.log.info("HTTP on http://%s:%s (redirects to HTTPS%s)", s.host, s.http_port,
                      ", ACME challenges" if s.tls == "acme" else "")

    async def _http_handler(self, request: Any) -> Any:
        from aiohttp import web

        if request.path.startswith(CHALLENGE_PREFIX):
            answer = self.challenges.get(request.path[len(CHALLENGE_PREFIX):])
            if answer is None:
                return web.Response(status=404, text="no such challenge")
            return web.Response(text=answer)
        # To the name asked for when the certificate covers it, else to the first name it has.
        names = self.settings.domain_list or (list(self.cert.names) if self.cert else [])
        host = (request.url.host or "").lower() if request.headers.get("host") else ""
        if names and host not in names:
            host = names[0]
        if not host:
            return web.Response(status=400, text="a Host header is needed to redirect to HTTPS")
        port = "" if self.settings.https_port == 443 else f":{self.settings.https_port}"
        raise web.HTTPPermanentRedirect(f"https://{host}{port}{request.path_qs}")

    # -- reporting --------------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        s, now = self.settings, self.now()
        out: dict[str, Any] = {"mode": s.tls}
        if self.cert is None:
            out.update(ok=False, error=self.last_error or "no certificate yet (obtaining one)")
        else:
            days = self.cert.days_left(now)
            out.update(ok=days > 0, names=list(self.cert.names), days_left=round(days, 2),
                       not_after=_iso(self.cert.not_after), issuer=self.cert.issuer,
                       serial=self.cert.serial)
            if days <= 0:
                out["error"] = "the certificate has expired"
        warnings = [w for w in (self.last_error if self.cert else None, self.http_error) if w]
        if warnings:
            out["warning"] = "; ".join(warnings)
        return out

    def status(self) -> dict[str, Any]:
        out = self.readiness()
        out.update(failures=self.failures, last_attempt=_iso(self.last_attempt),
                   last_success=_iso(self.last_success),
                   next_attempt=_iso(self.next_attempt) if self.failures else None,
                   directory=self.settings.acme_directory if self.settings.tls == "acme" else None)
        return out

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        _ACTIVE.append(self)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="tls-check")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            while not self._task.done():  # a swallowed cancel must not leave it running
                await asyncio.wait({self._task}, timeout=1)
                self._task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self in _ACTIVE:
            _ACTIVE.remove(self)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def install(app: Sanic) -> None:
    """The ``/api/admin/tls`` routes always; the manager when HTTPS is configured."""
    from .auth import admin_auth
    from .http import json

    ctx = app.ctx
    manager = Tls(ctx.settings, ctx.log) if ctx.settings.tls else None
    ctx.tls = manager

    @app.get("/api/admin/tls", name="tls_status")
    async def tls_status(request: Request) -> HTTPResponse:
        await admin_auth(request)
        return json({"data": manager.status() if manager else {"mode": "off"}})

    @app.post("/api/admin/tls/renew", name="tls_renew")
    async def tls_renew(request: Request) -> HTTPResponse:
        await admin_auth(request)
        if manager is None or ctx.settings.tls != "acme":
            raise errors.ApiError(409, "tls_not_acme", "certificates are not obtained over ACME "
                                  "here (CONVERGER_DOMAINS is not set)")
        try:
            await manager.renew()
        except TlsError as exc:
            raise errors.ApiError(502, "acme_failed", str(exc)) from None
        return json({"data": manager.status()})

    if manager is None:
        return
    ctx.readiness["tls"] = manager.readiness

    @app.after_server_start
    async def _start(app: Sanic) -> None:
        await manager.start()

    @app.before_server_stop
    async def _stop(app: Sanic) -> None:
        await manager.stop()

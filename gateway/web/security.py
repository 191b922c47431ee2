"""What guards the web pages: signed expiring cookie sessions, CSRF tokens, the admin IP
allowlist (with X-Forwarded-For trusted only from configured proxies), argon2 passwords and a
login-attempt limiter. Every clock is injectable so tests never sleep."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sanic import Request

from .. import ipallow
from ..crypto import MIN_PASSWORD, hash_password, verify_password  # noqa: F401 (argon2, shared with the domain)

Clock = Callable[[], float]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- sessions ---------------------------------------------------------------------------------
class Sessions:
    """A session is a small JSON dict in a cookie: base64(payload).base64(HMAC-SHA256).

    The payload carries its own expiry (``exp``), so a copied cookie stops working on time and
    a tampered one fails the MAC. The key is derived from the server's secret key, separately
    from the JWT and at-rest keys.
    """

    def __init__(self, secret_key: str, lifetime: int, now: Clock = time.time) -> None:
        self._key = hashlib.sha256(b"converger-web-session\x00" + secret_key.encode()).digest()
        self.lifetime = lifetime
        self.now = now

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def dump(self, data: dict[str, Any]) -> str:
        body = dict(data, exp=int(self.now()) + self.lifetime)
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())
        raw = payload.decode().rstrip("=")
        return f"{raw}.{self._mac(raw.encode())}"

    def load(self, cookie: str | None) -> dict[str, Any] | None:
        """The session, or None when the cookie is absent, tampered with or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        raw, mac = cookie.split(".")
        # Bytes, not str: compare_digest raises TypeError on non-ASCII str (a forged cookie).
        if not hmac.compare_digest(mac.encode(errors="surrogatepass"),
                                   self._mac(raw.encode(errors="surrogatepass")).encode()):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            return None
        if data["exp"] <= self.now():
            return None
        data.pop("exp")
        return data


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(session: dict[str, Any], submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted) and hmac.compare_digest(
        str(expected).encode(errors="surrogatepass"), str(submitted).encode(errors="surrogatepass"))


# -- client address and the allowlist (one implementation: gateway/ipallow.py) -------------------
def parse_networks(spec: str | Iterable[str]) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8, ::1"`` -> networks. Raises ValueError on a bad entry."""
    return ipallow.parse_networks(spec if isinstance(spec, str) else ",".join(spec))


def within(address: str, networks: Iterable[Network]) -> bool:
    return ipallow.in_networks(address, tuple(networks))


def client_ip(request: Request, trusted_proxies: Iterable[Network]) -> str:
    """The socket peer; when the peer is a trusted proxy, the right-most X-Forwarded-For entry
    that is not itself a trusted proxy (entries to its left can be forged by the client)."""
    return ipallow.client_ip_via(request, tuple(trusted_proxies))


def is_https(request: Request, trusted_proxies: Iterable[Network]) -> bool:
    if request.scheme in ("https", "wss"):
        return True
    peer = request.conn_info.client_ip if request.conn_info else ""
    return (bool(trusted_proxies) and within(peer, trusted_proxies)
            and request.headers.get("x-forwarded-proto", "").lower() == "https")


# -- login attempts ---------------------------------------------------------------------------
class LoginLimiter:
    """Failed logins within ``window`` seconds: at most ``limit`` per (ip, e-mail),
    ``per_ip`` per IP whatever the e-mail (a spray over many accounts), and ``total`` in all
    (a spray from many addresses; then every login waits out the window — documented)."""

    def __init__(self, limit: int = 5, window: float = 300.0, now: Clock = time.monotonic,
                 per_ip: int = 20, total: int = 1000) -> None:
        self.limit = limit
        self.per_ip = per_ip
        self.total = total
        self.window = window
        self.now = now
        self._fails: dict[tuple[str, str], list[float]] = {}
        self._by_ip: dict[str, list[float]] = {}
        self._all: list[float] = []

    def _prune(self, times: list[float]) -> list[float]:
        cutoff = self.now() - self.window
        return [t for t in times if t > cutoff]

    def _recent(self, key: tuple[str, str]) -> list[float]:
        recent = self._prune(self._fails.get(key, []))
        if recent:
            self._fails[key] = recent
        else:
            self._fails.pop(key, None)
        return recent

    def _ip_recent(self, ip: str) -> list[float]:
        recent = self._prune(self._by_ip.get(ip, []))
        if recent:
            self._by_ip[ip] = recent
        else:
            self._by_ip.pop(ip, None)
        return recent

    def blocked(self, ip: str, email: str) -> bool:
        self._all = self._prune(self._all)
        return (len(self._recent((ip, email.lower()))) >= self.limit
                or bool(self.per_ip and len(self._ip_recent(ip)) >= self.per_ip)
                or bool(self.total and len(self._all) >= self.total))

    def failed(self, ip: str, email: str) -> None:
        if len(self._fails) > 100_000:  # bound memory under a spray of addresses
            self._fails.clear()
        if len(self._by_ip) > 100_000:
            self._by_ip.clear()
        key = (ip, email.lower())
        now = self.now()
        self._fails[key] = [*self._recent(key), now]
        self._by_ip[ip] = [*self._ip_recent(ip), now]
        self._all = [*self._prune(self._all), now][-max(self.total, 1) * 2:]

    def succeeded(self, ip: str, email: str) -> None:
        self._fails.pop((ip, email.lower()), None)


class PasswordChecks:
    """Password hashing off the shared thread pool, bounded: ``workers`` threads of its own,
    at most ``queue`` checks waiting. A login flood then costs a bounded amount of CPU and
    memory and leaves the pool that serves everything else alone; past the queue a login is
    refused at once (``None``) instead of waiting behind hundreds."""

    def __init__(self, workers: int = 2, queue: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="argon2")
        self.queue = max(1, queue)
        self.pending = 0

    async def verify(self, stored_hash: str | None, password: str) -> bool | None:
        if self.pending >= self.queue:
            return None
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, verify_password, stored_hash, password)
        finally:
            self.pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

"""What guards the web pages: signed expiring cookie sessions, CSRF tokens, the admin IP
allowlist (with X-Forwarded-For trusted only from configured proxies), argon2 passwords and a
login-attempt limiter. Every clock is injectable so tests never sleep."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Iterable
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
    """At most ``limit`` failed logins per (ip, e-mail) within ``window`` seconds."""

    def __init__(self, limit: int = 5, window: float = 300.0, now: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.now = now
        self._fails: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        cutoff = self.now() - self.window
        recent = [t for t in self._fails.get(key, ()) if t > cutoff]
        if recent:
            self._fails[key] = recent
        else:
            self._fails.pop(key, None)
        return recent

    def blocked(self, ip: str, email: str) -> bool:
        return len(self._recent((ip, email.lower()))) >= self.limit

    def failed(self, ip: str, email: str) -> None:
        if len(self._fails) > 100_000:  # bound memory under a spray of addresses
            self._fails.clear()
        key = (ip, email.lower())
        self._fails[key] = [*self._recent(key), self.now()]

    def succeeded(self, ip: str, email: str) -> None:
        self._fails.pop((ip, email.lower()), None)

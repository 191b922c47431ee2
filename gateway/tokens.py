"""JWTs with the original's claim rules (existing clients' tokens keep working; docs/realtime.md),
signed HS256 with the secret key.

Joken semantics: on issue, ``exp iat nbf iss aud jti`` are added; on verify only the claims a
token carries are checked (``exp`` strictly after now, ``nbf`` not after now, ``iss``/``aud``
equal ``"Joken"``). ``now`` is a parameter so expiry is tested with an injected clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt

LEGACY_LIFETIME = 3600
CONVERGER_LIFETIME = 1800
ISSUER = AUDIENCE = "Joken"


class TokenError(Exception):
    """The token is not valid; the message says why (never shown with secrets)."""


class TokenExpired(TokenError):
    """The token was valid and has expired (Direct Line answers ``TokenExpired`` for it)."""


UPLOAD_URL_LIFETIME = 3600  # seconds a signed upload URL can be fetched without credentials


def _jti() -> str:
    return base64.b32hexencode(secrets.token_bytes(10)).decode().lower().rstrip("=")


def secret_version(channel: Any) -> str:
    """What a channel or Converger token carries as ``sv``: a fingerprint of the channel's
    secret when the token was issued. Rotating the secret changes it, and tokens issued before
    no longer work (gateway.auth.channel_refusal)."""
    return hashlib.sha256(str(channel.secret_enc).encode()).hexdigest()[:12]


class Tokens:
    def __init__(self, secret_key: str, clock: Callable[[], float] = time.time) -> None:
        self._key = secret_key.encode()
        # "Now" when a caller names none (the gateway's clock: gateway/clock.py).
        self.clock = clock

    # -- issue --------------------------------------------------------------------------
    def sign(self, claims: dict[str, Any], lifetime: int, now: float | None = None) -> str:
        t = int(now if now is not None else self.clock())
        full = {"exp": t + lifetime, "iat": t, "nbf": t, "iss": ISSUER, "aud": AUDIENCE, "jti": _jti()}
        full.update(claims)
        return jwt.encode(full, self._key, algorithm="HS256")

    def channel_token(self, channel_id: str, tenant_id: str, now: float | None = None,
                      sv: str | None = None) -> str:
        claims = {"channel_id": channel_id, "tenant_id": tenant_id, "sub": f"channel_{channel_id}"}
        if sv:
            claims["sv"] = sv
        return self.sign(claims, LEGACY_LIFETIME, now)

    def user_token(
        self, conversation_id: str, tenant_id: str, user_id: str, now: float | None = None
    ) -> str:
        claims = {"conversation_id": conversation_id, "tenant_id": tenant_id, "sub": user_id}
        return self.sign(claims, LEGACY_LIFETIME, now)

    def converger_token(
        self,
        channel_id: str,
        tenant_id: str,
        conversation_id: str | None = None,
        now: float | None = None,
        user: str | None = None,
        sv: str | None = None,
    ) -> str:
        """``user`` (Direct Line's ``tokens/generate``): the only sender the token may post as,
        in the ``user`` claim the official client reads."""
        claims: dict[str, Any] = {
            "type": "converger", "channel_id": channel_id, "tenant_id": tenant_id,
            "sub": f"converger_{channel_id}",
        }
        if conversation_id:
            claims["conversation_id"] = conversation_id
        if user:
            claims["user"] = user
        if sv:
            claims["sv"] = sv
        return self.sign(claims, CONVERGER_LIFETIME, now)

    def sign_path(self, path: str, lifetime: int = UPLOAD_URL_LIFETIME,
                  now: float | None = None) -> tuple[int, str]:
        """``(exp, sig)`` that let anyone fetch ``path`` until ``exp`` (a signed upload URL)."""
        exp = int(now if now is not None else self.clock()) + lifetime
        return exp, self._path_sig(path, exp)

    def _path_sig(self, path: str, exp: int) -> str:
        mac = hmac.new(self._key, f"upload\n{path}\n{exp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def signed_upload_url(self, base: str, path: str) -> str:
        """``/uploads/<tenant>/<file>`` → ``<base>/uploads/…?exp=…&sig=…``: absolute, so a
        browser on another origin can fetch it, and good for ``UPLOAD_URL_LIFETIME``."""
        exp, sig = self.sign_path(path.removeprefix("/uploads/"))
        return f"{base}{path}?exp={exp}&sig={sig}"

    def verify_path(self, path: str, exp: str, sig: str, now: float | None = None) -> bool:
        """True when ``sig`` signs ``path`` until ``exp`` and ``exp`` is still ahead."""
        try:
            when = int(exp)
        except ValueError:
            return False
        t = now if now is not None else self.clock()
        return when > t and hmac.compare_digest(self._path_sig(path, when), sig)

    # -- verify -------------------------------------------------------------------------
    def _decode(self, token: str, now: float | None) -> dict[str, Any]:
        if not token or not isinstance(token, str):
            raise TokenError("missing token")
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "verify_aud": False, "verify_iss": False, "require": []},
            )
        except jwt.PyJWTError as exc:
            raise TokenError("invalid signature or format") from exc
        t = now if now is not None else self.clock()
        exp = claims.get("exp")
        if exp is not None and not isinstance(exp, int | float):
            raise TokenError("invalid exp")
        if exp is not None and exp <= t:
            raise TokenExpired("expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > t):
            raise TokenError("not yet valid")
        if "iss" in claims and claims["iss"] != ISSUER:
            raise TokenError("bad issuer")
        if "aud" in claims and claims["aud"] != AUDIENCE:
            raise TokenError("bad audience")
        return claims

    def verify_legacy(self, token: str, now: float | None = None) -> dict[str, Any]:
        claims = self._decode(token, now)
        for key in ("conversation_id", "tenant_id", "sub"):
            if key in claims and claims[key] is None:
                raise TokenError(f"{key} is null")
        return claims

    def verify_converger(self, token: str, now: float | None = None) -> dict[str, Any]:
        claims = self._decode(token, now)
        if claims.get("type") != "converger":
            raise TokenError("invalid_token_type")
        for key in ("channel_id", "tenant_id", "sub"):
            if key in claims and not isinstance(claims[key], str):
                raise TokenError(f"{key} must be a string")
        return claims

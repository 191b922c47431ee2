"""Single sign-on to the admin panel with OpenID Connect (issue 25): the authorization code flow
with PKCE, as a relying party of ``CONVERGER_OIDC_ISSUER``.

Authlib makes the authorization request (``OAuth2Client.create_authorization_url``: state,
nonce, the S256 code challenge); the code is exchanged at the provider's token endpoint (the
client authenticates with its secret, sends the PKCE verifier); the ID token is verified with
joserfc (Authlib's JOSE library) against the provider's published keys: its signature, issuer,
audience, nonce, expiry. A group of the groups claim then names the role and tenant scope
(``CONVERGER_OIDC_ROLE_MAP``); no group that maps → refused. Nothing here writes: the pages
(gateway/web/pages/sso.py) sign the user in through ``gateway.domain.users.sso_admin``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.client import OAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

DISCOVERY = "/.well-known/openid-configuration"
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")


class SsoError(Exception):
    """The sign-in failed; ``str(exc)`` says why, for the log and the sign-in page."""


@dataclass(frozen=True)
class Grant:
    """What a group maps to: a role and a tenant scope (None: every tenant)."""

    role: str
    tenants: tuple[str, ...] | None = None


@dataclass
class SsoConfig:
    issuer: str
    client_id: str
    client_secret: str
    groups_claim: str = "groups"
    scopes: str = "openid email profile"
    grants: dict[str, Grant] = field(default_factory=dict)  # group → grant, first match wins


def parse_role_map(text: str) -> dict[str, Grant]:
    """``{"group": "role"}`` or ``{"group": {"role": "…", "tenants": ["…"]}}`` (JSON)."""
    if not text.strip():
        return {}
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("CONVERGER_OIDC_ROLE_MAP must be a JSON object of group → role")
    out: dict[str, Grant] = {}
    for group, value in raw.items():
        if isinstance(value, str):
            out[str(group)] = Grant(value)
        elif isinstance(value, dict) and isinstance(value.get("role"), str):
            tenants = value.get("tenants")
            if tenants is not None and not (isinstance(tenants, list)
                                            and all(isinstance(t, str) for t in tenants)):
                raise ValueError(f"CONVERGER_OIDC_ROLE_MAP: {group}: tenants must be a list")
            out[str(group)] = Grant(value["role"], tuple(tenants) if tenants else None)
        else:
            raise ValueError(f"CONVERGER_OIDC_ROLE_MAP: {group}: a role name or "
                             '{"role": …, "tenants": […]}')
    return out


@dataclass
class Pending:
    """What the browser's session keeps between the redirect and the callback."""

    state: str
    nonce: str
    verifier: str


class Sso:
    """The relying party: discovery (cached), the authorization URL, the callback."""

    def __init__(self, config: SsoConfig, redirect_uri: str) -> None:
        self.config = config
        self.redirect_uri = redirect_uri
        self._meta: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def _get(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
            if r.status != 200:
                raise SsoError(f"the identity provider answered {r.status} for {url}")
            body = await r.json(content_type=None)
        if not isinstance(body, dict):
            raise SsoError(f"the identity provider's {url} is not a JSON object")
        return body

    async def metadata(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        if self._meta is None:
            meta = await self._get(session, self.config.issuer.rstrip("/") + DISCOVERY)
            if meta.get("issuer") != self.config.issuer:
                raise SsoError("the discovery document names another issuer")
            self._meta = meta
        return self._meta

    async def keys(self, session: aiohttp.ClientSession, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            meta = await self.metadata(session)
            self._keys = KeySet.import_key_set(await self._get(session, meta["jwks_uri"]))  # type: ignore[arg-type]
        return self._keys

    async def start(self, session: aiohttp.ClientSession) -> tuple[str, Pending]:
        """The URL to send the browser to, and what to keep for the callback."""
        meta = await self.metadata(session)
        pending = Pending(state=generate_token(32), nonce=generate_token(32),
                          verifier=generate_token(64))
        client = OAuth2Client(None, client_id=self.config.client_id,
                              redirect_uri=self.redirect_uri, scope=self.config.scopes,
                              code_challenge_method="S256")
        url, _ = client.create_authorization_url(
            meta["authorization_endpoint"], state=pending.state, code_verifier=pending.verifier,
            nonce=pending.nonce)
        return url, pending

    async def finish(self, session: aiohttp.ClientSession, pending: Pending, code: str,
                     now: float | None = None) -> dict[str, Any]:
        """Exchange the code and verify the ID token: its claims, or SsoError."""
        meta = await self.metadata(session)
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.redirect_uri, "code_verifier": pending.verifier}
        auth = aiohttp.BasicAuth(self.config.client_id, self.config.client_secret)
        async with session.post(meta["token_endpoint"], data=urlencode(form), auth=auth,
                                headers={"content-type": "application/x-www-form-urlencoded",
                                         "accept": "application/json"},
                                timeout=aiohttp.ClientTimeout(total=10)) as r:
            body = await r.json(content_type=None)
            if r.status != 200 or not isinstance(body, dict):
                raise SsoError(f"the token endpoint refused the code ({r.status})")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise SsoError("the token endpoint sent no ID token")
        return await self.verify(session, id_token, pending.nonce, now)

    async def verify(self, session: aiohttp.ClientSession, id_token: str, nonce: str,
                     now: float | None = None) -> dict[str, Any]:
        keys = await self.keys(session)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
            except JoseError:  # the provider may have rotated its keys: fetch them once more
                token = jwt.decode(id_token, await self.keys(session, refresh=True),
                                   algorithms=list(ALGORITHMS))
            registry = jwt.JWTClaimsRegistry(
                now=int(now if now is not None else time.time()), leeway=60,
                iss={"essential": True, "value": self.config.issuer},
                aud={"essential": True, "value": self.config.client_id},
                sub={"essential": True}, exp={"essential": True},
                nonce={"essential": True, "value": nonce})
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SsoError(f"the ID token was refused: {exc.__class__.__name__}: {exc}") from None
        return dict(token.claims)

    def grant(self, claims: dict[str, Any]) -> Grant | None:
        """The grant of the first mapped group the claims carry (in the map's order)."""
        groups = claims.get(self.config.groups_claim)
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            return None
        for group, grant in self.config.grants.items():
            if group in groups:
                return grant
        return None


def pending_to_session(p: Pending) -> dict[str, str]:
    return {"state": p.state, "nonce": p.nonce, "verifier": p.verifier}


def pending_from_session(data: Any) -> Pending | None:
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str)
                                             for k in ("state", "nonce", "verifier")):
        return None
    return Pending(data["state"], data["nonce"], data["verifier"])

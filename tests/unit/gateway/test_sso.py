"""The relying party's checks of an ID token (gateway/sso.py) and the group → role map, with
keys made here: every tampering is refused; the map's first group wins."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from gateway.sso import Grant, Sso, SsoConfig, SsoError, parse_role_map

ISSUER, CLIENT = "http://127.0.0.1:9/idp", "converger"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def _sso() -> Sso:
    sso = Sso(SsoConfig(ISSUER, CLIENT, "secret", grants=parse_role_map(
        '{"ops": "super_admin", "agency": {"role": "agency", "tenants": ["t1"]}}')),
        "http://127.0.0.1:4000/admin/sso/callback")
    sso._meta = {"issuer": ISSUER, "jwks_uri": "http://127.0.0.1:9/jwks"}
    sso._keys = KeySet([KEY])
    return sso


def _token(key: RSAKey = KEY, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "nonce": "n1", "iat": now,
              "exp": now + 300, "groups": ["agency", "ops"], **changes}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, {k: v for k, v in claims.items()
                                                      if v is not None}, key)


async def test_a_good_token_and_its_grant() -> None:
    sso = _sso()
    claims = await sso.verify(None, _token(), "n1")  # type: ignore[arg-type]
    assert claims["sub"] == "alice"
    assert sso.grant(claims) == Grant("super_admin")  # the map's order decides, not the token's
    assert sso.grant({"groups": ["agency"]}) == Grant("agency", ("t1",))
    assert sso.grant({"groups": ["nobody"]}) is None and sso.grant({}) is None


@pytest.mark.parametrize("token", [
    _token(iss="http://127.0.0.1:9/evil"), _token(aud="another-client"), _token(nonce="n2"),
    _token(exp=int(time.time()) - 3600), _token(sub=None), _token(nonce=None),
])
async def test_tampered_claims_are_refused(token: str) -> None:
    with pytest.raises(SsoError):
        await _sso().verify(None, token, "n1")  # type: ignore[arg-type]


async def test_a_token_signed_with_another_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sso = _sso()

    async def same_keys(session: Any, refresh: bool = False) -> KeySet:
        return KeySet([KEY])  # the refetch finds the same published keys

    monkeypatch.setattr(sso, "keys", same_keys)
    with pytest.raises(SsoError):
        await sso.verify(None, _token(OTHER), "n1")  # type: ignore[arg-type]
    with pytest.raises(SsoError):
        await sso.verify(None, _token() + "x", "n1")  # type: ignore[arg-type]
    with pytest.raises(SsoError):
        await sso.verify(None, "not a token", "n1")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ['["ops"]', '{"ops": 3}', '{"ops": {"role": "x", "tenants": "t"}}',
                                  "{not json"])
def test_bad_role_maps(text: str) -> None:
    with pytest.raises(ValueError):
        parse_role_map(text)

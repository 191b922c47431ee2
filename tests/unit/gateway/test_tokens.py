"""JWT claim rules (reference §3.2–§3.5) as unit tests with an injected ``now``."""

from __future__ import annotations

import time

import jwt
import pytest

from gateway.tokens import (
    AUDIENCE,
    CONVERGER_LIFETIME,
    ISSUER,
    LEGACY_LIFETIME,
    TokenError,
    Tokens,
)

KEY = "unit-test-key-0123456789abcdef0123456789"
T0 = 1_700_000_000


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(KEY)


def raw(claims: dict, key: str = KEY, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_issue_adds_joken_claims(tokens: Tokens) -> None:
    c = claims_of(tokens.channel_token("ch", "t", now=T0))
    assert c["exp"] == T0 + LEGACY_LIFETIME and c["iat"] == c["nbf"] == T0
    assert c["iss"] == ISSUER == "Joken" and c["aud"] == AUDIENCE == "Joken"
    assert c["jti"] and c["jti"] == c["jti"].lower()
    assert (c["channel_id"], c["tenant_id"], c["sub"]) == ("ch", "t", "channel_ch")
    header = jwt.get_unverified_header(tokens.channel_token("ch", "t", now=T0))
    assert header == {"alg": "HS256", "typ": "JWT"}
    u = claims_of(tokens.user_token("conv", "t", "user-7", now=T0))
    assert (u["conversation_id"], u["tenant_id"], u["sub"]) == ("conv", "t", "user-7")
    assert "channel_id" not in u
    assert claims_of(tokens.channel_token("a", "b", now=T0))["jti"] != c["jti"]


def test_converger_token_claims(tokens: Tokens) -> None:
    c = claims_of(tokens.converger_token("ch", "t", now=T0))
    assert c["type"] == "converger" and c["sub"] == "converger_ch"
    assert c["exp"] == T0 + CONVERGER_LIFETIME and "conversation_id" not in c
    scoped = claims_of(tokens.converger_token("ch", "t", "conv", now=T0))
    assert scoped["conversation_id"] == "conv"


def test_exp_is_strict(tokens: Tokens) -> None:
    tok = tokens.channel_token("ch", "t", now=T0)
    assert tokens.verify_legacy(tok, now=T0)["channel_id"] == "ch"
    assert tokens.verify_legacy(tok, now=T0 + LEGACY_LIFETIME - 1)
    with pytest.raises(TokenError):
        tokens.verify_legacy(tok, now=T0 + LEGACY_LIFETIME)  # exp must be > now
    with pytest.raises(TokenError):
        tokens.verify_legacy(tok, now=T0 + LEGACY_LIFETIME + 1)


def test_nbf_not_after_now(tokens: Tokens) -> None:
    tok = tokens.channel_token("ch", "t", now=T0)
    assert tokens.verify_legacy(tok, now=T0)  # nbf == now is fine
    with pytest.raises(TokenError):
        tokens.verify_legacy(tok, now=T0 - 1)  # no leeway


def test_only_present_claims_are_checked(tokens: Tokens) -> None:
    # No exp, nbf, iss, aud at all: valid (Joken semantics).
    bare = raw({"tenant_id": "t", "channel_id": "c"})
    assert tokens.verify_legacy(bare, now=T0)["tenant_id"] == "t"
    assert tokens.verify_legacy(bare, now=4_000_000_000)


@pytest.mark.parametrize("claims", [
    {"iss": "someone-else"}, {"aud": "other"}, {"aud": ["Joken"]}, {"exp": "soon"},
    {"nbf": "later"}, {"exp": T0}, {"nbf": T0 + 1},
])
def test_present_claims_must_hold(tokens: Tokens, claims: dict) -> None:
    with pytest.raises(TokenError):
        tokens.verify_legacy(raw({"tenant_id": "t", **claims}), now=T0)


def test_signature_key_and_algorithm(tokens: Tokens) -> None:
    with pytest.raises(TokenError):
        tokens.verify_legacy(raw({"tenant_id": "t"}, key="other-key-0123456789abcdef0123456789ab"), now=T0)
    with pytest.raises(TokenError):
        tokens.verify_legacy(raw({"tenant_id": "t"}, key=KEY * 2, alg="HS512"), now=T0)
    unsigned = jwt.encode({"tenant_id": "t"}, None, algorithm="none")
    with pytest.raises(TokenError):
        tokens.verify_legacy(unsigned, now=T0)
    for junk in ("", "a.b.c", "not-a-token", "x" * 5000):
        with pytest.raises(TokenError):
            tokens.verify_legacy(junk, now=T0)
    # The key is the raw string bytes (SECRET_KEY_BASE semantics).
    assert Tokens(KEY).verify_legacy(raw({"tenant_id": "t"}, key=KEY), now=T0)


@pytest.mark.parametrize("field", ["conversation_id", "tenant_id", "sub"])
def test_legacy_null_claims_rejected(tokens: Tokens, field: str) -> None:
    with pytest.raises(TokenError):
        tokens.verify_legacy(raw({"tenant_id": "t", field: None}), now=T0)


def test_legacy_accepts_any_kind(tokens: Tokens) -> None:
    """Legacy verification ignores ``type``: a converger token verifies too (reference §3.3)."""
    conv = tokens.converger_token("ch", "t", now=T0)
    assert tokens.verify_legacy(conv, now=T0)["type"] == "converger"
    assert tokens.verify_legacy(tokens.user_token("c", "t", "u", now=T0), now=T0)


def test_converger_verification_requires_type(tokens: Tokens) -> None:
    assert tokens.verify_converger(tokens.converger_token("ch", "t", now=T0), now=T0)
    with pytest.raises(TokenError, match="invalid_token_type"):
        tokens.verify_converger(tokens.channel_token("ch", "t", now=T0), now=T0)
    with pytest.raises(TokenError):
        tokens.verify_converger(raw({"type": "legacy", "channel_id": "c"}), now=T0)
    for field in ("channel_id", "tenant_id", "sub"):
        with pytest.raises(TokenError):
            tokens.verify_converger(raw({"type": "converger", field: 5}), now=T0)
    with pytest.raises(TokenError):
        tokens.verify_converger(tokens.converger_token("ch", "t", now=T0),
                                now=T0 + CONVERGER_LIFETIME)


def test_default_now_is_the_wall_clock(tokens: Tokens) -> None:
    tok = tokens.channel_token("ch", "t")
    assert tokens.verify_legacy(tok)
    assert abs(claims_of(tok)["iat"] - time.time()) < 5

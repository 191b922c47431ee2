"""Tenant-user invitations (issue 23) in-process, with an injected clock: the token is stored
only as its SHA-256, a link works once and until it expires, a newer invitation replaces an
older one, and the invited person's e-mail is kept in lower case."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta

import pytest

from gateway.context import Gateway
from gateway.domain import NotFound, ValidationFailed
from gateway.domain import invites as invite_ops
from gateway.domain import tenants as tenant_ops
from store.util import iso, parse_iso
from tests.unit.domain.conftest import ADMIN

T0 = "2026-03-01T10:00:00.000000Z"


def _at(gw: Gateway, when: str) -> None:
    gw.now_iso = lambda: when  # type: ignore[method-assign]


def _later(delta: timedelta) -> str:
    return iso(parse_iso(T0) + delta)


async def _tenant(gw: Gateway, name: str = "acme") -> str:
    tenant, _key = await tenant_ops.create(gw, ADMIN, name=name)
    return tenant.id


async def test_the_token_is_stored_only_as_its_hash(gw: Gateway) -> None:
    _at(gw, T0)
    tid = await _tenant(gw)
    invite, token = await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="Ines@Example.COM",
                                            role="owner")
    assert invite.email == "ines@example.com"
    assert invite.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 43  # 32 random bytes

    def table(conn: sqlite3.Connection, name: str) -> str:
        return repr([tuple(r) for r in conn.execute(f"SELECT * FROM {name}")])

    invites_rows = await gw.db.read(table, "tenant_invites")
    audit_rows = await gw.db.read(table, "audit_logs")
    assert token not in invites_rows and token not in audit_rows
    assert invite.token_hash in invites_rows and invite.token_hash not in audit_rows


async def test_a_link_works_once_and_until_it_expires(gw: Gateway) -> None:
    _at(gw, T0)
    tid = await _tenant(gw)
    _, late = await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="late@x.example",
                                      role="member")
    _, soon = await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="soon@x.example",
                                      role="viewer")
    days = timedelta(days=invite_ops.INVITE_DAYS)
    _at(gw, _later(days + timedelta(seconds=1)))  # expired: refused like an unknown link
    with pytest.raises(NotFound):
        await invite_ops.accept(gw, late, name="Late", password="late password")
    with pytest.raises(NotFound):
        await invite_ops.accept(gw, "no-such-token", name="X", password="whatever password")
    _at(gw, _later(days - timedelta(seconds=1)))  # still valid a second before
    user = await invite_ops.accept(gw, soon, name="Soon", password="soon password")
    assert (user.email, user.role, user.tenant_id, user.name) == (
        "soon@x.example", "viewer", tid, "Soon")
    with pytest.raises(NotFound):  # once
        await invite_ops.accept(gw, soon, name="Again", password="again password")
    pending = await gw.db.read(invite_ops.pending, tid, gw.now_iso())
    assert [i.email for i in pending] == ["late@x.example"]


async def test_a_new_invitation_replaces_the_pending_one(gw: Gateway) -> None:
    _at(gw, T0)
    tid = await _tenant(gw)
    _, first = await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="a@x.example",
                                       role="member")
    _, second = await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="A@X.example",
                                        role="admin")
    with pytest.raises(NotFound):
        await invite_ops.accept(gw, first, name="A", password="a password 1")
    user = await invite_ops.accept(gw, second, name="A", password="a password 1")
    assert user.role == "admin"
    # An address with an account is not invited again; a short password is refused first.
    with pytest.raises(ValidationFailed) as exc:
        await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="a@x.example", role="member")
    assert "email" in exc.value.fields


async def test_bad_input_and_revoke_within_a_tenant(gw: Gateway) -> None:
    _at(gw, T0)
    tid, other = await _tenant(gw, "one"), await _tenant(gw, "two")
    with pytest.raises(ValidationFailed) as exc:
        await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="nope", role="emperor")
    assert set(exc.value.fields) == {"email", "role"}
    invite, token = await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="b@x.example",
                                            role="member", roles=("admin", "member"))
    with pytest.raises(ValidationFailed) as exc:
        await invite_ops.accept(gw, token, name="", password="short")
    assert set(exc.value.fields) == {"name", "password"}
    with pytest.raises(NotFound):  # another tenant's invitation is not there
        await invite_ops.revoke(gw, ADMIN, invite.id, tenant_id=other)
    await invite_ops.revoke(gw, ADMIN, invite.id, tenant_id=tid)
    with pytest.raises(NotFound):
        await invite_ops.accept(gw, token, name="B", password="b password 1")
    with pytest.raises(ValidationFailed):  # owners are invited only where owner is offered
        await invite_ops.invite(gw, ADMIN, tenant_id=tid, email="c@x.example", role="owner",
                                roles=("admin", "member", "viewer"))

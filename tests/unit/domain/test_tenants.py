"""Tenants: the field rules, the key shown once (only its hash kept), the audit entry of each
change, and the API-key cache cleared by every change."""

from __future__ import annotations

import pytest

from gateway.context import Gateway
from gateway.crypto import sha256_hex
from gateway.domain import NotFound, ValidationFailed
from gateway.domain import tenants as tenant_ops
from store import audit, tenants

from .conftest import ADMIN


async def _audit(gw: Gateway, resource_id: str) -> list[tuple[str, dict]]:
    items, _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=resource_id))
    return [(a.action, a.changes) for a in reversed(items)]


async def test_create_keeps_only_the_hash_and_audits(gw: Gateway) -> None:
    tenant, key = await tenant_ops.create(gw, ADMIN, name="  acme  ")
    assert tenant.name == "acme" and tenant.status == "active" and key.startswith("cvk_")
    stored = await gw.db.read(tenants.by_key_hash, sha256_hex(key))
    assert stored is not None and stored.id == tenant.id
    [(action, changes)] = await _audit(gw, tenant.id)
    assert action == "create" and changes["after"]["name"] == "acme"
    assert "api_key_hash" not in changes["after"]


@pytest.mark.parametrize(("fields", "errors"), [
    ({"name": "  "}, {"name": ["can't be blank"]}),
    ({"name": "a\x00b"}, {"name": ["is invalid"]}),
    ({"name": "ok", "status": "paused"}, {"status": ["is invalid"]}),
    ({"name": "ok", "alert_webhook_url": "ftp://x"},
     {"alert_webhook_url": ["must be a valid HTTP or HTTPS URL"]}),
])
async def test_field_rules(gw: Gateway, fields: dict, errors: dict) -> None:
    with pytest.raises(ValidationFailed) as exc:
        await tenant_ops.create(gw, ADMIN, **fields)
    assert exc.value.fields == errors
    assert (await gw.db.read(lambda c: tenants.list_page(c, limit=10)))[0] == []


async def test_status_change_is_toggle_status_with_before_and_after(gw: Gateway) -> None:
    tenant, _ = await tenant_ops.create(gw, ADMIN, name="acme")
    after = await tenant_ops.set_status(gw, ADMIN, tenant.id, "inactive")
    assert after.status == "inactive"
    (_, _), (action, changes) = await _audit(gw, tenant.id)
    assert action == "toggle_status"
    assert changes["before"]["status"] == "active" and changes["after"]["status"] == "inactive"


async def test_every_change_clears_the_key_cache(gw: Gateway) -> None:
    tenant, key = await tenant_ops.create(gw, ADMIN, name="acme")
    for change in (lambda: tenant_ops.set_status(gw, ADMIN, tenant.id, "suspended"),
                   lambda: tenant_ops.rotate_key(gw, ADMIN, tenant.id),
                   lambda: tenant_ops.delete(gw, ADMIN, tenant.id)):
        gw.tenant_cache.put(sha256_hex(key), tenant)
        await change()
        assert gw.tenant_cache.get(sha256_hex(key)) == (False, None)


async def test_rotate_replaces_the_key(gw: Gateway) -> None:
    tenant, old = await tenant_ops.create(gw, ADMIN, name="acme")
    _, new = await tenant_ops.rotate_key(gw, ADMIN, tenant.id)
    assert new != old
    assert await gw.db.read(tenants.by_key_hash, sha256_hex(old)) is None
    assert (await gw.db.read(tenants.by_key_hash, sha256_hex(new))).id == tenant.id


async def test_unknown_tenant_is_not_found(gw: Gateway) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for op in (tenant_ops.update(gw, ADMIN, missing, {"name": "x"}),
               tenant_ops.rotate_key(gw, ADMIN, missing), tenant_ops.delete(gw, ADMIN, missing)):
        with pytest.raises(NotFound):
            await op

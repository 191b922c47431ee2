"""Users: e-mail, name, password length and role rules; e-mails unique (per tenant for tenant
users) and stored lower-case; passwords hashed with argon2 and never in the audit log; a
portal change limited to its tenant."""

from __future__ import annotations

import pytest

from gateway.context import Gateway
from gateway.crypto import MIN_PASSWORD, verify_password
from gateway.domain import NotFound, ValidationFailed
from gateway.domain import tenants as tenant_ops
from gateway.domain import users as user_ops
from store import audit, users

from .conftest import ADMIN

PASSWORD = "correct horse battery"


async def test_admin_created_hashed_lowercased_and_audited_without_the_hash(gw: Gateway) -> None:
    user = await user_ops.create_admin(gw, ADMIN, email=" Ops@Example.com ", name=" Ops ",
                                       password=PASSWORD, role="admin")
    assert (user.email, user.name, user.status) == ("ops@example.com", "Ops", "active")
    _, stored_hash = await gw.db.read(users.admin_login_row, "ops@example.com")
    assert stored_hash != PASSWORD and verify_password(stored_hash, PASSWORD)
    [entry], _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=user.id))
    assert entry.action == "create" and "password_hash" not in entry.changes["after"]


async def test_admin_rules(gw: Gateway) -> None:
    with pytest.raises(ValidationFailed) as exc:
        await user_ops.create_admin(gw, ADMIN, email="nope", name="", password="short",
                                    role="emperor")
    assert exc.value.fields == {
        "email": ["must be a valid e-mail address"], "name": ["can't be blank"],
        "password": [f"must be at least {MIN_PASSWORD} characters"], "role": ["is invalid"]}
    await user_ops.create_admin(gw, ADMIN, email="a@b.c", name="A", password=PASSWORD,
                                role="viewer")
    with pytest.raises(ValidationFailed) as exc:
        await user_ops.create_admin(gw, ADMIN, email="A@B.C", name="A", password=PASSWORD,
                                    role="viewer")
    assert exc.value.fields == {"email": ["has already been taken"]}


async def test_update_checks_what_it_sets_and_rehashes_a_new_password(gw: Gateway) -> None:
    user = await user_ops.create_admin(gw, ADMIN, email="u@x.y", name="U", password=PASSWORD,
                                       role="viewer")
    for bad, field in (({"role": "owner"}, "role"), ({"status": "gone"}, "status"),
                       ({"name": " "}, "name"), ({"password": "short"}, "password")):
        with pytest.raises(ValidationFailed) as exc:
            await user_ops.update_admin(gw, ADMIN, user.id, bad)
        assert list(exc.value.fields) == [field]
    changed = await user_ops.update_admin(gw, ADMIN, user.id,
                                          {"role": "admin", "password": "another good one"})
    assert changed.role == "admin"
    _, stored_hash = await gw.db.read(users.admin_login_row, "u@x.y")
    assert verify_password(stored_hash, "another good one")
    items, _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=user.id))
    assert items[0].action == "update" and items[0].changes["before"]["role"] == "viewer"
    assert "password_hash" not in str(items[0].changes)
    with pytest.raises(NotFound):
        await user_ops.delete_admin(gw, ADMIN, "00000000-0000-4000-8000-000000000000")


async def test_tenant_users_are_per_tenant(gw: Gateway) -> None:
    a, _ = await tenant_ops.create(gw, ADMIN, name="a")
    b, _ = await tenant_ops.create(gw, ADMIN, name="b")
    user = await user_ops.create_tenant_user(gw, ADMIN, tenant_id=a.id, email="same@x.y",
                                             name="S", password=PASSWORD, role="owner")
    await user_ops.create_tenant_user(gw, ADMIN, tenant_id=b.id, email="same@x.y", name="S",
                                      password=PASSWORD, role="member")  # another tenant: fine
    with pytest.raises(ValidationFailed) as exc:
        await user_ops.create_tenant_user(gw, ADMIN, tenant_id=a.id, email="SAME@x.y", name="S",
                                          password=PASSWORD, role="member")
    assert exc.value.fields == {"email": ["has already been taken"]}
    with pytest.raises(ValidationFailed) as exc:
        await user_ops.create_tenant_user(gw, ADMIN, tenant_id=a.id, email="r@x.y", name="R",
                                          password=PASSWORD, role="super_admin")
    assert exc.value.fields == {"role": ["is invalid"]}
    # The portal of tenant b cannot touch a's user: not found, unchanged.
    for op in (user_ops.update_tenant_user(gw, ADMIN, user.id, {"status": "inactive"},
                                           tenant_id=b.id),
               user_ops.delete_tenant_user(gw, ADMIN, user.id, tenant_id=b.id)):
        with pytest.raises(NotFound):
            await op
    assert (await gw.db.read(users.get_tenant_user, user.id)).status == "active"

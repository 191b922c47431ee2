"""Accounts on the real server, through the admin pages: deactivating a tenant user ends their
portal session and refuses their logins; an admin API token revoked from the admin page stops
working at once; account validation (minimum password length, e-mail, name, role, duplicates)."""

from __future__ import annotations

import html
import re
from functools import partial

from tests.support.api import Api
from tests.support.server import Server, open_database

from .conftest import Client

ERRORS = re.compile(r'class="errors">([^<]+)')


def _errors(body: str) -> str:
    return " ".join(html.unescape(e) for e in ERRORS.findall(body))


def _row_id(body: str, needle: str, action: str) -> str:
    """The id in the ``action`` form of the table row that shows ``needle``."""
    row = next(r for r in body.split("<tr") if needle in r)
    found = re.search(action + r"/([0-9a-f-]{36})/", row)
    assert found, row
    return found.group(1)


async def test_deactivating_a_tenant_user_ends_their_session_and_refuses_logins(
        admin: Client, web_server: Server, web_api: Api) -> None:
    t = await web_api.tenant("deactivated-user")
    status, body, _ = await admin.add_tenant_user({
        "tenant_id": t["id"], "name": "Dee", "email": "dee@deact.example",
        "password": "portal pass 1", "role": "member"})
    assert status == 302, ERRORS.findall(body)
    user = Client(web_server.url)
    try:
        assert await user.login("dee@deact.example", "portal pass 1", "portal",
                                tenant="deactivated-user") == 302
        assert (await user.get("/portal"))[0] == 200
        _, page, _ = await admin.get("/admin/tenant_users")
        uid = _row_id(page, "dee@deact.example", "/admin/tenant_users")
        status, _, headers = await admin.post(f"/admin/tenant_users/{uid}/status",
                                              {"status": "inactive"})
        assert status == 302 and headers["location"] == "/admin/tenant_users"
        _, page, _ = await admin.get("/admin/tenant_users")
        assert "Status updated" in page
        row = next(r for r in page.split("<tr") if "dee@deact.example" in r)
        assert "inactive" in row
        # The open session is over: the next page is the login form.
        status, _, headers = await user.get("/portal")
        assert status == 302 and headers["location"].endswith("/portal/login")
        assert (await user.get("/portal/channels"))[0] == 302
        # And the right password no longer logs in.
        assert await user.login("dee@deact.example", "portal pass 1", "portal",
                                tenant="deactivated-user") == 401
        # Audited with the admin as the actor.
        _, audit, _ = await admin.get("/admin/audit_logs?resource_type=tenant_user")
        assert uid in audit
        # Active again: the login works again.
        await admin.post(f"/admin/tenant_users/{uid}/status", {"status": "active"})
        assert await user.login("dee@deact.example", "portal pass 1", "portal",
                                tenant="deactivated-user") == 302
        assert (await user.get("/portal"))[0] == 200
    finally:
        await user.close()


async def test_an_admin_token_revoked_from_the_admin_page_stops_working(
        admin: Client, web_api: Api) -> None:
    status, body, _ = await admin.post("/admin/tokens", {"name": "to-revoke", "role": "admin"})
    assert status == 201
    token = re.search(r'id="once-value">([^<]+)<', body).group(1)
    bearer = {"authorization": f"Bearer {token}"}
    assert (await web_api.call("GET", "/api/admin/tenants", headers=bearer))[0] == 200
    _, page, _ = await admin.get("/admin/tokens")
    token_id = _row_id(page, "to-revoke", "/admin/tokens")
    status, _, headers = await admin.post(f"/admin/tokens/{token_id}/revoke", {})
    assert status == 302 and headers["location"] == "/admin/tokens"
    _, page, _ = await admin.get("/admin/tokens")
    assert "Token revoked" in page
    status, body, _ = await web_api.call("GET", "/api/admin/tenants", headers=bearer)
    assert status == 401 and body["code"] == "invalid_admin_token"
    # Revoked once: a second revoke (or an unknown id) finds nothing.
    await admin.post(f"/admin/tokens/{token_id}/revoke", {})
    _, page, _ = await admin.get("/admin/tokens")
    assert "Token not found" in page
    _, audit, _ = await admin.get("/admin/audit_logs?resource_type=admin_token")
    assert token_id in audit and "revoke" in audit


async def test_account_validation(admin: Client, web_server: Server, web_api: Api) -> None:
    t = await web_api.tenant("validated")
    good = {"name": "Val", "email": "val@valid.example", "password": "12345678", "role": "admin"}
    cases = [
        ({"password": "1234567"}, "must be at least 8 characters"),  # one short of the minimum
        ({"password": ""}, "must be at least 8 characters"),
        ({"email": "not-an-address"}, "must be a valid e-mail address"),
        ({"name": ""}, "can't be blank"),
        ({"role": "emperor"}, "is invalid"),
    ]
    tenant_user = {**good, "tenant_id": t["id"], "role": "member"}
    for path, base in (("/admin/users", good), ("invite", tenant_user)):
        # A tenant user's e-mail and role are checked with the invitation, the name and
        # password when the invited person chooses them.
        post = admin.add_tenant_user if path == "invite" else partial(admin.post, path)
        for change, said in cases:
            status, body, _ = await post({**base, **change})
            assert status == 422, (path, change)
            assert said in _errors(body), (path, change, _errors(body))
        # Exactly the minimum is enough; the same address again is taken.
        status, body, _ = await post(base)
        assert status == 302, (path, ERRORS.findall(body))
        status, body, _ = await post({**base, "email": base["email"].upper()})
        taken = "has already been taken" if path != "invite" else "already has an account"
        assert status == 422 and taken in _errors(body), _errors(body)
    status, body, _ = await admin.add_tenant_user({
        **good, "email": "x@valid.example", "role": "member",
        "tenant_id": "00000000-0000-4000-8000-000000000000"})
    assert status == 422 and "does not exist" in _errors(body)
    # Nothing refused was stored.

    with open_database(web_server.data_dir) as conn:
        for table in ("admin_users", "tenant_users"):
            emails = [r[0] for r in conn.execute(
                f"SELECT email FROM {table} WHERE email LIKE '%valid.example' OR email = ?",
                ("not-an-address",))]
            assert emails == ["val@valid.example"], (table, emails)

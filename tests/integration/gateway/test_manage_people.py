"""The management API's users and conversation routes (what the pages could do and the API
could not): admin users and tenant users, closing and reopening a conversation — each with its
bad input, its roles and its audit entry, through the real server."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api

from .checks import NIL, key, problem

PASSWORD = "a long enough password"


async def _token(api: Api, role: str) -> dict[str, str]:
    made = (await api.ok("POST", "/api/admin/tokens", 201, headers=api.admin,
                         json={"name": f"{role}-people", "role": role}))["data"]
    return {"authorization": f"Bearer {made['token']}"}


async def _audit(api: Api, resource_id: str) -> list[dict[str, Any]]:
    page = await api.ok("GET", f"/api/admin/audit?resource_id={resource_id}&limit=100",
                        headers=api.admin)
    return list(reversed(page["data"]))


async def test_admin_users_crud_roles_and_audit(api: Api) -> None:
    made = (await api.ok("POST", "/api/admin/users", 201, headers=api.admin, json={
        "email": " Ops@Example.COM ", "name": "Ops", "password": PASSWORD,
        "role": "viewer"}))["data"]
    assert made["email"] == "ops@example.com" and made["role"] == "viewer"
    assert made["status"] == "active" and "password" not in made and "password_hash" not in made
    listed = (await api.ok("GET", "/api/admin/users", headers=api.admin))["data"]
    assert [u["id"] for u in listed if u["email"] == "ops@example.com"] == [made["id"]]
    shown = (await api.ok("GET", f"/api/admin/users/{made['id']}", headers=api.admin))["data"]
    assert shown == made
    changed = (await api.ok("PATCH", f"/api/admin/users/{made['id']}", headers=api.admin,
                            json={"role": "admin", "status": "inactive"}))["data"]
    assert changed["role"] == "admin" and changed["status"] == "inactive"
    assert (await api.call("DELETE", f"/api/admin/users/{made['id']}", headers=api.admin))[0] == 204
    problem(await api.call("GET", f"/api/admin/users/{made['id']}", headers=api.admin), 404)
    entries = await _audit(api, made["id"])
    assert [e["action"] for e in entries] == ["create", "update", "delete"]
    assert entries[1]["changes"]["before"]["role"] == "viewer"
    assert entries[1]["changes"]["after"]["status"] == "inactive"
    assert all("password_hash" not in str(e["changes"]) for e in entries)


async def test_admin_users_bad_input(api: Api) -> None:
    # Field rules: every broken field named, nothing written.
    body = problem(await api.call("POST", "/api/admin/users", headers=api.admin, json={
        "email": "nope", "name": "", "password": "short", "role": "emperor"}), 422,
        code="validation_failed")
    assert set(body["errors"]) == {"email", "name", "password", "role"}
    problem(await api.call("POST", "/api/admin/users", headers=api.admin, json={"email": "x@y"}),
            422)  # missing fields
    problem(await api.call("POST", "/api/admin/users", headers=api.admin,
                           json={"email": "a@b.c", "name": "n", "password": PASSWORD,
                                 "shoe_size": 44}), 422)  # unknown field
    problem(await api.call("POST", "/api/admin/users", headers=api.admin, data=b"{not json"), 400)
    await api.ok("POST", "/api/admin/users", 201, headers=api.admin, json={
        "email": "twice@example.com", "name": "T", "password": PASSWORD})
    body = problem(await api.call("POST", "/api/admin/users", headers=api.admin, json={
        "email": "TWICE@example.com", "name": "T", "password": PASSWORD}), 422)
    assert body["errors"] == {"email": ["has already been taken"]}
    problem(await api.call("GET", "/api/admin/users/not-a-uuid", headers=api.admin), 400,
            code="invalid_uuid")
    for method in ("PATCH", "DELETE"):
        problem(await api.call(method, f"/api/admin/users/{NIL}", headers=api.admin,
                               json={"name": "x"}), 404)
    problem(await api.call("PATCH", f"/api/admin/users/{NIL}", headers=api.admin,
                           json={"status": "asleep"}), 422)
    problem(await api.call("GET", "/api/admin/users"), 401)


async def test_only_a_super_admin_changes_admin_users(api: Api) -> None:
    viewer, admin = await _token(api, "viewer"), await _token(api, "admin")
    await api.ok("GET", "/api/admin/users", headers=viewer)  # reading is any token's
    new = {"email": "someone@example.com", "name": "S", "password": PASSWORD}
    problem(await api.call("POST", "/api/admin/users", headers=viewer, json=new), 403,
            code="read_only")
    problem(await api.call("POST", "/api/admin/users", headers=admin, json=new), 403,
            code="forbidden_role")
    made = (await api.ok("POST", "/api/admin/users", 201, headers=api.admin, json=new))["data"]
    problem(await api.call("PATCH", f"/api/admin/users/{made['id']}", headers=admin,
                           json={"role": "super_admin"}), 403, code="forbidden_role")
    problem(await api.call("DELETE", f"/api/admin/users/{made['id']}", headers=admin), 403)


async def test_tenant_users_through_the_api(api: Api) -> None:
    t = await api.tenant("people-tenant")
    made = (await api.ok("POST", "/api/admin/tenant_users", 201, headers=api.admin, json={
        "tenant_id": t["id"], "email": "owner@people.example", "name": "Owner",
        "password": PASSWORD, "role": "owner"}))["data"]
    assert made["tenant_id"] == t["id"] and made["role"] == "owner"
    listed = (await api.ok("GET", f"/api/admin/tenant_users?tenant_id={t['id']}",
                           headers=api.admin))["data"]
    assert [u["id"] for u in listed] == [made["id"]]
    body = problem(await api.call("POST", "/api/admin/tenant_users", headers=api.admin, json={
        "tenant_id": NIL, "email": "x@y.z", "name": "X", "password": PASSWORD}), 422)
    assert body["errors"] == {"tenant_id": ["does not exist"]}
    problem(await api.call("POST", "/api/admin/tenant_users", headers=api.admin, json={
        "tenant_id": "zzz", "email": "x@y.z", "name": "X", "password": PASSWORD}), 400)
    problem(await api.call("GET", "/api/admin/tenant_users?tenant_id=zzz", headers=api.admin), 400)
    changed = (await api.ok("PATCH", f"/api/admin/tenant_users/{made['id']}", headers=api.admin,
                            json={"role": "viewer"}))["data"]
    assert changed["role"] == "viewer"
    problem(await api.call("PATCH", f"/api/admin/tenant_users/{made['id']}", headers=api.admin,
                           json={"role": "super_admin"}), 422)
    assert (await api.call("DELETE", f"/api/admin/tenant_users/{made['id']}",
                           headers=api.admin))[0] == 204
    problem(await api.call("DELETE", f"/api/admin/tenant_users/{made['id']}",
                           headers=api.admin), 404)
    assert [e["action"] for e in await _audit(api, made["id"])] == ["create", "update", "delete"]


async def test_close_and_reopen_a_conversation(api: Api) -> None:
    s = await api.setup("closing")
    conv = s["conversation"]["id"]
    closed = (await api.ok("POST", f"/api/admin/conversations/{conv}/close",
                           headers=api.admin))["data"]
    assert closed["id"] == conv and closed["status"] == "closed"
    # Closed: a new activity is refused with the original's 409.
    status, body, _ = await api.call("POST", f"/api/v1/conversations/{conv}/activities",
                                     headers=key(s["api_key"]), json={"text": "hi"})
    assert status == 409 and body["code"] == "conversation_closed"
    # Closing again changes nothing (and writes no second entry).
    again = (await api.ok("POST", f"/api/admin/conversations/{conv}/close",
                          headers=api.admin))["data"]
    assert again["status"] == "closed"
    reopened = (await api.ok("POST", f"/api/admin/conversations/{conv}/reopen",
                             headers=api.admin))["data"]
    assert reopened["status"] == "active"
    await api.post_activity(conv, s["api_key"], text="back again")
    entries = await _audit(api, conv)
    assert [e["action"] for e in entries] == ["close", "reopen"]
    assert entries[0]["changes"]["before"]["status"] == "active"
    assert entries[0]["changes"]["after"]["status"] == "closed"
    assert entries[0]["tenant_id"] == s["tenant"]["id"]


async def test_close_bad_input(api: Api) -> None:
    s = await api.setup("closing-bad")
    conv = s["conversation"]["id"]
    for action in ("close", "reopen"):
        problem(await api.call("POST", f"/api/admin/conversations/nope/{action}",
                               headers=api.admin), 400, code="invalid_uuid")
        problem(await api.call("POST", f"/api/admin/conversations/{NIL}/{action}",
                               headers=api.admin), 404)
        problem(await api.call("POST", f"/api/admin/conversations/{conv}/{action}"), 401)
        problem(await api.call("POST", f"/api/admin/conversations/{conv}/{action}",
                               headers=await _token(api, "viewer")), 403, code="read_only")
    conv_now = (await api.ok("GET", f"/api/v1/conversations/{conv}",
                             headers=key(s["api_key"])))["data"]
    assert conv_now["status"] == "active"  # none of the refused calls changed it

"""Roles, scopes and API tokens (issue 25), through the real server.

* ``test_api_matrix`` / ``test_page_matrix``: the permission matrix, generated from the route
  table (``gateway.auth.ROUTES``): every management route and admin page × the built-in roles
  and two custom roles (one scoped to tenant A) × a thing of tenant A (in scope) and of tenant B
  (out of scope) → the status the role's permissions and scope call for, with 404 (the answer
  for an id that does not exist) for things outside the scope, never 403.
* ``test_scoped_token``: a token limited to one channel rotates that channel's secret and gets
  404 on every other channel (and its tenant's other things); once expired it gets 401.
* the bad input: unknown permissions, locking out the last super admin, a token scope naming
  another tenant's channel, a role deleted while held: problem+json, nothing granted.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.auth import ROUTES, WHOLE
from gateway.domain import authz
from tests.integration.gateway.checks import problem
from tests.integration.web.conftest import Client
from tests.support.api import Api
from tests.support.server import Server

PASSWORD = "a long enough password"
AGENCY = ["tenants:read", "tenants:write", "channels:read", "channels:write",
          "conversations:read", "conversations:write", "deliveries:read", "deliveries:retry",
          "routing_rules:read", "routing_rules:write", "users:read", "users:write",
          "audit:read", "health:read", "analytics:read"]
AUDITOR = ["audit:read", "admins:read", "tokens:read", "roles:read"]
HOOK = {"url": "http://127.0.0.1:9/hook"}
PARAM = re.compile(r"\{(\w+)\}")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- the world: tenants A and B, each with its things; a token and a user per role ------------
async def _tenant(api: Api, name: str) -> dict[str, Any]:
    t = await api.tenant(name)
    ch = await api.channel(t["id"], name="web", type="webhook", mode="duplex", config=HOOK)
    ch2 = await api.channel(t["id"], name="web2", type="webhook", config=HOOK)
    conv = await api.conversation(await api.channel_token(ch["id"]))
    rule = (await api.ok("POST", "/api/admin/routing_rules", 201, headers=api.admin, json={
        "tenant_id": t["id"], "name": "r", "source_channel_id": ch["id"],
        "target_channel_ids": [ch2["id"]]}))["data"]
    user = (await api.ok("POST", "/api/admin/tenant_users", 201, headers=api.admin, json={
        "tenant_id": t["id"], "email": f"u@{name}.example", "name": "U", "password": PASSWORD,
        "role": "member"}))["data"]
    return {"tenant_id": t["id"], "channel_id": ch["id"], "channel2_id": ch2["id"],
            "conversation_id": conv["id"], "rule_id": rule["id"], "user_id": user["id"],
            "api_key": t["api_key"]}


@pytest.fixture(scope="module")
async def world(server: Server, session: Any) -> AsyncIterator[dict[str, Any]]:
    api = Api(session, server.url)
    tag = uuid.uuid4().hex[:6]
    a, b = await _tenant(api, f"rbac-a-{tag}"), await _tenant(api, f"rbac-b-{tag}")
    for t in (a, b):  # a delivery of each tenant (a webhook that fails: nothing listens)
        hook = await api.channel(t["tenant_id"], name="hook", type="webhook",
                                 config={"url": "http://127.0.0.1:9/hook"})
        conv = await api.conversation(await api.channel_token(hook["id"]))
        await api.post_activity(conv["id"], t["api_key"], text="hello")
        page = await api.ok("GET", f"/api/admin/deliveries?tenant_id={t['tenant_id']}",
                            headers=api.admin)
        t["delivery_id"] = page["data"][0]["id"]
    roles = {}
    for name, perms in ((f"agency-{tag}", AGENCY), (f"auditor-{tag}", AUDITOR)):
        roles[name] = (await api.ok("POST", "/api/admin/roles", 201, headers=api.admin,
                                    json={"name": name, "permissions": perms}))["data"]
    # (role, tenant scope): the built-in roles unscoped, the agency role scoped to A
    cases = {"super_admin": ("super_admin", None), "admin": ("admin", None),
             "viewer": ("viewer", None), "agency": (f"agency-{tag}", [a["tenant_id"]]),
             "auditor": (f"auditor-{tag}", None)}
    tokens, clients = {}, {}
    for case, (role, scope) in cases.items():
        made = (await api.ok("POST", "/api/admin/tokens", 201, headers=api.admin, json={
            "name": f"{case}-{tag}", "role": role, "tenant_scope": scope}))["data"]
        tokens[case] = bearer(made["token"])
        email = f"{case}-{tag}@rbac.example"
        await api.ok("POST", "/api/admin/users", 201, headers=api.admin, json={
            "email": email, "name": case, "password": PASSWORD, "role": role,
            "tenant_scope": scope})
        client = Client(server.url)
        assert await client.login(email, PASSWORD) == 302
        clients[case] = client
    # A tier (the gateway's, not a tenant's) whose edit page the page matrix opens.
    tier = (await api.ok("POST", "/api/admin/tiers", 201, headers=api.admin,
                         json={"name": f"rbac-{tag}"}))["data"]
    yield {"api": api, "A": a, "B": b, "cases": cases, "tokens": tokens, "clients": clients,
           "tag": tag, "server": server, "tier_id": tier["id"]}
    for client in clients.values():
        await client.close()


def permits(world: dict[str, Any], case: str, permission: str) -> bool:
    role, _ = world["cases"][case]
    if role in authz.BUILTIN:
        return permission == authz.SELF or permission in authz.BUILTIN[role]
    return permission == authz.SELF or permission in (AGENCY if role.startswith("agency")
                                                      else AUDITOR)


def scoped(world: dict[str, Any], case: str) -> bool:
    return world["cases"][case][1] is not None


def fill(path: str, ids: dict[str, str]) -> str:
    extra = {"token_id": str(uuid.uuid4()), "role_id": str(uuid.uuid4()),
             "tier_id": str(uuid.uuid4()), "action": "set_webhook"}
    return PARAM.sub(lambda m: {**extra, **ids}.get(m.group(1), str(uuid.uuid4())), path)


def random_ids() -> dict[str, str]:
    return {k: str(uuid.uuid4()) for k in ("tenant_id", "channel_id", "conversation_id",
                                           "rule_id", "user_id", "delivery_id")}


API_ROUTES = sorted(r for r in ROUTES if r[1].startswith("/api/admin"))
PAGE_ROUTES = sorted(r for r in ROUTES if r[1].startswith("/admin"))
CASES = ("super_admin", "admin", "viewer", "agency", "auditor")
# Bodies that fail validation after the permission and scope are checked (nothing changes).
INVALID = {"name": ""}


def _body(method: str, path: str, ids: dict[str, str]) -> Any:
    if method in ("GET", "DELETE"):
        return None
    if method == "POST" and path.endswith(("/tenants", "/channels", "/routing_rules",
                                           "/tenant_users")):
        return {"tenant_id": ids["tenant_id"], "name": ""}
    return INVALID


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("route", API_ROUTES, ids=" ".join)
async def test_api_matrix(route: tuple[str, str], case: str, world: dict[str, Any]) -> None:
    method, path = route
    permission = ROUTES[route]
    api, headers = world["api"], world["tokens"][case]
    ids_in, ids_out = world["A"], world["B"]
    if method == "DELETE" or path.endswith(("/rotate-key", "/rotate-secret", "/renew")):
        # Destructive: probed only where it is refused (the success of each is tested by the
        # route's own tests, and a scoped rotation by test_scoped_token).
        ids_in = random_ids()
        if not scoped(world, case):
            ids_out = random_ids()
    on_a = await api.call(method, fill(path, ids_in), headers=headers,
                          json=_body(method, path, ids_in))
    on_b = await api.call(method, fill(path, ids_out), headers=headers,
                          json=_body(method, path, ids_out))
    on_none = await api.call(method, fill(path, random_ids()), headers=headers,
                             json=_body(method, path, random_ids()))
    family = permission.split(":")[0]
    where = f"{case} {method} {path}"
    if not permits(world, case, permission):
        for got in (on_a, on_b, on_none):
            body = problem(got, 403)
            assert body["code"] in ("read_only", "forbidden_role"), where
        return
    if scoped(world, case) and (family in authz.GLOBAL_FAMILIES or route in WHOLE):
        for got in (on_a, on_b, on_none):
            assert problem(got, 403)["code"] == "out_of_scope", where
        return
    assert on_a[0] not in (401, 403), f"{where}: in scope refused {on_a[:2]}"
    if "{" in path or method == "POST" and "tenant_id" in str(_body(method, path, world["B"])):
        if scoped(world, case):  # B's thing answers as a thing that does not exist
            assert (on_b[0], _code(on_b)) == (on_none[0], _code(on_none)), \
                f"{where}: B's id {on_b[:2]}, a missing id {on_none[:2]}"
            assert on_b[0] >= 400, where
        else:
            assert on_b[0] not in (401, 403), f"{where}: {on_b[:2]}"
    if method == "GET" and "{" not in path and scoped(world, case):
        assert on_a[0] == 200, f"{where}: {on_a[:2]}"
        rows = on_a[1]["data"] if isinstance(on_a[1], dict) else []
        if isinstance(rows, list):
            tenants = {r.get("tenant_id", r.get("id")) for r in rows}
            assert tenants <= {world["A"]["tenant_id"]}, f"{where}: lists {tenants}"
        for thing in ("tenant_id", "channel_id", "conversation_id"):
            assert world["B"][thing] not in str(on_a[1]), f"{where}: shows B's {thing}"


def _code(got: tuple[int, Any, Any]) -> str | None:
    return got[1].get("code") if isinstance(got[1], dict) else None


@pytest.mark.parametrize("case", CASES)
async def test_page_matrix(case: str, world: dict[str, Any]) -> None:
    """Every admin page, as an admin user of each role: refused (403) without the permission,
    shown with it; a scoped user's page for B's thing answers as for a missing thing. (Only
    refusals are posted: a permitted form post would change the world.)"""
    client = world["clients"][case]
    for method, path in PAGE_ROUTES:
        permission = ROUTES[(method, path)]
        if path == "/admin/logout":
            continue
        allowed = permits(world, case, permission)
        page_ok = not scoped(world, case) or path.startswith(
            ("/admin/conversations", "/admin/deliveries", "/admin/routing_rules",
             "/admin/tenants", "/admin/channels", "/admin/tenant_users", "/admin/analytics",
             "/admin/account"))
        where = f"{case} {method} {path}"
        if method == "POST":
            if allowed and page_ok:
                continue
            status, body, _ = await client.post(fill(path, world["A"]), {"name": ""})
            assert status == 403 and body.startswith("Forbidden"), f"{where}: {status}"
            continue
        if path.endswith("/events"):
            continue  # an endless stream (test_health_live.py)
        status, body, _ = await client.get(fill(path, {**world["A"], "tier_id": world["tier_id"]}))
        if not (allowed and page_ok):
            assert status == 403, f"{where}: {status}"
            continue
        assert status == 200, f"{where}: {status}"
        if scoped(world, case):
            assert world["B"]["tenant_id"] not in body, f"{where}: shows B's tenant"
            if "{" in path:
                on_b = await client.get(fill(path, world["B"]))
                on_none = await client.get(fill(path, random_ids()))
                assert on_b[0] == on_none[0] != 200, f"{where}: B {on_b[0]}, none {on_none[0]}"


async def test_denials_are_audited(world: dict[str, Any]) -> None:
    api, a, b = world["api"], world["A"], world["B"]
    problem(await api.call("GET", f"/api/admin/channels/{b['channel_id']}",
                           headers=world["tokens"]["agency"]), 404)
    problem(await api.call("POST", "/api/admin/tenants", headers=world["tokens"]["viewer"],
                           json={"name": "x"}), 403)
    page = (await api.ok("GET", f"/api/admin/audit?action=deny&resource_id={b['channel_id']}",
                         headers=api.admin))["data"]
    assert {(e["resource_type"], e["changes"]["after"]["reason"]) for e in page} == {
        ("channels", "not_found")}
    page = (await api.ok("GET", "/api/admin/audit?action=deny&resource_type=tenants&limit=100",
                         headers=api.admin))["data"]
    assert any(e["changes"]["after"]["reason"] == "read_only" for e in page)
    # The agency token's own audit view holds only its tenant's entries.
    own = (await api.ok("GET", "/api/admin/audit?limit=100",
                        headers=world["tokens"]["agency"]))["data"]
    assert own and {e["tenant_id"] for e in own} == {a["tenant_id"]}


# -- the scoped token ------------------------------------------------------------------------
async def test_scoped_token(world: dict[str, Any]) -> None:
    api, a, b = world["api"], world["A"], world["B"]
    made = (await api.ok("POST", "/api/admin/tokens", 201, headers=api.admin, json={
        "name": "ci", "role": "admin", "tenant_scope": [a["tenant_id"]],
        "channel_scope": [a["channel2_id"]],
        "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}))["data"]
    ci = bearer(made["token"])
    rotated = (await api.ok("POST", f"/api/admin/channels/{a['channel2_id']}/rotate-secret",
                            headers=ci))["data"]
    assert rotated["id"] == a["channel2_id"] and rotated["secret"]
    missing = str(uuid.uuid4())
    for other in (a["channel_id"], b["channel_id"], b["channel2_id"]):
        for method, tail in (("POST", "/rotate-secret"), ("GET", ""), ("POST", "/token"),
                             ("PATCH", "")):
            got = await api.call(method, f"/api/admin/channels/{other}{tail}", headers=ci,
                                 json={"name": "x"} if method == "PATCH" else None)
            none = await api.call(method, f"/api/admin/channels/{missing}{tail}", headers=ci,
                                  json={"name": "x"} if method == "PATCH" else None)
            assert problem(got, 404) == problem(none, 404), (other, method, tail)
    listed = (await api.ok("GET", "/api/admin/channels", headers=ci))["data"]
    assert [c["id"] for c in listed] == [a["channel2_id"]]
    for path in (f"/api/admin/tenants/{a['tenant_id']}", f"/api/admin/routing_rules/{a['rule_id']}"):
        problem(await api.call("GET" if "tenants" in path else "PATCH", path, headers=ci,
                               json=None if "tenants" in path else {"name": "x"}), 404)
    assert (await api.ok("GET", "/api/admin/routing_rules", headers=ci))["data"] == []
    tokens = (await api.ok("GET", "/api/admin/tokens", headers=api.admin))["data"]
    row = next(t for t in tokens if t["id"] == made["id"])
    assert row["last_used_at"] and row["channel_scope"] == [a["channel2_id"]]


async def test_an_expired_token_gets_401(tmp_path: Path, session: Any) -> None:
    """On a server whose clock the test moves (CONVERGER_CLOCK_FILE): a token that expires in
    an hour works 59 minutes on, and gets 401 ``token_expired`` at 61 minutes."""
    clock = tmp_path / "clock"
    move(clock, 0)
    srv = Server(tmp_path / "data", env={"CONVERGER_CLOCK_FILE": str(clock)}).start()
    try:
        api = Api(session, srv.url)
        t = await api.tenant("expiry")
        ch = await api.channel(t["id"])
        made = (await api.ok("POST", "/api/admin/tokens", 201, headers=api.admin, json={
            "name": "ci", "role": "admin", "tenant_scope": [t["id"]], "channel_scope": [ch["id"]],
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}))["data"]
        ci = bearer(made["token"])
        move(clock, 59 * 60)
        await api.ok("POST", f"/api/admin/channels/{ch['id']}/rotate-secret", headers=ci)
        move(clock, 61 * 60)
        for method, path in (("POST", f"/api/admin/channels/{ch['id']}/rotate-secret"),
                             ("GET", "/api/admin/channels")):
            body = problem(await api.call(method, path, headers=ci), 401)
            assert body["code"] == "token_expired"
        problem(await api.call("POST", "/api/admin/tokens", headers=api.admin, json={
            "name": "late", "expires_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat()}),
            422)  # already past on the server's clock
    finally:
        srv.stop()


def move(clock: Path, seconds: float) -> None:
    tmp = clock.with_suffix(".tmp")
    tmp.write_text(str(seconds))
    os.replace(tmp, clock)  # a new inode: the server reads it on its next look


# -- bad input -------------------------------------------------------------------------------
async def test_bad_roles_and_scopes(world: dict[str, Any]) -> None:
    api, a, b, tag = world["api"], world["A"], world["B"], world["tag"]
    body = problem(await api.call("POST", "/api/admin/roles", headers=api.admin, json={
        "name": f"bad-{tag}", "permissions": ["channels:read", "channels:launch"]}), 422)
    assert "channels:launch" in body["detail"]
    problem(await api.call("POST", "/api/admin/roles", headers=api.admin, json={
        "name": "super_admin", "permissions": ["channels:read"]}), 422)
    problem(await api.call("POST", "/api/admin/roles", headers=api.admin, json={
        "name": f"x-{tag}", "permissions": "channels:read"}), 422)
    roles = (await api.ok("GET", "/api/admin/roles", headers=api.admin))["data"]
    assert not any(r["name"] == f"bad-{tag}" for r in roles)
    # a token scope naming another tenant's channel
    body = problem(await api.call("POST", "/api/admin/tokens", headers=api.admin, json={
        "name": "x", "role": "admin", "tenant_scope": [a["tenant_id"]],
        "channel_scope": [b["channel_id"]]}), 422)
    assert body["errors"]["channel_scope"]
    # nobody grants beyond themselves: the agency token cannot make a token or reach B
    problem(await api.call("POST", "/api/admin/tokens", headers=world["tokens"]["agency"],
                           json={"name": "x", "role": "super_admin"}), 403)
    body = problem(await api.call("POST", "/api/admin/tenant_users", headers=world["tokens"]["agency"],
                                  json={"tenant_id": b["tenant_id"], "email": "z@b.example",
                                        "name": "Z", "password": PASSWORD}), 422)
    assert body["errors"] == {"tenant_id": ["does not exist"]}
    # a role held cannot be deleted
    agency = next(r for r in roles if r["name"] == f"agency-{tag}")
    assert problem(await api.call("DELETE", f"/api/admin/roles/{agency['id']}",
                                  headers=api.admin), 409, "error")["code"] == "role_in_use"
    # an admin given a custom role gets exactly its permissions
    body = problem(await api.call("PATCH", f"/api/admin/roles/{agency['id']}", headers=api.admin,
                                  json={"permissions": ["nope:read"]}), 422)
    assert "nope:read" in body["detail"]


async def test_the_last_super_admin_stays(fresh_server: Server, session: Any) -> None:
    fresh_server.start()
    api = Api(session, fresh_server.url)
    me = (await api.ok("POST", "/api/admin/users", 201, headers=api.admin, json={
        "email": "only@example.com", "name": "Only", "password": PASSWORD,
        "role": "super_admin"}))["data"]
    for change in ({"role": "admin"}, {"status": "inactive"},
                   {"tenant_scope": [(await api.tenant("t"))["id"]]}):
        body = problem(await api.call("PATCH", f"/api/admin/users/{me['id']}", headers=api.admin,
                                      json=change), 409, "error")
        assert body["code"] == "last_super_admin", change
    problem(await api.call("DELETE", f"/api/admin/users/{me['id']}", headers=api.admin), 409,
            "error")
    shown = (await api.ok("GET", f"/api/admin/users/{me['id']}", headers=api.admin))["data"]
    assert shown["role"] == "super_admin" and shown["status"] == "active"
    other = (await api.ok("POST", "/api/admin/users", 201, headers=api.admin, json={
        "email": "second@example.com", "name": "Second", "password": PASSWORD,
        "role": "super_admin"}))["data"]
    await api.ok("PATCH", f"/api/admin/users/{me['id']}", headers=api.admin, json={"role": "viewer"})
    problem(await api.call("DELETE", f"/api/admin/users/{other['id']}", headers=api.admin), 409,
            "error")


async def test_filters_searches_and_exports_stay_in_scope(world: dict[str, Any]) -> None:
    """A scoped token's list filters, searches and exports naming another tenant answer as for
    a tenant that does not exist."""
    api, a, b = world["api"], world["A"], world["B"]
    agency = world["tokens"]["agency"]
    missing = str(uuid.uuid4())
    for path in ("/api/admin/channels", "/api/admin/conversations", "/api/admin/deliveries",
                 "/api/admin/audit", "/api/admin/routing_rules", "/api/admin/tenant_users",
                 "/api/admin/alerts", "/api/admin/analytics", "/api/admin/analytics/export.csv"):
        on_b = await api.call("GET", f"{path}?tenant_id={b['tenant_id']}", headers=agency)
        on_none = await api.call("GET", f"{path}?tenant_id={missing}", headers=agency)
        assert on_b[0] == on_none[0], (path, on_b[:2], on_none[:2])
        assert str(on_b[1]).replace(b["tenant_id"], "<id>") == \
            str(on_none[1]).replace(missing, "<id>"), path
        own = await api.call("GET", f"{path}?tenant_id={a['tenant_id']}", headers=agency)
        assert own[0] == 200, (path, own[:2])
    csv = await api.call("GET", "/api/admin/analytics/export.csv", headers=agency)
    assert csv[0] == 200 and b["channel_id"] not in str(csv[1])

"""SLA tiers' data model through the management API on the real server: the seeded tiers,
create/edit/delete, putting a tenant on a tier, and bad input (a tier without a name, limits
below zero, an unknown tier, a tier in use) as problem+json, never a 500."""

from __future__ import annotations

from tests.support.api import Api

from .checks import NIL, problem


async def test_tier_crud_and_tenant_tier(api: Api) -> None:
    h = api.admin
    seeded = (await api.ok("GET", "/api/admin/tiers", headers=h))["data"]
    assert {"free", "standard", "priority"} <= {t["name"] for t in seeded}
    gold = (await api.ok("POST", "/api/admin/tiers", 201, headers=h, json={
        "name": " gold ", "priority": 30, "activities_per_min": 12000, "deliveries_per_min": 900,
        "max_connections": 2000, "max_upload_bytes": 20_000_000, "retention_days": 60,
        "max_channels": 0}))["data"]
    assert gold["name"] == "gold" and gold["max_channels"] == 0 and gold["description"] == ""
    assert (await api.ok("GET", f"/api/admin/tiers/{gold['id']}", headers=h))["data"] == gold
    edited = (await api.ok("PATCH", f"/api/admin/tiers/{gold['id']}", headers=h,
                           json={"retention_days": None, "description": "more"}))["data"]
    assert edited["retention_days"] is None and edited["description"] == "more"
    assert edited["activities_per_min"] == 12000
    listed = [t["name"] for t in (await api.ok("GET", "/api/admin/tiers", headers=h))["data"]]
    assert listed.index("gold") < listed.index("priority") < listed.index("free")  # by priority

    t = await api.tenant("tiered")
    path = f"/api/admin/tenants/{t['id']}/tier"
    assert (await api.ok("GET", path, headers=h))["data"] == {"tenant_id": t["id"], "tier": None}
    on = (await api.ok("PUT", path, headers=h, json={"tier": "gold"}))["data"]
    assert on["tier"]["id"] == gold["id"]
    assert (await api.ok("GET", path, headers=h))["data"]["tier"]["name"] == "gold"
    # A tier a tenant is on cannot be deleted; off it, it can.
    problem(await api.call("DELETE", f"/api/admin/tiers/{gold['id']}", headers=h), 409, "error")
    assert (await api.ok("PUT", path, headers=h, json={"tier": None}))["data"]["tier"] is None
    await api.ok("DELETE", f"/api/admin/tiers/{gold['id']}", 204, headers=h)
    problem(await api.call("GET", f"/api/admin/tiers/{gold['id']}", headers=h), 404)
    audit = (await api.ok("GET", f"/api/admin/audit?tenant_id={t['id']}", headers=h))["data"]
    assert [e["action"] for e in audit if e["resource_id"] == t["id"]].count("set_tier") == 2


async def test_tier_bad_input(api: Api) -> None:
    h = api.admin
    for body, field in (({"priority": 1}, "name"), ({"name": "  "}, "name"),
                        ({"name": "neg", "activities_per_min": -1}, "activities_per_min"),
                        ({"name": "neg", "max_upload_bytes": -5}, "max_upload_bytes"),
                        ({"name": "neg", "retention_days": -1}, "retention_days"),
                        ({"name": "neg", "priority": -1}, "priority"),
                        ({"name": "free"}, "name")):
        body_out = problem(await api.call("POST", "/api/admin/tiers", headers=h, json=body), 422,
                           "errors", "validation_failed")
        assert field in body_out["errors"] or field in body_out["detail"], (body, body_out)
    for body in ({"name": "x", "max_channels": "ten"}, {"name": "x", "bogus": 1}, {"name": 5}):
        problem(await api.call("POST", "/api/admin/tiers", headers=h, json=body), 422)
    problem(await api.call("POST", "/api/admin/tiers", headers=h, data=b"{nope",), 400)
    free = next(t for t in (await api.ok("GET", "/api/admin/tiers", headers=h))["data"]
                if t["name"] == "free")
    problem(await api.call("PATCH", f"/api/admin/tiers/{free['id']}", headers=h,
                           json={"deliveries_per_min": -3}), 422, "errors", "validation_failed")
    problem(await api.call("PATCH", f"/api/admin/tiers/{free['id']}", headers=h,
                           json={"name": "standard"}), 422, "errors", "validation_failed")
    problem(await api.call("PATCH", f"/api/admin/tiers/{NIL}", headers=h, json={}), 404)
    problem(await api.call("GET", "/api/admin/tiers/not-a-uuid", headers=h), 400)
    t = await api.tenant("tier-bad")
    body = problem(await api.call("PUT", f"/api/admin/tenants/{t['id']}/tier", headers=h,
                                  json={"tier": "platinum"}), 422, "errors", "validation_failed")
    assert body["errors"] == {"tier": ["does not exist"]}
    problem(await api.call("PUT", f"/api/admin/tenants/{t['id']}/tier", headers=h, json={}), 422)
    problem(await api.call("PUT", f"/api/admin/tenants/{NIL}/tier", headers=h,
                           json={"tier": "free"}), 404)
    problem(await api.call("GET", f"/api/admin/tenants/{NIL}/tier", headers=h), 404)
    # Without the admin token: refused.
    problem(await api.call("GET", "/api/admin/tiers"), 401)
    problem(await api.call("POST", "/api/admin/tiers", json={"name": "x"}), 401)

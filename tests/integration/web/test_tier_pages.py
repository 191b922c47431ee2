"""SLA tiers in the pages (docs/admin.md#sla-tiers), over HTTP on the real server: an admin puts a
tenant on a tier from /admin/tiers (the management API then reports it); the tenant's portal
user sees the tier, its usage against the limits and the delivery figures on /portal/tier, and
nothing of another tenant's."""

from __future__ import annotations

from tests.integration.web.conftest import Client
from tests.support.api import Api
from tests.support.server import Server


async def test_admin_sets_a_tier_and_the_portal_shows_it(admin: Client, web_api: Api,
                                                         web_server: Server) -> None:
    a = await web_api.setup("tier-page-a")
    b = await web_api.setup("tier-page-b")
    await web_api.post_activity(a["conversation"]["id"], a["api_key"], text="hello")
    status, page, _ = await admin.get("/admin/tiers")
    assert status == 200 and 'data-tier="priority"' in page and "tier-page-a" in page
    status, _, headers = await admin.post("/admin/tiers/assign", {
        "tenant_id": a["tenant"]["id"], "tier": "standard"})
    assert status == 302 and headers["location"].endswith("/admin/tiers")
    got = await web_api.ok("GET", f"/api/admin/tenants/{a['tenant']['id']}/tier",
                           headers=web_api.admin)
    assert got["data"]["tier"]["name"] == "standard"
    _, page, _ = await admin.get("/admin/tiers")
    assert "Tenant moved to standard" in page
    # An unknown tier or tenant: a message, nothing changes.
    await admin.post("/admin/tiers/assign", {"tenant_id": a["tenant"]["id"], "tier": "gold-x"})
    _, page, _ = await admin.get("/admin/tiers")
    assert "No such tier" in page

    status, _, _ = await admin.add_tenant_user({
        "tenant_id": a["tenant"]["id"], "name": "Owner", "email": "owner@tier-a.example",
        "password": "tier page password", "role": "owner"})
    assert status == 302
    portal = Client(web_server.url)
    try:
        assert await portal.login("owner@tier-a.example", "tier page password", "portal",
                                  tenant="tier-page-a") == 302
        status, page, _ = await portal.get("/portal/tier")
        assert status == 200
        assert "<span data-tier-name>standard</span>" in page
        assert '<tr data-limit="max_channels"><td>Channels</td><td>20</td><td>1</td>' in page
        assert "1 this minute" in page or "busiest minute of the last hour: 1" in page
        assert 'data-sla="30d"' in page
        # The standard tier's targets (m0021), met: no delivery failed.
        assert 'data-target="success_rate">met' in page and "≥ 95.00 %" in page
        assert b["tenant"]["id"] not in page and "tier-page-b" not in page
        # The admin's tier pages are not the portal's.
        status, _, _ = await portal.get("/admin/tiers")
        assert status in (302, 403)
    finally:
        await portal.close()
    await admin.post("/admin/tiers/assign", {"tenant_id": a["tenant"]["id"], "tier": ""})
    got = await web_api.ok("GET", f"/api/admin/tenants/{a['tenant']['id']}/tier",
                           headers=web_api.admin)
    assert got["data"]["tier"] is None

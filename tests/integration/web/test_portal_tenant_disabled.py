"""The portal of a disabled tenant: its signed-in users are out at their next request, and
cannot sign in again until the tenant is enabled (a disabled tenant stops everywhere)."""

from __future__ import annotations

from tests.support.api import Api
from tests.support.server import Server

from .conftest import Client

PASSWORD = "portal pass 1"


async def test_a_disabled_tenants_portal_is_closed(admin: Client, web_api: Api,
                                                   web_server: Server) -> None:
    t = await web_api.tenant("Paused Co")
    status, body, _ = await admin.add_tenant_user({
        "tenant_id": t["id"], "name": "U", "email": "u@paused.example", "password": PASSWORD,
        "role": "owner"})
    assert status == 302, body
    user = Client(web_server.url)
    try:
        assert await user.login("u@paused.example", PASSWORD, "portal", tenant=t["slug"]) == 302
        assert (await user.get("/portal"))[0] == 200
        await web_api.ok("PATCH", f"/api/admin/tenants/{t['id']}", headers=web_api.admin,
                         json={"status": "inactive"})
        status, _, headers = await user.get("/portal")
        assert status == 302 and headers["location"].endswith("/portal/login")
        assert await user.login("u@paused.example", PASSWORD, "portal", tenant=t["slug"]) != 302
        await web_api.ok("PATCH", f"/api/admin/tenants/{t['id']}", headers=web_api.admin,
                         json={"status": "active"})
        assert await user.login("u@paused.example", PASSWORD, "portal", tenant=t["slug"]) == 302
        assert (await user.get("/portal"))[0] == 200
    finally:
        await user.close()

"""Editing SLA tiers from /admin/tiers in a real headless Chromium against the real server
(docs/admin.md#sla-tiers): a tier without a name or with a limit below zero is refused with the
errors shown by their fields (nothing made); a tier is created, a tenant put on it, edited
(name and limits) and the tenant's portal Plan page shows each change; a tier with tenants on it
is not deleted, an unused one is."""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.web.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Client,
    needs_chromium,
    signed_in,
)
from tests.support.api import Api
from tests.support.server import Server

pytestmark = needs_chromium


async def test_create_edit_and_delete_a_tier_and_the_portal_follows(
        browser: Any, admin: Client, web_api: Api, web_server: Server) -> None:
    from playwright.async_api import expect

    suffix = uuid.uuid4().hex[:6]
    tenant_name, email, password = f"tier-edit-{suffix}", f"owner@tier-{suffix}.example", "tier edit pw 1"
    w = await web_api.setup(tenant_name)
    assert (await admin.add_tenant_user({
        "tenant_id": w["tenant"]["id"], "name": "Owner", "email": email, "password": password,
        "role": "owner"}))[0] == 302
    base = web_server.url
    page = await signed_in(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
    portal = await signed_in(browser, base, email, password, area="portal", tenant=tenant_name)
    try:
        await page.goto(base + "/admin/tiers")
        new = page.locator("#tier-form")
        # No name, a limit below zero, a limit that is no number: each error by its field.
        await new.locator("input[name=activities_per_min]").fill("-1")
        await new.locator("input[name=max_channels]").fill("many")
        await new.get_by_role("button", name="Create tier").click()
        new = page.locator("#tier-form")
        await expect(new.locator("label", has=page.locator("input[name=name]"))).to_contain_text(
            "can't be blank")
        await expect(new.locator("label", has=page.locator("input[name=activities_per_min]"))
                     ).to_contain_text("must be greater than or equal to 0")
        await expect(new.locator("label", has=page.locator("input[name=max_channels]"))
                     ).to_contain_text("must be a whole number")
        await expect(new.locator("input[name=activities_per_min]")).to_have_value("-1")

        name = f"gold-{suffix}"
        await new.locator("input[name=name]").fill(name)
        await new.locator("input[name=priority]").fill("500")
        await new.locator("input[name=activities_per_min]").fill("120")
        await new.locator("input[name=max_channels]").fill("7")
        await new.locator("input[name=target_success_rate]").fill("0.98")
        await new.get_by_role("button", name="Create tier").click()
        row = page.locator(f"#tiers tr[data-tier='{name}']")
        await expect(row).to_contain_text("120")
        await expect(row).to_contain_text("success ≥ 98.00 %")
        tier = next(t for t in (await web_api.ok("GET", "/api/admin/tiers",
                                                 headers=web_api.admin))["data"]
                    if t["name"] == name)
        assert (tier["priority"], tier["max_channels"], tier["retention_days"]) == (500, 7, None)

        # The tenant onto it; its Plan page shows the tier and its limits.
        assign = page.locator("#tier-assign")
        await assign.locator("select[name=tenant_id]").select_option(label=tenant_name)
        await assign.locator("select[name=tier]").select_option(name)
        await assign.get_by_role("button", name="Set tier").click()
        await expect(page.locator(f"#tenant-tiers tr[data-tenant='{tenant_name}']")
                     ).to_contain_text(name)
        await portal.goto(base + "/portal/tier")
        await expect(portal.locator("[data-tier-name]")).to_have_text(name)
        await expect(portal.locator("tr[data-limit=max_channels]")).to_contain_text("7")
        await expect(portal.locator("tr[data-limit=activities_per_min]")).to_contain_text("120")

        # Edit: a bad value is refused by its field and changes nothing; then name and limits.
        await page.locator(f"a[data-edit-tier='{name}']").click()
        edit = page.locator("#tier-edit")
        await expect(edit.locator("input[name=max_channels]")).to_have_value("7")
        await edit.locator("input[name=max_channels]").fill("-5")
        await edit.get_by_role("button", name="Save tier").click()
        edit = page.locator("#tier-edit")
        await expect(edit.locator("label", has=page.locator("input[name=max_channels]"))
                     ).to_contain_text("must be greater than or equal to 0")
        await portal.reload()
        await expect(portal.locator("tr[data-limit=max_channels]")).to_contain_text("7")
        renamed = f"platinum-{suffix}"
        await edit.locator("input[name=name]").fill(renamed)
        await edit.locator("input[name=max_channels]").fill("9")
        await edit.locator("input[name=activities_per_min]").fill("")  # the gateway default
        await edit.get_by_role("button", name="Save tier").click()
        await expect(page.locator("main .flash")).to_contain_text(
            f"Tier {renamed} saved")
        await portal.reload()
        await expect(portal.locator("[data-tier-name]")).to_have_text(renamed)
        await expect(portal.locator("tr[data-limit=max_channels]")).to_contain_text("9")
        await expect(portal.locator("tr[data-limit=activities_per_min]")).to_contain_text(
            "gateway default")

        # Delete: not while the tenant is on it; once it is moved off, gone.
        await page.goto(base + f"/admin/tiers/{tier['id']}")
        await page.locator("#tier-delete").get_by_role("button", name="Delete tier").click()
        await expect(page.locator("main .flash")).to_contain_text("Tier not deleted")
        await page.goto(base + "/admin/tiers")
        assign = page.locator("#tier-assign")
        await assign.locator("select[name=tenant_id]").select_option(label=tenant_name)
        await assign.locator("select[name=tier]").select_option("")
        await assign.get_by_role("button", name="Set tier").click()
        await expect(page.locator(f"#tenant-tiers tr[data-tenant='{tenant_name}']")
                     ).to_contain_text("—")
        await page.goto(base + f"/admin/tiers/{tier['id']}")
        await page.locator("#tier-delete").get_by_role("button", name="Delete tier").click()
        await expect(page.locator("main .flash")).to_contain_text("Tier deleted")
        await expect(page.locator(f"#tiers tr[data-tier='{renamed}']")).to_have_count(0)
        await portal.reload()
        await expect(portal.locator("[data-tier-name]")).to_have_text("none")
    finally:
        await page.context.close()
        await portal.context.close()


async def test_tier_forms_need_the_csrf_token(admin: Client, web_server: Server) -> None:
    """The tier forms are CSRF-protected as the others: a post without the session's token is
    refused and makes nothing."""
    status, _, _ = await admin.post("/admin/tiers", {"name": "no-csrf-tier", "_csrf": "forged"},
                                    csrf=False)
    assert status == 403
    _, page, _ = await admin.get("/admin/tiers")
    assert "no-csrf-tier" not in page

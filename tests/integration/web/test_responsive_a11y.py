"""Every admin and portal page in a real headless Chromium, at 1360×900 and on a phone
(390×844): no horizontal page scroll, the menu and "Log out" reachable, and axe-core (the npm
package tests/setup.sh installs into tests/e2e/node, injected into the page) finding no serious
or critical violation (issue 23)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.web.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    DESKTOP,
    PHONE,
    Client,
    invite_in_browser,
    needs_chromium,
    signed_in,
)
from tests.support.api import Api
from tests.support.postgres import store_independent
from tests.support.server import ROOT, Server

AXE = ROOT / "tests" / "e2e" / "node" / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = [
    needs_chromium,
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (tests/setup.sh)"),
]


async def _signed_in(browser: Any, base: str, viewport: dict[str, int], email: str,
                     password: str, area: str = "admin", tenant: str | None = None) -> Any:
    # axe is injected by the test: the pages' own CSP allows only their scripts.
    return await signed_in(browser, base, email, password, area, tenant, viewport=viewport,
                           bypass_csp=True)


async def _axe(page: Any) -> list[str]:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))""")
    return list(result)


async def _world(web_api: Api, admin: Any, base: str) -> dict[str, Any]:
    """A tenant with a channel, a conversation with a message and its delivery, a portal user."""
    s = await web_api.setup("a11y-co", type="webhook", mode="duplex",
                            config={"url": "http://127.0.0.1:9/hook"})
    act = await web_api.post_activity(s["conversation"]["id"], s["api_key"], text="hello there",
                                      sender="15550009", metadata={"profile_name": "Alan Turing"})
    await invite_in_browser(admin.context.browser, admin, base, tenant="a11y-co",
                            email="ada@a11y.example", role="owner", name="Ada",
                            password="ada a11y password")
    # A pending invitation, so the pages show their invitations tables too.
    await admin.locator("#tenant-user-form select[name=tenant_id]").select_option(label="a11y-co")
    await admin.locator("#tenant-user-form input[name=email]").fill("later@a11y.example")
    await admin.locator("#tenant-user-form button[type=submit]").click()
    deliveries = await web_api.ok("GET", f"/api/admin/deliveries?activity_id={act['id']}",
                                  headers=web_api.admin)
    return {**s, "delivery_id": deliveries["data"][0]["id"]}


def _pages(w: dict[str, Any]) -> dict[str, list[str]]:
    conv, cid, did = w["conversation"]["id"], w["channel"]["id"], w["delivery_id"]
    return {
        "admin": ["/admin", "/admin/tenants", "/admin/channels", f"/admin/channels/{cid}",
                  "/admin/conversations", f"/admin/conversations/{conv}", "/admin/deliveries",
                  f"/admin/deliveries/{did}", "/admin/routing_rules", "/admin/audit_logs",
                  "/admin/users", "/admin/tenant_users", "/admin/tokens", "/admin/account",
                  "/admin/tiers", "/admin/analytics"],
        "portal": ["/portal", "/portal/channels", f"/portal/channels/{cid}", "/portal/conversations",
                   f"/portal/conversations/{conv}", "/portal/deliveries",
                   f"/portal/deliveries/{did}", "/portal/routing_rules", "/portal/users",
                   "/portal/analytics", "/portal/tier"],
    }


async def _check(page: Any, base: str, path: str, phone: bool) -> list[str]:
    from playwright.async_api import expect

    problems = []
    response = await page.goto(base + path)
    assert response is not None and response.status == 200, (path, response)
    wide = await page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    if wide[0] > wide[1]:
        problems.append(f"{path}: page scrolls sideways ({wide[0]} > {wide[1]} px)")
    if phone:  # the menu collapses behind a button; opened, it reaches every page and Log out
        toggle = page.locator("button.menu-toggle")
        await expect(toggle).to_be_visible()
        await expect(page.locator(".side nav")).to_be_hidden()
        await toggle.click()
        await expect(page.locator(".side nav")).to_be_visible()
        await expect(page.get_by_role("button", name="Log out")).to_be_visible()
        await toggle.click()
    else:
        await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    await expect(page.locator("a.skip-link")).to_have_count(1)
    await expect(page.locator(".side [aria-current=page]")).to_have_count(1)
    problems += [f"{path}: {v}" for v in await _axe(page)]
    return problems


# On PostgreSQL (make test-postgres) the desktop run still loads every page from the store; the
# phone run adds only layout, which does not depend on the store.
PHONE_LAYOUT = pytest.param("phone", marks=store_independent(
    "the same pages' layout on a phone; the desktop case loads every page from PostgreSQL"))


@pytest.mark.parametrize("viewport", ["desktop", PHONE_LAYOUT])
async def test_every_page_fits_and_passes_axe(
    browser: Any, web_server: Server, web_api: Api, viewport: str
) -> None:
    base = web_server.url
    size = PHONE if viewport == "phone" else DESKTOP
    admin = await _signed_in(browser, base, size, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        w = _WORLD.get("w") or await _world(web_api, admin, base)
        _WORLD["w"] = w
        problems = []
        for path in _pages(w)["admin"]:
            problems += await _check(admin, base, path, viewport == "phone")
        portal = await _signed_in(browser, base, size, "ada@a11y.example", "ada a11y password",
                                  "portal", "a11y-co")
        try:
            for path in _pages(w)["portal"]:
                problems += await _check(portal, base, path, viewport == "phone")
        finally:
            await portal.context.close()
    finally:
        await admin.context.close()
    assert not problems, "\n".join(problems)


_WORLD: dict[str, Any] = {}


@pytest.mark.parametrize("viewport", ["desktop", PHONE_LAYOUT])
async def test_signed_out_pages_fit_and_pass_axe(
    browser: Any, web_server: Server, admin: Client, web_api: Api, viewport: str
) -> None:
    """The sign-in pages and an invitation link's page (valid, and used up)."""
    tenant = await web_api.tenant(f"a11y-invite-{viewport}")
    status, body, _ = await admin.post("/admin/tenant_users/invites", {
        "tenant_id": tenant["id"], "email": f"new-{viewport}@a11y.example", "role": "member"})
    assert status == 201
    link = re.search(r'id="once-value">([^<]+)<', body).group(1)  # type: ignore[union-attr]
    path = "/portal/invite/" + link.rsplit("/portal/invite/", 1)[1]
    context = await browser.new_context(viewport=PHONE if viewport == "phone" else DESKTOP,
                                        bypass_csp=True)
    context.set_default_timeout(8000)
    problems = []
    try:
        page = await context.new_page()
        for url, code in (("/admin/login", 200), ("/portal/login", 200), (path, 200),
                          ("/portal/invite/used-or-unknown", 404)):
            response = await page.goto(web_server.url + url)
            assert response is not None and response.status == code, (url, response)
            wide = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if wide[0] > wide[1]:
                problems.append(f"{url}: page scrolls sideways ({wide[0]} > {wide[1]} px)")
            problems += [f"{url}: {v}" for v in await _axe(page)]
    finally:
        await context.close()
    assert not problems, "\n".join(problems)

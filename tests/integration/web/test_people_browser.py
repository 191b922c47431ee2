"""People and tenant settings as a user does them, in a real headless Chromium against the real
server (issue 23): a super admin resets another admin's password from the row's Actions menu;
that admin signs in with it and changes it on Your account (a mismatch refused beside its
input); a tenant's alert webhook URL is saved with its own labelled input and Save button."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from tests.integration.web.conftest import needs_chromium, signed_in
from tests.support.api import Api
from tests.support.server import Server

pytestmark = needs_chromium


async def test_reset_then_change_a_password(
    browser: Any, admin_page: Any, web_server: Server
) -> None:
    from playwright.async_api import expect

    page, base = admin_page, web_server.url
    await page.goto(base + "/admin/users")
    form = page.locator("#admin-user-form")
    await form.locator("input[name=name]").fill("Pat")
    await form.locator("input[name=email]").fill("pat@people.example")
    await form.locator("input[name=password]").fill("first password 1")
    await form.locator("select[name=role]").select_option("admin")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash").first).to_contain_text("Admin user created")
    # The reset is behind the row's Actions menu, named after the row.
    row = page.locator("tr", has_text="pat@people.example")
    await row.locator("summary[aria-label='Actions for pat@people.example']").click()
    await row.get_by_label("New password for pat@people.example").fill("reset password 22")
    await row.get_by_role("button", name="Reset password of pat@people.example").click()
    await expect(page.locator(".flash").first).to_contain_text("Password reset")

    pat = await signed_in(browser, base, "PAT@people.example", "reset password 22")
    try:
        await pat.get_by_role("link", name="Your account").click()
        await expect(pat.locator(".side [aria-current=page]")).to_have_text("Your account")
        change = pat.locator("#password-form")
        await change.locator("input[name=current_password]").fill("reset password 22")
        await change.locator("input[name=new_password]").fill("my own password 333")
        await change.locator("input[name=confirm_password]").fill("my own password 334")
        await change.locator("button[type=submit]").click()
        await expect(change).to_contain_text("does not match the new password")
        await change.locator("input[name=current_password]").fill("reset password 22")
        await change.locator("input[name=new_password]").fill("my own password 333")
        await change.locator("input[name=confirm_password]").fill("my own password 333")
        await change.locator("button[type=submit]").click()
        await expect(pat.locator(".flash").first).to_contain_text("Password changed")
    finally:
        await pat.context.close()
    again = await signed_in(browser, base, "pat@people.example", "my own password 333")
    await again.context.close()


async def test_alert_webhook_url_has_a_label_and_a_save_button(
    admin_page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    page, base = admin_page, web_server.url
    tenant = await web_api.tenant("alerting-co")
    await page.goto(base + "/admin/tenants")
    row = page.locator("tr[data-tenant='alerting-co']")
    await row.get_by_label("Alert webhook URL of alerting-co", exact=True).fill("https://ops.example/alerts")
    await row.get_by_role("button", name="Save the alert webhook URL of alerting-co").click()
    await expect(page.locator(".flash").first).to_contain_text("Alert webhook updated")
    stored = await web_api.ok("GET", f"/api/admin/tenants/{tenant['id']}", headers=web_api.admin)
    assert stored["data"]["alert_webhook_url"] == "https://ops.example/alerts"


async def test_first_run_setup_link_is_a_line_of_its_own(
    browser: Any, tmp_path: Path
) -> None:
    """With no admin yet, the server prints the setup link on a line of its own, set apart from
    the JSON log lines; opened in the browser, it makes the first super admin."""
    from playwright.async_api import expect

    with Server(tmp_path) as srv:
        deadline = time.monotonic() + 15
        while "/admin/setup/" not in srv.log():
            assert time.monotonic() < deadline, srv.log()
            await asyncio.sleep(0.05)
        lines = srv.log().splitlines()
        at = next(i for i, line in enumerate(lines) if "/admin/setup/" in line)
        link = lines[at].strip()
        assert re.fullmatch(rf"{re.escape(srv.url)}/admin/setup/[\w-]+", link), lines[at]
        assert lines[at - 1].strip() == "" and lines[at + 1].strip() == ""
        assert any("No admin user yet" in line for line in lines[at - 3:at])
        assert lines[at - 3].startswith("=" * 20) and lines[at + 2].startswith("=" * 20)
        context = await browser.new_context()
        context.set_default_timeout(8000)
        try:
            page = await context.new_page()
            await page.goto(link)
            await page.fill("input[name=name]", "First")
            await page.fill("input[name=email]", "First@Setup.example")
            await page.fill("input[name=password]", "first admin password")
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{srv.url}/admin")
            await expect(page.locator(".flash").first).to_contain_text("first super admin")
        finally:
            await context.close()

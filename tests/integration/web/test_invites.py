"""Tenant users invited by link, in a real headless Chromium against the real server (issue
23): the admin makes an invitation and sees its link once; the invited person chooses their
name and password (a mismatch refused beside its input), is signed in, later signs in with
their e-mail in any case; the link is dead after use; an owner invites from the portal and
revokes a pending invitation. Expiry is tested with an injected clock in
tests/unit/domain/test_invites.py."""

from __future__ import annotations

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


async def test_invite_accept_and_sign_in_in_any_case(
    browser: Any, admin_page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    page, base = admin_page, web_server.url
    await web_api.tenant("invite-co")
    await page.goto(base + "/admin/tenant_users")
    form = page.locator("#tenant-user-form")
    await expect(form.locator("input[name=password]")).to_have_count(0)  # no admin-set ones
    await form.locator("select[name=tenant_id]").select_option(label="invite-co")
    await form.locator("input[name=email]").fill("Ines@Example.COM")
    await form.locator("select[name=role]").select_option("owner")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#shown-once")).to_contain_text("invitation link for ines@example.com")
    link = (await page.locator("#once-value").text_content() or "").strip()
    assert link.startswith(f"{base}/portal/invite/")
    await expect(page.locator("#invites tr[data-invite='ines@example.com']")).to_have_count(1)
    await page.goto(base + "/admin/tenant_users")  # shown once: not on the page again
    assert link not in await page.content()

    context = await browser.new_context()
    context.set_default_timeout(8000)
    try:
        invited = await context.new_page()
        await invited.goto(link)
        await expect(invited.locator("h1")).to_have_text("Join invite-co")
        await expect(invited.locator("#invite-email")).to_have_text("ines@example.com")
        accept = invited.locator("#invite-form")
        await accept.locator("input[name=name]").fill("Inès")
        await accept.locator("input[name=password]").fill("ines chosen pw")
        await accept.locator("input[name=confirm_password]").fill("ines chosen pX")
        await accept.locator("button[type=submit]").click()
        await expect(accept).to_contain_text("does not match the password")
        await expect(accept.locator("input[name=name]")).to_have_value("Inès")
        await accept.locator("input[name=password]").fill("ines chosen pw")
        await accept.locator("input[name=confirm_password]").fill("ines chosen pw")
        await accept.locator("button[type=submit]").click()
        await invited.wait_for_url(f"{base}/portal")
        await expect(invited.locator(".flash").first).to_contain_text("Welcome, Inès")
        await invited.get_by_role("button", name="Log out").click()
        await invited.wait_for_url(f"{base}/portal/login")
        # Used: the link is dead.
        response = await invited.goto(link)
        assert response is not None and response.status == 404
        await expect(invited.locator("#invite-dead")).to_contain_text("expired or has been used")
    finally:
        await context.close()

    # The e-mail in any case signs in (tenant by its slug).
    owner = await signed_in(browser, base, "INES@example.com", "ines chosen pw", "portal",
                            "invite-co")
    try:
        await expect(owner.locator(".side .who")).to_contain_text("ines@example.com")
        # The owner invites a member from the portal; the link is shown once; revoked, it dies.
        await owner.goto(base + "/portal/users")
        invite = owner.locator("#portal-user-form")
        await invite.locator("input[name=email]").fill("max@example.com")
        await invite.locator("select[name=role]").select_option("member")
        await invite.locator("button[type=submit]").click()
        await expect(owner.locator("#shown-once")).to_contain_text("invitation link for max@")
        member_link = (await owner.locator("#once-value").text_content() or "").strip()
        roles = await invite.locator("select[name=role] option").all_text_contents()
        assert "owner" not in roles
        await owner.get_by_role("button", name="Revoke the invitation of max@example.com").click()
        await expect(owner.locator(".flash").first).to_contain_text("Invitation revoked")
        await expect(owner.locator("#invites")).to_have_count(0)
    finally:
        await owner.context.close()
    anon = Client(base)
    try:
        status, body, _ = await anon.get(member_link.replace(base, ""))
        assert status == 404 and "expired or has been used" in body
        status, _, _ = await anon.get("/portal/invite/not-a-real-token")
        assert status == 404
    finally:
        await anon.close()
    # The admin's sign-in takes any case too.
    admin = Client(base)
    try:
        assert await admin.login(ADMIN_EMAIL.upper(), ADMIN_PASSWORD) == 302
    finally:
        await admin.close()

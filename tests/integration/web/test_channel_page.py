"""The channel form and the channel page in a real headless Chromium against the real server
(issue 23): a WhatsApp Meta channel made from the form takes Meta's signed messages without the
mode being touched; a channel's config is edited keeping its id and inbound URL; the "Connect to
provider" panel shows the callback URL, the verify token and the last refusal."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from adapters.whatsapp_meta import sign
from tests.integration.web.conftest import needs_chromium
from tests.integration.whatsapp.standins import meta_text_notification
from tests.support.api import Api
from tests.support.server import Server

PNID = "106540352299001"
APP_SECRET = "meta-app-secret-form"

pytestmark = needs_chromium


async def _meta_inbound(api: Api, channel_id: str, phone: str, text: str) -> tuple[int, Any]:
    raw = json.dumps(meta_text_notification(phone, text, phone_number_id=PNID)).encode()
    status, body, _ = await api.call(
        "POST", f"/api/v1/channels/{channel_id}/inbound", data=raw,
        headers={"content-type": "application/json",
                 "x-hub-signature-256": sign(APP_SECRET, raw)})
    return status, body


async def _verify(api: Api, channel_id: str, token: str, challenge: str) -> tuple[int, Any]:
    """Meta's console checking the callback URL (``GET …/inbound?hub.*``)."""
    query = urlencode({"hub.mode": "subscribe", "hub.verify_token": token,
                       "hub.challenge": challenge})
    status, body, _ = await api.call("GET", f"/api/v1/channels/{channel_id}/inbound?{query}")
    return status, body


async def _create_meta_from_form(page: Any, base: str, tenant: str, name: str) -> str:
    from playwright.async_api import expect

    await page.goto(base + "/admin/channels")
    form = page.locator("#channel-form")
    await form.locator("select[name=tenant_id]").select_option(label=tenant)
    await form.locator("input[name=name]").fill(name)
    # The trap of the original form: a mode chosen for another type stayed selected.
    await form.locator("select[name=type]").select_option("webhook")
    await form.locator("select[name=mode]").select_option("outbound")
    await expect(form.locator("[data-mode-warning]")).to_be_visible()
    await form.locator("select[name=type]").select_option("whatsapp_meta")
    await expect(form.locator("select[name=mode]")).to_have_value("duplex")
    await expect(form.locator("[data-mode-warning]")).to_be_hidden()
    for key, value in {"phone_number_id": PNID, "access_token": "meta-form-access",
                       "verify_token": "vt-from-the-form", "app_secret": APP_SECRET}.items():
        await form.locator(f"input[name='config.whatsapp_meta.{key}']").fill(value)
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash").first).to_contain_text("Channel created")
    # Right after creation: where to connect it, the verify token in clear.
    connect = page.locator("#connect")
    await expect(connect).to_contain_text("/api/v1/channels/")
    await expect(connect).to_contain_text("vt-from-the-form")
    await expect(connect).to_contain_text("messages field")
    url = (await connect.locator("code[id^=callback-]").text_content() or "").strip()
    return url.split("/api/v1/channels/")[1].split("/")[0]


async def test_whatsapp_channel_from_the_form_takes_signed_meta_messages(
    admin_page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    page = admin_page

    base = web_server.url
    await web_api.tenant("form-wa-co")
    cid = await _create_meta_from_form(page, base, "form-wa-co", "wa-form")
    # Meta's console verifies the callback URL with the token shown …
    status, body = await _verify(web_api, cid, "vt-from-the-form", "1158201444")
    assert (status, body) == (200, "1158201444")
    # … and a customer's message, signed as Meta signs it, is taken.
    status, reply = await _meta_inbound(web_api, cid, "16505550101", "hello from WhatsApp")
    assert status == 201, reply
    await page.goto(f"{base}/admin/channels/{cid}")
    line = page.locator("#inbound-status")
    await expect(line).not_to_contain_text("last inbound message: never")
    await expect(line).not_to_contain_text("Last verification: never")
    await expect(line).to_contain_text("last refusal: none")


async def test_edit_a_channel_keeping_its_id_and_inbound_url(
    admin_page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    page = admin_page

    base = web_server.url
    await web_api.tenant("form-edit-co")
    cid = await _create_meta_from_form(page, base, "form-edit-co", "wa-edit")
    await page.goto(f"{base}/admin/channels/{cid}")
    url_before = await page.locator(f"#callback-{cid}").text_content()
    form = page.locator("#channel-edit-form")
    # Secrets are never rendered back; left empty they are kept.
    assert "meta-form-access" not in await page.content()
    await form.locator("input[name=name]").fill("wa-edited")
    await form.locator("input[name='config.whatsapp_meta.phone_number_id']").fill(PNID)
    # Middleware is a form: a step left incomplete is refused beside its input, and what was
    # typed stays (the new name too).
    await form.locator("[data-step-add]").click()
    row = form.locator("[data-step]").last
    await row.locator("select[data-step-type]").select_option("add_prefix")
    await form.locator("button[type=submit]").click()
    prefix = form.locator("[data-step]").first.locator("[name$='.prefix']")
    await expect(prefix).to_have_attribute("aria-invalid", "true")
    await expect(form.locator("[data-step-field=add_prefix]").first).to_contain_text(
        "can't be blank")
    await expect(form.locator("input[name=name]")).to_have_value("wa-edited")
    await prefix.fill("[wa] ")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash").first).to_contain_text("Channel saved")
    await expect(form.locator("[data-step]")).to_have_count(1)
    await expect(form.locator("[data-step] [name$='.prefix']")).to_have_value("[wa] ")
    stored = await web_api.ok("GET", f"/api/admin/channels/{cid}", headers=web_api.admin)
    assert stored["data"]["transformations"] == [{"type": "add_prefix", "prefix": "[wa] "}]
    await expect(page).to_have_url(f"{base}/admin/channels/{cid}")
    await expect(page.locator("#channel-id")).to_have_text(cid)
    assert await page.locator(f"#callback-{cid}").text_content() == url_before
    await expect(page.locator("h1")).to_have_text("Channel wa-edited")
    # The kept secrets still work: the verify token answers, the app secret checks signatures.
    status, _ = await _verify(web_api, cid, "vt-from-the-form", "42")
    assert status == 200
    status, reply = await _meta_inbound(web_api, cid, "16505550102", "after the edit")
    assert status == 201, reply
    # The change is audited, before and after, secrets masked.
    audit = await web_api.ok("GET", f"/api/admin/audit?resource_id={cid}",
                             headers=web_api.admin)
    entries = [e for e in audit["data"] if e["action"] == "update"]
    assert entries, audit
    text = json.dumps(entries)
    assert "wa-edited" in text and "meta-form-access" not in text

    # Outbound only: the form warns, and the refusal shows on the page with its reason.
    await form.locator("select[name=mode]").select_option("outbound")
    await expect(form.locator("[data-mode-warning]")).to_be_visible()
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#connect .warning")).to_contain_text("outbound only")
    status, _ = await _meta_inbound(web_api, cid, "16505550103", "refused")
    assert status == 400
    await page.reload()
    await expect(page.locator("#inbound-status")).to_contain_text("channel_outbound_only")

    # A new verify token, shown at once; the old one no longer verifies.
    await page.locator("#connect button", has_text="Regenerate").click()
    await expect(page.locator(".flash").first).to_contain_text("New verify token")
    token = (await page.locator(f"#verify-{cid}").text_content() or "").strip()
    assert token and token != "vt-from-the-form"
    status, _ = await _verify(web_api, cid, "vt-from-the-form", "42")
    assert status == 403

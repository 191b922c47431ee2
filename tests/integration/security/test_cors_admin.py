"""Hole 1 (issue 13): the admin panel and the portal never answer cross-origin. A page on an
origin that CORS allows (same-site with a loopback gateway, so the SameSite=Lax session cookie
goes along) must not read ``/admin/users`` nor create an admin; state-changing page requests
check ``Origin`` and ``Sec-Fetch-Site`` as well. The public API keeps its CORS."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.web.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Client
from tests.support.postgres import store_independent
from tests.support.serving import serving

CHROMIUM = os.environ.get("CONVERGER_CHROMIUM", "/usr/bin/chromium")
pytestmark = store_independent("cross-origin requests are refused before any page reads the store")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

ATTACK = """async (gw) => {
  const out = {};
  try {
    const r = await fetch(gw + '/admin/users', {credentials: 'include'});
    const html = await r.text();
    out.read = html.length;
    const m = html.match(/name="_csrf" value="([^"]+)"/);
    const body = new URLSearchParams({email: 'evil@example.com', name: 'Evil',
      password: 'evil password 123', role: 'super_admin', _csrf: m ? m[1] : ''});
    const p = await fetch(gw + '/admin/users', {method: 'POST', credentials: 'include', body});
    out.posted = p.status;
  } catch (e) { out.error = String(e); }
  try {  // the portal too
    const r = await fetch(gw + '/portal', {credentials: 'include'});
    out.portal = r.status;
  } catch (e) { out.portal_error = String(e); }
  // The public API still answers this allowed origin.
  const l = await fetch(gw + '/livez', {credentials: 'include'});
  out.livez = l.status;
  return out;
}"""


def _page(origin_html: str) -> web.Application:
    app = web.Application()

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=origin_html, content_type="text/html")

    app.router.add_get("/", index)
    return app


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                    reason="chromium is not installed (tests/setup.sh installs it)")
async def test_allowed_origin_page_cannot_read_admin_or_create_an_admin(make_server: Any) -> None:
    from playwright.async_api import async_playwright

    async with serving(_page("<!doctype html><title>elsewhere</title><p>hi</p>")) as evil:
        srv = make_server(env={"CONVERGER_CORS_ORIGINS": evil}, admin=True)
        base = srv.url
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                context = await browser.new_context()
                context.set_default_timeout(8000)
                page = await context.new_page()
                await page.goto(f"{base}/admin/login")
                await page.fill("input[name=email]", ADMIN_EMAIL)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{base}/admin")
                # The logged-in admin opens the other origin's page.
                await page.goto(evil + "/")
                out = await page.evaluate(ATTACK, base)
            finally:
                await browser.close()
        assert "read" not in out and "posted" not in out, out
        assert "error" in out, out  # the browser refused to hand the response to the script
        assert "portal" not in out, out
        assert out["livez"] == 200, out
        # And no admin was created.
        admin = Client(base)
        try:
            assert await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
            _, users_page, _ = await admin.get("/admin/users")
            assert "evil@example.com" not in users_page
        finally:
            await admin.close()


async def test_pages_send_no_cors_headers_and_refuse_cross_origin_writes(make_server: Any) -> None:
    other = "http://127.0.0.1:5500"
    srv = make_server(env={"CONVERGER_CORS_ORIGINS": other}, admin=True)
    admin = Client(srv.url)
    try:
        assert await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
        for path in ("/admin", "/admin/users", "/portal/login", "/admin/login"):
            _, _, h = await admin.get(path, headers={"origin": other})
            assert "access-control-allow-origin" not in h, path
            assert "access-control-allow-credentials" not in h, path
        async with admin.session.options(srv.url + "/admin/users", headers={
                "origin": other, "access-control-request-method": "POST"}) as r:
            assert "access-control-allow-origin" not in r.headers
        # The public API keeps its CORS for the allowed origin.
        async with admin.session.get(srv.url + "/livez", headers={"origin": other}) as r:
            assert r.headers["access-control-allow-origin"] == other
        # A write with the right session and CSRF token but from another origin is refused.
        form = {"email": "x1@example.com", "name": "X", "password": "long enough pw 1",
                "role": "viewer"}
        for headers in ({"origin": other}, {"sec-fetch-site": "same-site"},
                        {"sec-fetch-site": "cross-site"}, {"origin": "null"}):
            status, _, _ = await admin.post("/admin/users", form, headers=headers)
            assert status == 403, headers
        _, page, _ = await admin.get("/admin/users")
        assert "x1@example.com" not in page
        # The same origin (or a client that sends neither header) still works.
        status, _, _ = await admin.post("/admin/users", form, headers={
            "origin": srv.url, "sec-fetch-site": "same-origin"})
        assert status == 302
        _, page, _ = await admin.get("/admin/users")
        assert "x1@example.com" in page
    finally:
        await admin.close()

"""Fixtures for the web pages: a server of their own with a super admin made by the CLI, and a
small form-aware HTTP client that keeps cookies and reads CSRF tokens off the pages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import ROOT, Server, database_env

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "correct horse battery"
SECRET_KEY = "test-secret-key-0123456789"  # what tests.support.server gives the server
CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def create_admin(data_dir: Any, email: str, password: str, role: str = "super_admin") -> str:
    """``converger admin create`` as an operator runs it."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "admin", "create", "--email", email, "--name", "Root",
         "--role", role, "--password-stdin", "--data-dir", str(data_dir)],
        input=password + "\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "CONVERGER_SECRET_KEY": SECRET_KEY, **database_env(data_dir)},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


class Client:
    """One visitor: its own cookie jar; ``form()`` posts with the CSRF token of a page."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                             headers=headers or {})
        self.csrf: str | None = None

    async def get(self, path: str, **kw: Any) -> tuple[int, str, Any]:
        async with self.session.get(self.base + path, allow_redirects=False, **kw) as r:
            body = await r.text()
            if m := CSRF.search(body):
                self.csrf = m.group(1)
            return r.status, body, r.headers

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]],
                   csrf: bool = True, **kw: Any) -> tuple[int, str, Any]:
        if csrf:
            data = [*(data.items() if isinstance(data, dict) else data), ("_csrf", self.csrf or "")]
        async with self.session.post(self.base + path, data=data, allow_redirects=False,
                                     **kw) as r:
            body = await r.text()
            if m := CSRF.search(body):
                self.csrf = m.group(1)
            return r.status, body, r.headers

    async def login(self, email: str, password: str, area: str = "admin",
                    tenant: str | None = None) -> int:
        await self.get(f"/{area}/login")
        data = {"email": email, "password": password}
        if tenant is not None:
            data["tenant"] = tenant
        status, _, headers = await self.post(f"/{area}/login", data)
        if status == 302:
            await self.get(headers["location"].replace(self.base, ""))  # picks up the new CSRF
        return status

    async def add_tenant_user(self, data: dict[str, str]) -> tuple[int, str, Any]:
        """A tenant user as an admin makes one now: an invitation (tenant, e-mail, role) from
        the Tenant users page, whose link the invited person opens in a browser of their own to
        choose their name and password. The invitation's refusal (422), else the link's answer
        (302 to the portal when the account was made)."""
        await self.get("/admin/tenant_users")
        status, body, headers = await self.post("/admin/tenant_users/invites", {
            k: data[k] for k in ("tenant_id", "email", "role") if k in data})
        if status != 201:
            return status, body, headers
        m = re.search(r'id="once-value">([^<]+)<', body)
        assert m, "the invitation link is shown once"
        path = "/portal/invite/" + m.group(1).rsplit("/portal/invite/", 1)[1]
        invited = Client(self.base)
        try:
            await invited.get(path)
            password = data.get("password", "")
            return await invited.post(path, {"name": data.get("name", ""), "password": password,
                                             "confirm_password": password})
        finally:
            await invited.close()

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("web")
    create_admin(data, ADMIN_EMAIL, ADMIN_PASSWORD)
    # Retries 1000× sooner (30 ms, 90 ms…): a delivery that fails five times does so in ~1 s.
    srv = Server(data, env={"CONVERGER_BACKOFF_SCALE": "0.001"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
async def web_api(web_server: Server) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as s:
        yield Api(s, web_server.url)


@pytest.fixture
async def admin(web_server: Server) -> AsyncIterator[Client]:
    c = Client(web_server.url)
    assert await c.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
    yield c
    await c.close()


@pytest.fixture
async def anon(web_server: Server) -> AsyncIterator[Client]:
    c = Client(web_server.url)
    yield c
    await c.close()


CHROMIUM = os.environ.get("CONVERGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}
# For modules (or tests) that drive the browser: skipped where tests/setup.sh did not run.
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not shutil.which("chromium"),
    reason="chromium is not installed (tests/setup.sh installs it)")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's, through Playwright's ``executable_path``; ``playwright
    install`` is never run), one per test module: every browser test here launches it from
    this fixture."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        await b.close()


async def signed_in(browser: Any, base: str, email: str, password: str, area: str = "admin",
                    tenant: str | None = None, viewport: dict[str, int] | None = None,
                    bypass_csp: bool = False) -> Any:
    """A page of a new browser context, signed in through the login form (the portal's with
    ``tenant``); dialogs (confirmations) are accepted. ``bypass_csp``: a test may inject its
    own script (axe-core). Close it with ``page.context.close()``."""
    context = await browser.new_context(viewport=viewport or DESKTOP, bypass_csp=bypass_csp)
    context.set_default_timeout(8000)
    page = await context.new_page()
    page.on("dialog", lambda d: d.accept())
    await page.goto(f"{base}/{area}/login")
    if tenant is not None:
        await page.fill("input[name=tenant]", tenant)
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/{area}")
    return page


@pytest.fixture(scope="module")
async def admin_page(browser: Any, web_server: Server) -> AsyncIterator[Any]:
    """A super admin signed in, in headless Chromium, 1360×900."""
    page = await signed_in(browser, web_server.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    yield page
    await page.context.close()


async def invite_in_browser(browser: Any, page: Any, base: str, *, tenant: str, email: str,
                            role: str, name: str, password: str) -> str:
    """An admin's page (``page``, signed in) invites ``email`` into ``tenant`` (its name) from
    the Tenant users page; the invited person opens the link in a browser context of their own
    and chooses their name and password. Returns the link."""
    from playwright.async_api import expect

    await page.goto(base + "/admin/tenant_users")
    form = page.locator("#tenant-user-form")
    await form.locator("select[name=tenant_id]").select_option(label=tenant)
    await form.locator("input[name=email]").fill(email)
    await form.locator("select[name=role]").select_option(role)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#shown-once")).to_contain_text("invitation link")
    link = (await page.locator("#once-value").text_content() or "").strip()
    context = await browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(8000)
    try:
        invited = await context.new_page()
        await invited.goto(link)
        accept = invited.locator("#invite-form")
        await accept.locator("input[name=name]").fill(name)
        await accept.locator("input[name=password]").fill(password)
        await accept.locator("input[name=confirm_password]").fill(password)
        await accept.locator("button[type=submit]").click()
        await invited.wait_for_url(f"{base}/portal")
    finally:
        await context.close()
    return link

"""Single sign-on to the admin panel (issue 25), end to end in headless Chromium against a real
OpenID Connect provider: the ``oidc-provider`` npm package, run on loopback by this test
(tests/e2e/node/oidc_provider.mjs), with its own sign-in and consent pages.

* the group claim names the role: alice (group ``converger-ops``) becomes a super admin, agnes
  (``auditors``) a viewer, both made just in time; bob, whose groups map to no role, is refused
  and no account is made; logging out ends the session;
* tampered answers are refused and grant nothing: a callback whose state is not the session's,
  and ID tokens with a bad signature, issuer, audience or nonce (a proxy between the gateway
  and the provider's token endpoint re-signs the provider's ID token with its changes);
* with local passwords turned off the password form is refused; the IP allowlist still applies
  to the single sign-on routes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.integration.web.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP, needs_chromium
from tests.support.api import Api
from tests.support.server import Server, free_port

NODE_DIR = Path(__file__).resolve().parents[2] / "e2e" / "node"
NODE = shutil.which("node") or "/usr/bin/node"
CLIENT_ID, CLIENT_SECRET = "converger-admin", "a client secret of some length 0123"
ROLE_MAP = json.dumps({"converger-ops": "super_admin", "auditors": "viewer"})

pytestmark = [needs_chromium, pytest.mark.skipif(
    not (NODE_DIR / "node_modules" / "oidc-provider").exists(),
    reason="oidc-provider is not installed (tests/setup.sh installs tests/e2e/node)")]


# -- the identity provider and the tampering proxy -------------------------------------------
class Idp:
    def __init__(self, port: int, redirects: list[str], post_logout: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [NODE, "--no-warnings", "oidc_provider.mjs", str(port), CLIENT_ID, CLIENT_SECRET,
             ",".join(redirects), post_logout], cwd=NODE_DIR, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:  # readline returns at each line the provider prints
            line = self.proc.stdout.readline().decode(errors="replace")
            seen.append(line)
            if line.startswith("ready "):
                return
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"the OIDC provider did not start: {''.join(seen)}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Tamper:
    """An issuer in front of the provider: its discovery document is the provider's (the
    browser still signs in at the provider) but names this proxy as issuer, token endpoint and
    key set; the token endpoint forwards to the provider's and re-signs the ID token it gets,
    changed as ``mode`` says."""

    def __init__(self, idp: Idp) -> None:
        self.idp = idp
        self.key = RSAKey.generate_key(2048, parameters={"kid": "proxy"})
        self.other = RSAKey.generate_key(2048, parameters={"kid": "proxy"})
        self.mode = "none"
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_post("/token", self.token)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def discovery(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as s, \
                s.get(self.idp.url + "/.well-known/openid-configuration") as r:
            meta = await r.json()
        meta.update(issuer=self.url, token_endpoint=self.url + "/token",
                    jwks_uri=self.url + "/jwks")
        return web.json_response(meta)

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def token(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "accept")}
        async with aiohttp.ClientSession() as s, \
                s.post(self.idp.url + "/token", data=body, headers=headers) as r:
            status, answer = r.status, await r.json()
        if status == 200:
            claims = jwt.decode(answer["id_token"], KeySet.import_key_set(
                await self._idp_keys())).claims
            claims["iss"] = self.url
            key = self.key
            if self.mode == "issuer":
                claims["iss"] = "http://127.0.0.1:1/somebody-else"
            elif self.mode == "audience":
                claims["aud"] = "another-client"
            elif self.mode == "nonce":
                claims["nonce"] = "not-the-sessions-nonce"
            elif self.mode == "signature":
                key = self.other  # same kid, not the published key
            answer["id_token"] = jwt.encode({"alg": "RS256", "kid": "proxy"}, claims, key)
        return web.json_response(answer, status=status)

    async def _idp_keys(self) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.idp.url + "/jwks") as r:
            return await r.json()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"idp": free_port(), "a": free_port(), "b": free_port()}


@pytest.fixture(scope="module")
def idp(ports: dict[str, int]) -> Iterator[Idp]:
    redirects = [f"http://127.0.0.1:{ports[k]}/admin/sso/callback" for k in ("a", "b")]
    provider = Idp(ports["idp"], redirects, f"http://127.0.0.1:{ports['a']}/admin/login")
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
async def tamper(idp: Idp) -> AsyncIterator[Tamper]:
    proxy = Tamper(idp)
    await proxy.start()
    yield proxy
    await proxy.stop()


def _sso_env(issuer: str, port: int, **extra: str) -> dict[str, str]:
    return {"CONVERGER_OIDC_ISSUER": issuer, "CONVERGER_OIDC_CLIENT_ID": CLIENT_ID,
            "CONVERGER_OIDC_CLIENT_SECRET": CLIENT_SECRET, "CONVERGER_OIDC_ROLE_MAP": ROLE_MAP,
            "CONVERGER_PUBLIC_URL": f"http://127.0.0.1:{port}", **extra}


@pytest.fixture(scope="module")
def gateway_a(tmp_path_factory: pytest.TempPathFactory, idp: Idp,
              ports: dict[str, int]) -> Iterator[Server]:
    """Signs in at the provider itself; local passwords are off."""
    srv = Server(tmp_path_factory.mktemp("sso-a"), port=ports["a"], env=_sso_env(
        idp.url, ports["a"], CONVERGER_LOCAL_PASSWORDS="false")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def gateway_b(tmp_path_factory: pytest.TempPathFactory, tamper: Tamper,
              ports: dict[str, int]) -> Iterator[Server]:
    """Signs in through the tampering proxy."""
    srv = Server(tmp_path_factory.mktemp("sso-b"), port=ports["b"],
                 env=_sso_env(tamper.url, ports["b"])).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        await b.close()


async def _page(chromium: Any) -> Any:
    context = await chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(10000)
    return await context.new_page()


async def _at_idp(page: Any, login: str) -> None:
    """The provider's own sign-in page, then its consent page (the first time)."""
    await page.wait_for_selector("input[name=login]")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", "any password")
    await page.click("button[type=submit]")
    consent = page.locator("button[type=submit]", has_text="Continue")
    await page.wait_for_function(
        "() => location.pathname.startsWith('/admin') || "
        "document.querySelector('button[autofocus], form button[type=submit]') !== null")
    if "/admin" not in page.url and await consent.count():
        await consent.click()


async def _admins(server: Server) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        return (await Api(s, server.url).ok("GET", "/api/admin/users",
                                            headers=Api(s, server.url).admin))["data"]


# -- sign-in, roles, refusal, logout ---------------------------------------------------------
async def test_group_claim_names_the_role_and_logout_ends_it(chromium: Any,
                                                             gateway_a: Server) -> None:
    base = gateway_a.url
    page = await _page(chromium)
    try:
        await page.goto(f"{base}/admin/login")
        assert await page.locator("input[name=password]").count() == 0  # local passwords off
        await page.click("#sso")
        await _at_idp(page, "alice")
        await page.wait_for_url(f"{base}/admin")
        await page.wait_for_selector("[data-role=super_admin]")
        await page.goto(f"{base}/admin/roles")  # a super admin's page
        await page.wait_for_selector("[data-role=viewer]")
        await page.click("form[action='/admin/logout'] button")
        await page.wait_for_url(f"{base}/admin/login")
        await page.goto(f"{base}/admin/users")
        await page.wait_for_url(f"{base}/admin/login")  # the session is gone
    finally:
        await page.context.close()
    page = await _page(chromium)
    try:
        await page.goto(f"{base}/admin/sso/login")
        await _at_idp(page, "agnes")
        await page.wait_for_url(f"{base}/admin")
        await page.wait_for_selector("[data-role=viewer]")
        status = (await page.request.post(f"{base}/admin/tenants",
                                          form={"name": "x"})).status
        assert status == 403  # a viewer changes nothing (and the CSRF check refuses it too)
    finally:
        await page.context.close()
    admins = {u["email"]: u for u in await _admins(gateway_a)}
    assert admins["alice@idp.example"]["role"] == "super_admin"
    assert admins["agnes@idp.example"]["role"] == "viewer"


async def test_a_user_with_no_mapped_group_is_refused(chromium: Any, gateway_a: Server) -> None:
    base = gateway_a.url
    page = await _page(chromium)
    try:
        await page.goto(f"{base}/admin/sso/login")
        await _at_idp(page, "bob")
        await page.wait_for_selector("text=has no role in this gateway")
        await page.goto(f"{base}/admin")
        await page.wait_for_url(f"{base}/admin/login")
    finally:
        await page.context.close()
    assert "bob@idp.example" not in {u["email"] for u in await _admins(gateway_a)}


async def test_local_passwords_off_and_the_allowlist(gateway_a: Server,
                                                     tmp_path: Path, idp: Idp) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{gateway_a.url}/admin/login", allow_redirects=False,
                          data={"email": "alice@idp.example", "password": "x"}) as r:
            assert r.status == 403  # no CSRF session, and no password form at all
    port = free_port()
    walled = Server(tmp_path / "walled", port=port, env=_sso_env(
        idp.url, port, CONVERGER_ADMIN_IP_WHITELIST="10.9.8.0/24")).start()
    try:
        async with aiohttp.ClientSession() as s:
            for path in ("/admin/sso/login", "/admin/sso/callback?code=x&state=y"):
                async with s.get(walled.url + path, allow_redirects=False) as r:
                    assert (r.status, await r.text()) == (403, "Forbidden"), path
    finally:
        walled.stop()


# -- tampered answers ------------------------------------------------------------------------
async def test_a_bad_state_is_refused(chromium: Any, gateway_b: Server, tamper: Tamper) -> None:
    """The provider's answer comes back with a state that is not this session's (an
    authorization request someone else made up): refused, nobody signed in."""
    base = gateway_b.url
    tamper.mode = "none"
    page = await _page(chromium)
    try:
        # The session's pending sign-in (in the browser's cookie), then the provider's
        # authorization URL with its state replaced.
        started = await page.request.get(f"{base}/admin/sso/login", max_redirects=0)
        assert started.status == 302
        auth = started.headers["location"]
        assert "state=" in auth and "code_challenge=" in auth and "nonce=" in auth
        await page.goto(re.sub(r"state=[^&]+", "state=forged-state", auth))
        await _at_idp(page, "alice")
        await page.wait_for_selector("text=Single sign-on failed: start again")
        await page.goto(f"{base}/admin")
        await page.wait_for_url(f"{base}/admin/login")
        # The same browser, untampered: it works (so the refusal was the state's).
        await page.goto(f"{base}/admin/sso/login")
        await page.wait_for_url(f"{base}/admin")
        await page.wait_for_selector("[data-role=super_admin]")
    finally:
        await page.context.close()


@pytest.mark.parametrize("mode", ["signature", "issuer", "audience", "nonce"])
async def test_a_tampered_id_token_is_refused(mode: str, chromium: Any, gateway_b: Server,
                                              tamper: Tamper) -> None:
    base = gateway_b.url
    tamper.mode = mode
    before = {u["email"] for u in await _admins(gateway_b)}
    page = await _page(chromium)
    try:
        await page.goto(f"{base}/admin/sso/login")
        await _at_idp(page, "agnes")
        await page.wait_for_selector("text=answer was not valid")
        await page.goto(f"{base}/admin")
        await page.wait_for_url(f"{base}/admin/login")
    finally:
        await page.context.close()
        tamper.mode = "none"
    assert {u["email"] for u in await _admins(gateway_b)} == before  # nobody made
    assert "unhandled error" not in gateway_b.log_path.read_text(errors="replace")
    assert "the ID token was refused" in gateway_b.log_path.read_text(errors="replace")

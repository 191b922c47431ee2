"""Security of the web pages over plain HTTP: the IP allowlist runs first, CSRF on every form,
sessions that expire and cannot be forged, roles enforced on the server, no secret in any
page after it was shown once, and tenant isolation in the portal."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import aiohttp
import pytest
from yarl import URL

from gateway.web.security import Sessions
from tests.integration.web.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, SECRET_KEY, Client
from tests.support.api import Api
from tests.support.server import Server, open_database


def _payload(cookie: str) -> dict:
    raw = cookie.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def _cookie(client: Client, area: str = "admin") -> str:
    jar = client.session.cookie_jar.filter_cookies(URL(client.base + f"/{area}/"))
    return jar["_converger_key" if area == "admin" else "_converger_portal"].value


# -- allowlist ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def walled(tmp_path_factory: pytest.TempPathFactory):
    """127.0.0.1 is outside the allowlist; 127.0.0.1 is also the one trusted proxy. No admin
    user exists, so the server prints a one-time setup link."""
    srv = Server(tmp_path_factory.mktemp("walled"), env={
        "ADMIN_IP_WHITELIST": "10.9.9.9, 192.168.50.0/24", "CONVERGER_TRUSTED_PROXIES": "127.0.0.1"})
    yield srv.start()
    srv.stop()


async def test_outside_the_allowlist_is_refused_before_any_page_logic(walled: Server) -> None:
    async with aiohttp.ClientSession() as s:
        for method, path in (("GET", "/admin"), ("GET", "/admin/login"), ("POST", "/admin/login"),
                             ("GET", "/admin/no-such-page"), ("GET", "/admin/setup/x")):
            async with s.request(method, walled.url + path, allow_redirects=False) as r:
                assert r.status == 403, path
                assert await r.text() == "Forbidden"
                # No session was opened: the guard stopped before sessions, CSRF and routing.
                assert "set-cookie" not in r.headers
        # A forged X-Forwarded-For from a client that is not behind the trusted proxy chain:
        # the right-most untrusted hop is the client.
        headers = {"x-forwarded-for": "10.9.9.9, 203.0.113.7"}
        async with s.get(walled.url + "/admin/login", headers=headers) as r:
            assert r.status == 403
        # The portal has no IP restriction.
        async with s.get(walled.url + "/portal/login") as r:
            assert r.status == 200


async def test_forwarded_for_is_trusted_only_from_trusted_proxies(walled: Server) -> None:
    async with aiohttp.ClientSession() as s:
        for client in ("10.9.9.9", "192.168.50.23"):
            async with s.get(walled.url + "/admin/login", headers={"x-forwarded-for": client}) as r:
                assert r.status == 200, client


async def test_one_time_setup_link_creates_the_first_admin(walled: Server) -> None:
    deadline = time.monotonic() + 10
    link = None
    while link is None and time.monotonic() < deadline:
        link = re.search(r"/admin/setup/([\w-]+)", walled.log())
        if link is None:
            time.sleep(0.05)
    assert link, walled.log()
    path = link.group(0)
    c = Client(walled.url, headers={"x-forwarded-for": "10.9.9.9"})
    try:
        status, body, _ = await c.get(path)
        assert status == 200 and "Create the first admin" in body
        status, body, _ = await c.post(path, {"name": "First", "email": "first@example.com",
                                              "password": "short"})
        assert status == 422 and "at least 8 characters" in body  # a mistake does not use it up
        status, _, headers = await c.post(path, {"name": "First", "email": "first@example.com",
                                                 "password": "long enough pw"})
        assert status == 302 and headers["location"] == "/admin"
        status, body, _ = await c.get("/admin")
        assert status == 200 and "first@example.com" in body
        status, _, _ = await c.get(path)  # valid once
        assert status == 404
        assert (await c.get("/admin/setup/guess"))[0] == 404
    finally:
        await c.close()


def test_no_setup_link_when_an_admin_exists(web_server: Server) -> None:
    assert "/admin/setup/" not in web_server.log()




# -- CSRF ------------------------------------------------------------------------------------
async def test_form_posts_without_or_with_a_wrong_csrf_token_are_refused(admin: Client,
                                                                         anon: Client) -> None:
    await anon.get("/admin/login")
    creds = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    assert (await anon.post("/admin/login", creds, csrf=False))[0] == 403
    assert (await anon.post("/admin/login", {**creds, "_csrf": "wrong"}, csrf=False))[0] == 403
    assert (await admin.post("/admin/tenants", {"name": "no-csrf"}, csrf=False))[0] == 403
    status, _, _ = await admin.post("/admin/tenants", {"name": "bad-csrf", "_csrf": "x" * 32},
                                    csrf=False)
    assert status == 403
    _, body, _ = await admin.get("/admin/tenants")
    assert "no-csrf" not in body and "bad-csrf" not in body
    # The portal too.
    await anon.get("/portal/login")
    assert (await anon.post("/portal/login", {"tenant": "x", **creds}, csrf=False))[0] == 403


# -- sessions --------------------------------------------------------------------------------
async def test_expired_or_tampered_session_goes_back_to_login(admin: Client, web_server: Server) -> None:
    real = _cookie(admin)
    data = _payload(real)
    assert data["uid"]
    data.pop("exp")
    fresh = Sessions(SECRET_KEY, 3600).dump(data)
    expired = Sessions(SECRET_KEY, 3600, now=lambda: time.time() - 7200).dump(data)
    forged = Sessions("another-key", 3600).dump(data)
    tampered = real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB")
    raw = real.split(".")[0]
    swapped = base64.urlsafe_b64encode(json.dumps({**data, "uid": "x", "exp": 9 ** 12}).encode())
    async with aiohttp.ClientSession() as s:
        async def status_for(cookie: str) -> tuple[int, str]:
            async with s.get(web_server.url + "/admin/tenants", allow_redirects=False,
                             headers={"cookie": f"_converger_key={cookie}"}) as r:
                return r.status, r.headers.get("location", "")

        assert (await status_for(fresh))[0] == 200  # a well-made cookie is accepted …
        for bad in (expired, forged, tampered, swapped.decode().rstrip("=") + "." + real.split(".")[1],
                    raw, "garbage"):
            assert await status_for(bad) == (302, "/admin/login"), bad
    set_cookie = admin  # the real login cookie carries the safe attributes
    async with set_cookie.session.get(web_server.url + "/admin/login") as r:
        header = r.headers.get("set-cookie") or ""
    # /admin/login with a valid session does not rewrite it; check a fresh one instead.
    async with aiohttp.ClientSession() as s, s.get(web_server.url + "/admin/login") as r:
        header = r.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Max-Age=" in header
    assert "Secure" not in header  # plain http here; https (or a trusted proxy's proto) adds it


async def test_https_behind_a_trusted_proxy_marks_the_cookie_secure(walled: Server) -> None:
    async with aiohttp.ClientSession() as s, s.get(
        walled.url + "/portal/login", headers={"x-forwarded-proto": "https"}
    ) as r:
        assert "Secure" in r.headers["set-cookie"]




async def test_login_attempts_are_rate_limited(web_server: Server, anon: Client) -> None:
    from tests.integration.web.conftest import create_admin

    create_admin(web_server.data_dir, "victim@example.com", "the right password", "viewer")
    for _ in range(5):
        assert await anon.login("victim@example.com", "wrong password") == 401
    # Even the right password is refused while the address is blocked for this e-mail.
    assert await anon.login("victim@example.com", "the right password") == 429


# -- roles -------------------------------------------------------------------------------------
async def test_viewer_sees_no_buttons_and_every_post_is_refused(admin: Client,
                                                                web_server: Server,
                                                                web_api: Api) -> None:
    status, _, _ = await admin.post("/admin/users", {"name": "Vi", "email": "vi@example.com",
                                                     "password": "viewer pass 1", "role": "viewer"})
    assert status == 302
    t = await web_api.tenant("viewer-sees")
    ch = await web_api.channel(t["id"], name="vs")
    viewer = Client(web_server.url)
    try:
        assert await viewer.login("vi@example.com", "viewer pass 1") == 302
        for page in ("/admin", "/admin/tenants", "/admin/channels", "/admin/deliveries",
                     "/admin/routing_rules", "/admin/users", "/admin/tenant_users",
                     "/admin/tokens", "/admin/conversations", "/admin/audit_logs"):
            status, body, _ = await viewer.get(page)
            assert status == 200, page
            forms = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', body)
            assert forms == ["/admin/logout"], (page, forms)
        for path, data in (
            ("/admin/tenants", {"name": "by-viewer"}),
            (f"/admin/tenants/{t['id']}/status", {"status": "inactive"}),
            (f"/admin/tenants/{t['id']}/rotate", {}),
            (f"/admin/tenants/{t['id']}/delete", {"confirm": "yes"}),
            (f"/admin/channels/{ch['id']}/status", {"status": "inactive"}),
            (f"/admin/channels/{ch['id']}/token", {}),
            ("/admin/users", {"name": "x", "email": "x@example.com", "password": "12345678",
                              "role": "super_admin"}),
            ("/admin/tokens", {"name": "t", "role": "super_admin"}),
        ):
            status, body, _ = await viewer.post(path, data)
            assert status == 403, path
        t_now = await web_api.ok("GET", f"/api/admin/tenants/{t['id']}", headers=web_api.admin)
        assert t_now["data"]["status"] == "active"
        # Logging out is allowed.
        assert (await viewer.post("/admin/logout", {}))[0] == 302
    finally:
        await viewer.close()


async def test_only_super_admins_manage_admin_users(admin: Client, web_server: Server) -> None:
    await admin.post("/admin/users", {"name": "Ad", "email": "ad@example.com",
                                      "password": "admin pass 1", "role": "admin"})
    plain = Client(web_server.url)
    try:
        assert await plain.login("ad@example.com", "admin pass 1") == 302
        status, body, _ = await plain.get("/admin/users")
        assert "Only super admins" in body and 'action="/admin/users"' not in body
        assert (await plain.post("/admin/users", {"name": "x", "email": "y@example.com",
                                                  "password": "12345678", "role": "admin"}))[0] == 403
        # An admin can change tenants.
        assert (await plain.post("/admin/tenants", {"name": "by-admin"}))[0] == 201
    finally:
        await plain.close()


# -- secrets -----------------------------------------------------------------------------------
async def test_no_secret_appears_in_any_page_after_creation(admin: Client, web_api: Api) -> None:
    shown: list[str] = []
    status, body, _ = await admin.post("/admin/tenants", {"name": "secretive"})
    assert status == 201
    api_key = re.search(r'id="once-value">([^<]+)<', body).group(1)
    shown.append(api_key)
    tenant_id = re.search(r'conversations\?tenant_id=([0-9a-f-]{36})"', body).group(1)
    configs = {
        "webhook": {"url": "http://127.0.0.1:9/hook"},
        "whatsapp_meta": {"phone_number_id": "555", "access_token": "EAAG-meta-token-123",
                          "verify_token": "verify-me-456", "app_secret": "app-secret-789"},
        "whatsapp_infobip": {"base_url": "https://api.infobip.example", "api_key": "ib-key-0987",
                             "sender": "4471", "webhook_username": "ib-user",
                             "webhook_password": "ib-hook-pass-321"},
        "echo": {}, "websocket": {},
    }
    shown += ["EAAG-meta-token-123", "verify-me-456", "app-secret-789", "ib-key-0987",
              "ib-hook-pass-321"]
    channel_ids = []
    for kind, cfg in configs.items():
        data = {"tenant_id": tenant_id, "name": f"s-{kind}", "type": kind, "transformations": ""}
        data.update({f"config.{kind}.{k}": v for k, v in cfg.items()})
        status, body, _ = await admin.post("/admin/channels", data)
        assert status == 201, re.findall(r'class="errors">([^<]+)', body)
        shown.append(re.search(r'id="once-value">([^<]+)<', body).group(1))  # secret
        shown.append(re.search(r'id="once-extra">([^<]+)<', body).group(1))  # token
        channel_ids.append(re.search(r'data-channel="s-' + kind, body) and kind)
    _, body, _ = await admin.get(f"/admin/channels?tenant_id={tenant_id}")
    ids = re.findall(r'/admin/channels/([0-9a-f-]{36})/rotate', body)
    assert len(ids) == 5
    status, body, _ = await admin.post(f"/admin/channels/{ids[0]}/rotate", {})
    shown.append(re.search(r'id="once-value">([^<]+)<', body).group(1))
    status, body, _ = await admin.post(f"/admin/tenants/{tenant_id}/rotate", {})
    shown.append(re.search(r'id="once-value">([^<]+)<', body).group(1))
    status, body, _ = await admin.post("/admin/tokens", {"name": "ci", "role": "viewer"})
    shown.append(re.search(r'id="once-value">([^<]+)<', body).group(1))
    # Traffic, so conversation and delivery pages have rows.
    token = await web_api.channel_token(ids[-1])
    conv = await web_api.conversation(token)
    await web_api.post_activity(conv["id"], shown[-2], text="hello")
    pages = ["/admin", "/admin/tenants", "/admin/channels", f"/admin/channels?tenant_id={tenant_id}",
             "/admin/conversations", f"/admin/conversations/{conv['id']}",
             f"/admin/conversations/{conv['id']}/timeline.json", "/admin/deliveries",
             "/admin/routing_rules", "/admin/audit_logs", "/admin/audit_logs?resource_type=channel",
             "/admin/users", "/admin/tenant_users", "/admin/tokens"]
    for page in pages:
        status, body, _ = await admin.get(page)
        assert status == 200, page
        for secret in shown:
            assert secret not in body, (page, secret[:12])
    # The hint is all that is left of the key.
    _, body, _ = await admin.get("/admin/tenants")
    assert "cvk_" in body


# -- audit -------------------------------------------------------------------------------------
async def test_user_changes_are_audited_with_the_actor_and_no_password(admin: Client,
                                                                       web_api: Api) -> None:
    t = await web_api.tenant("audited")
    status, _, _ = await admin.add_tenant_user({
        "tenant_id": t["id"], "name": "Tu", "email": "tu@example.com",
        "password": "tenant pass 1", "role": "member"})
    assert status == 302
    _, body, _ = await admin.get("/admin/audit_logs?resource_type=tenant_user")
    assert "tu@example.com" in body and ADMIN_EMAIL in body
    assert "password" not in body.split('id="audit"')[1]
    assert "argon2" not in body


# -- portal ------------------------------------------------------------------------------------
async def _portal_user(admin: Client, tenant: dict, email: str, role: str) -> None:
    status, body, _ = await admin.add_tenant_user({
        "tenant_id": tenant["id"], "name": email.split("@")[0], "email": email,
        "password": "portal pass 1", "role": role})
    assert status == 302, re.findall(r'class="errors">([^<]+)', body)


async def test_portal_user_sees_only_their_tenant(admin: Client, web_server: Server,
                                                  web_api: Api) -> None:
    a = await web_api.setup("portal-a")
    b = await web_api.setup("portal-b")
    await _portal_user(admin, a["tenant"], "owner@a.example", "owner")
    user = Client(web_server.url)
    try:
        assert await user.login("owner@a.example", "wrong", "portal", tenant="portal-a") == 401
        assert await user.login("owner@a.example", "portal pass 1", "portal",
                                tenant="portal-b") == 401
        assert await user.login("owner@a.example", "portal pass 1", "portal",
                                tenant="portal-a") == 302
        status, body, _ = await user.get("/portal")
        assert status == 200 and "portal-a" in body and "Channel health" in body
        assert "portal-b" not in body
        for page in ("/portal/channels", "/portal/conversations", "/portal/deliveries",
                     "/portal/routing_rules", "/portal/users"):
            status, body, _ = await user.get(page)
            assert status == 200 and b["channel"]["id"][-8:] not in body, page
        status, body, _ = await user.get(f"/portal/conversations/{a['conversation']['id']}")
        assert status == 200 and a["conversation"]["id"] in body
        status, _, headers = await user.get(f"/portal/conversations/{b['conversation']['id']}")
        assert status == 302 and headers["location"] == "/portal/conversations"
        _, body, _ = await user.get("/portal/conversations")
        assert "Conversation not found" in body
        assert b["conversation"]["id"][-12:] not in body
        status, _, _ = await user.get(f"/portal/conversations/{b['conversation']['id']}/timeline.json")
        assert status == 404
        # Changing another tenant's channel is refused as not found.
        await user.post(f"/portal/channels/{b['channel']['id']}/status", {"status": "inactive"})
        ch = await web_api.ok("GET", f"/api/admin/channels/{b['channel']['id']}",
                              headers=web_api.admin)
        assert ch["data"]["status"] == "active"
        # The admin session does not open the portal, and the other way round.
        assert (await user.get("/admin"))[0] == 302
    finally:
        await user.close()


async def test_portal_roles(admin: Client, web_server: Server, web_api: Api) -> None:
    a = await web_api.setup("portal-roles")
    await _portal_user(admin, a["tenant"], "viewer@r.example", "viewer")
    await _portal_user(admin, a["tenant"], "member@r.example", "member")
    viewer, member = Client(web_server.url), Client(web_server.url)
    try:
        assert await viewer.login("viewer@r.example", "portal pass 1", "portal",
                                  tenant="portal-roles") == 302
        _, body, _ = await viewer.get("/portal/channels")
        assert "Disable" not in body
        status, _, _ = await viewer.post(f"/portal/channels/{a['channel']['id']}/status",
                                         {"status": "inactive"})
        assert status == 403
        assert await member.login("member@r.example", "portal pass 1", "portal",
                                  tenant="portal-roles") == 302
        status, _, _ = await member.post(f"/portal/channels/{a['channel']['id']}/status",
                                         {"status": "inactive"})
        assert status == 302
        ch = await web_api.ok("GET", f"/api/admin/channels/{a['channel']['id']}",
                              headers=web_api.admin)
        assert ch["data"]["status"] == "inactive"
        # Members do not manage users.
        status, _, _ = await member.post("/portal/users/invites", {"email": "n@r.example",
                                                                   "role": "admin"})
        assert status == 403
    finally:
        await viewer.close()
        await member.close()




async def test_a_disabled_account_is_only_told_to_whoever_knows_its_password(
        admin: Client, web_server: Server) -> None:
    """A wrong password gets the same answer for a disabled account as for no account, so the
    login form tells nobody which addresses exist."""
    status, _, _ = await admin.post("/admin/users", {"name": "Gone", "email": "gone@example.com",
                                                     "password": "gone pass 1", "role": "viewer"})
    assert status == 302
    _, body, _ = await admin.get("/admin/users")
    row = next(r for r in body.split("<tr") if "gone@example.com" in r)
    user_id = re.search(r"/admin/users/([0-9a-f-]{36})/status", row).group(1)
    status, _, _ = await admin.post(f"/admin/users/{user_id}/status", {"status": "inactive"})
    assert status == 302
    answers = []
    for email, password in (("gone@example.com", "wrong pass"), ("nobody@example.com", "wrong pass"),
                            ("gone@example.com", "gone pass 1")):
        client = Client(web_server.url)
        try:
            await client.get("/admin/login")
            status, body, _ = await client.post("/admin/login", {"email": email, "password": password})
            answers.append((status, re.findall(r'class="flash[^"]*"[^>]*>([^<]+)<', body)))
        finally:
            await client.close()
    assert answers[0] == answers[1] and answers[0][0] == 401
    assert "Invalid email or password." in " ".join(answers[0][1])
    assert answers[2][0] == 401 and "deactivated" in " ".join(answers[2][1])


async def test_nobody_disables_or_deletes_their_own_account(admin: Client, web_server: Server,
                                                            web_api: Api) -> None:
    def own_id(table: str, email: str) -> str:
        # The pages show no buttons on one's own row; a hand-made POST is what is refused.
        with open_database(web_server.data_dir) as conn:
            return conn.execute(f"SELECT id FROM {table} WHERE email = ?", (email,)).fetchone()[0]

    me = own_id("admin_users", ADMIN_EMAIL)
    for action, said in (("status", "You cannot deactivate your own account."),
                         ("delete", "You cannot delete your own account.")):
        status, _, headers = await admin.post(f"/admin/users/{me}/{action}", {"status": "inactive"})
        assert status == 302 and headers["location"] == "/admin/users"
        _, body, _ = await admin.get("/admin/users")
        assert said in body and ADMIN_EMAIL in body
    status, _, _ = await admin.post(f"/admin/users/{uuid.uuid4()}/delete", {})
    _, body, _ = await admin.get("/admin/users")
    assert status == 302 and "User not found" in body
    # The portal: an owner cannot lock themselves out either.
    t = await web_api.setup("own-account")
    await _portal_user(admin, t["tenant"], "self@own.example", "owner")
    owner = Client(web_server.url)
    try:
        assert await owner.login("self@own.example", "portal pass 1", "portal",
                                 tenant="own-account") == 302
        mine = own_id("tenant_users", "self@own.example")
        await owner.post(f"/portal/users/{mine}/status", {"status": "inactive"})
        _, body, _ = await owner.get("/portal/users")
        assert "You cannot deactivate your own account." in body
        status, _, _ = await owner.get("/portal")
        assert status == 200
    finally:
        await owner.close()

"""The tenant-isolation matrix (issue 9 part 2).

Two tenants, A (the attacker) and B (the victim), each with channels of several types,
conversations (legacy and Converger), activities, a routing rule, an upload, deliveries and a
portal user. Then, for every route the app serves, A's credentials — and every token kind in
the wrong place, expired tokens and tokens signed with another key — are tried on B's ids.
The matrix proves:

* no read or write across tenants: nothing of B's is in any answer to A, and B's data is the
  same afterwards (``test_b_is_unchanged`` compares snapshots taken before and after);
* errors leak no existence: the answer for B's id equals (status, ``code``, and the whole
  problem body with the ids masked) the answer for a random id that does not exist.

The route list comes from the running app's router: a route that is neither in ``MATRIX`` nor
in ``EXEMPT`` (with its reason) fails ``test_every_route_is_in_the_matrix``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest

from adapters.signing import converger_signature
from gateway.app import create_app
from gateway.config import Settings
from gateway.shapes import encode_watermark
from gateway.tokens import Tokens
from tests.integration.realtime.phx import Frame, Phx
from tests.integration.web.conftest import SECRET_KEY, Client, create_admin
from tests.support.api import Api
from tests.support.server import Server, open_database

ADMIN_EMAIL, ADMIN_PASSWORD = "iso-root@example.com", "isolation admin pass"
PORTAL_PASSWORD = "portal password 1"
HOOK_CONFIG = {"url": "http://127.0.0.1:9/hook", "require_signature": True}


# -- the world -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iso_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("isolation")
    create_admin(data, ADMIN_EMAIL, ADMIN_PASSWORD)
    srv = Server(data).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
async def iso_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _tenant_world(api: Api, admin: Client, name: str) -> dict[str, Any]:
    t = await api.tenant(name)
    web = await api.channel(t["id"], name="web", type="websocket")
    hook = await api.channel(t["id"], name="hook", type="webhook", mode="duplex",
                             config=HOOK_CONFIG)
    hook2 = await api.channel(t["id"], name="hook2", type="webhook",
                              config={"url": "http://127.0.0.1:9/hook2"})
    ctoken = await api.channel_token(web["id"])
    conv = await api.conversation(ctoken)
    conv2 = await api.conversation(ctoken)
    act = await api.post_activity(conv["id"], t["api_key"], text=f"secret of {name}")
    user_token = (await api.ok("POST", "/api/v1/tokens", 201, headers={"x-channel-token": ctoken},
                               json={"conversation_id": conv["id"], "user_id": "u1"}))["token"]
    user_token2 = (await api.ok("POST", "/api/v1/tokens", 201, headers={"x-channel-token": ctoken},
                                json={"conversation_id": conv2["id"], "user_id": "u1"}))["token"]
    rule = (await api.ok("POST", "/api/v1/routing_rules", 201, headers={"x-api-key": t["api_key"]},
                         json={"routing_rule": {"name": "r", "source_channel_id": hook["id"],
                                                "target_channel_ids": [hook2["id"]]}}))["data"]
    htoken = await api.channel_token(hook["id"])
    hconv = await api.conversation(htoken)
    await api.post_activity(hconv["id"], t["api_key"], text=f"outbound of {name}")
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate", headers=bearer(web["secret"]))
    cg = await api.ok("POST", "/api/v1/converger/conversations", 201, headers=bearer(gen["token"]))
    form = aiohttp.FormData()
    form.add_field("file", b"private bytes of " + name.encode(), filename="note.txt",
                   content_type="text/plain")
    await api.ok("POST", f"/api/v1/converger/conversations/{cg['conversationId']}/upload",
                 data=form, headers=bearer(cg["token"]))
    cg_acts = await api.ok("GET", f"/api/v1/converger/conversations/{cg['conversationId']}/activities",
                           headers=bearer(cg["token"]))
    upload_url = cg_acts["activities"][-1]["attachments"][0]["contentUrl"]
    upload_activity = cg_acts["activities"][-1]["id"]
    deliveries = (await api.ok("GET", f"/api/admin/deliveries?tenant_id={t['id']}",
                               headers=api.admin))["data"]
    assert deliveries, "the hook conversation's activity must have made a delivery"
    email = f"owner@{name}.example"
    await admin.add_tenant_user({"tenant_id": t["id"], "name": "Owner", "email": email,
                                 "password": PORTAL_PASSWORD, "role": "owner"})
    viewer_email = f"viewer@{name}.example"
    await admin.add_tenant_user({"tenant_id": t["id"], "name": "Viewer",
                                 "email": viewer_email, "password": PORTAL_PASSWORD,
                                 "role": "viewer"})
    await admin.post("/admin/tenant_users/invites", {"tenant_id": t["id"], "role": "member",
                                                     "email": f"pending@{name}.example"})
    return {"name": name, "tenant": t, "api_key": t["api_key"], "web": web, "hook": hook,
            "hook2": hook2, "channel_token": ctoken, "conv": conv, "conv2": conv2, "activity": act,
            "user_token": user_token, "user_token2": user_token2, "rule": rule, "hconv": hconv,
            "cg_token": gen["token"], "cg_conv": cg["conversationId"], "cg_conv_token": cg["token"],
            "upload_activity": upload_activity,
            "upload_url": upload_url, "upload_file": upload_url.rsplit("/", 1)[1],
            "delivery": deliveries[0]["id"], "email": email}


@pytest.fixture(scope="module")
async def world(iso_server: Server, iso_session: aiohttp.ClientSession) -> AsyncIterator[dict[str, Any]]:
    api = Api(iso_session, iso_server.url)
    admin = Client(iso_server.url)
    assert await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
    suffix = uuid.uuid4().hex[:6]
    a = await _tenant_world(api, admin, f"iso-a-{suffix}")
    b = await _tenant_world(api, admin, f"iso-b-{suffix}")
    with open_database(iso_server.data_dir) as conn:
        for t in (a, b):
            t["user_ids"] = [r[0] for r in conn.execute(
                "SELECT id FROM tenant_users WHERE tenant_id = ? ORDER BY inserted_at, id", (t["tenant"]["id"],))]
            t["invite_id"] = conn.execute("SELECT id FROM tenant_invites WHERE tenant_id = ?",
                                          (t["tenant"]["id"],)).fetchone()[0]
    settle_deliveries(iso_server, b["tenant"]["id"])
    portal = Client(iso_server.url)
    assert await portal.login(a["email"], PORTAL_PASSWORD, "portal", tenant=a["name"]) == 302
    w = {"A": a, "B": b, "api": api, "admin": admin, "portal": portal, "server": iso_server,
         "snapshot": snapshot(iso_server, b["tenant"]["id"])}
    yield w
    await admin.close()
    await portal.close()


def settle_deliveries(server: Server, tenant_id: str) -> None:
    """Make B's deliveries final (failed, as after their last attempt) so the workers leave them
    alone and any change to them — a retry from A's side — shows in the snapshot."""
    deadline = time.monotonic() + 10
    while True:
        with open_database(server.data_dir) as conn:
            conn.execute(
                """UPDATE deliveries SET status = 'failed', attempts = 7, next_attempt_at = NULL,
                          leased_until = NULL WHERE tenant_id = ? AND claim_token IS NULL""",
                (tenant_id,))
            left = conn.execute("SELECT count(*) FROM deliveries WHERE tenant_id = ? AND "
                                "status != 'failed'", (tenant_id,)).fetchone()[0]
        if not left:
            return
        assert time.monotonic() < deadline, "B's deliveries stayed leased"
        time.sleep(0.05)  # a worker holds a lease: it ends within one short attempt


def snapshot(server: Server, tenant_id: str) -> dict[str, Any]:
    """Everything stored for a tenant, read straight from the database (a read-only
    connection: the server keeps writing other tenants)."""
    tables = {"tenants": "id", "channels": "tenant_id", "conversations": "tenant_id",
              "activities": "tenant_id", "routing_rules": "tenant_id", "uploads": "tenant_id",
              "tenant_users": "tenant_id", "deliveries": "tenant_id",
              "tenant_invites": "tenant_id"}
    volatile: dict[str, tuple[str, ...]] = {}  # B's deliveries are settled: nothing moves
    out: dict[str, Any] = {}
    with open_database(server.data_dir, readonly=True) as conn:
        conn.row_factory = sqlite3.Row
        for table, column in tables.items():
            rows = [dict(r) for r in conn.execute(
                f"SELECT * FROM {table} WHERE {column} = ? ORDER BY id", (tenant_id,))]
            for r in rows:
                for v in volatile.get(table, ()):
                    r.pop(v, None)
            out[table] = rows
    return out


# -- credentials -----------------------------------------------------------------------------
def forged(world: dict[str, Any]) -> dict[str, str]:
    """Tokens naming B's channel and conversations that must never be accepted."""
    b = world["B"]
    ours, theirs = Tokens(SECRET_KEY), Tokens("another-key-0123456789-0123456789-0123")
    past = time.time() - 7200
    ch, tid = b["web"]["id"], b["tenant"]["id"]
    with warnings.catch_warnings():  # the test suite's server key is short, on purpose
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return _forge(ours, theirs, b, ch, tid, past)


def _forge(ours: Tokens, theirs: Tokens, b: dict[str, Any], ch: str, tid: str,
           past: float) -> dict[str, str]:
    return {
        "expired_channel": ours.channel_token(ch, tid, now=past),
        "expired_user": ours.user_token(b["conv"]["id"], tid, "u1", now=past),
        "expired_cg": ours.converger_token(ch, tid, b["cg_conv"], now=past),
        "foreign_channel": theirs.channel_token(ch, tid),
        "foreign_user": theirs.user_token(b["conv"]["id"], tid, "u1"),
        "foreign_cg": theirs.converger_token(ch, tid, b["cg_conv"]),
        "unsigned": _unsigned({"channel_id": ch, "tenant_id": tid, "conversation_id": b["conv"]["id"],
                               "type": "converger"}),
    }


def _unsigned(claims: dict[str, Any]) -> str:
    import base64

    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def credentials(world: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Every credential A holds, each token kind in every header it could be tried in, and the
    forged ones."""
    a = world["A"]
    creds: dict[str, dict[str, str]] = {
        "none": {},
        "api_key": {"x-api-key": a["api_key"]},
        "channel_token": {"x-channel-token": a["channel_token"]},
        "user_token": {"x-channel-token": a["user_token"]},
        "cg_token": bearer(a["cg_token"]),
        "cg_conv_token": bearer(a["cg_conv_token"]),
        "channel_secret": bearer(a["web"]["secret"]),
        # the wrong place
        "api_key_as_bearer": bearer(a["api_key"]),
        "api_key_as_channel_token": {"x-channel-token": a["api_key"]},
        "channel_token_as_api_key": {"x-api-key": a["channel_token"]},
        "channel_token_as_bearer": bearer(a["channel_token"]),
        "user_token_as_bearer": bearer(a["user_token"]),
        "cg_token_as_channel_token": {"x-channel-token": a["cg_conv_token"]},
        "secret_as_api_key": {"x-api-key": a["web"]["secret"]},
    }
    for name, token in forged(world).items():
        creds[f"{name}_header"] = {"x-channel-token": token}
        creds[f"{name}_bearer"] = bearer(token)
    return creds


# -- the matrix ------------------------------------------------------------------------------
@dataclass
class Probe:
    """How to call a route with some tenant's ids: ``path`` and ``body`` are templates whose
    ``{name}`` fields are filled from the target (B's ids, or random ones)."""

    method: str
    path: str
    body: Any = None
    multipart: bool = False


def _ids(world: dict[str, Any], who: str) -> dict[str, str]:
    if who == "random":
        r = {k: str(uuid.uuid4()) for k in ("tenant_id", "channel_id", "hook_id", "hook2_id",
                                               "conversation_id", "cg_conversation_id",
                                               "rule_id", "delivery_id", "user_id",
                                               "upload_activity_id", "invite_id")}
        r["file_name"] = f"{uuid.uuid4()}_note.txt"
        return r
    t = world[who]
    return {"tenant_id": t["tenant"]["id"], "channel_id": t["web"]["id"], "hook_id": t["hook"]["id"],
            "hook2_id": t["hook2"]["id"], "conversation_id": t["conv"]["id"],
            "cg_conversation_id": t["cg_conv"], "rule_id": t["rule"]["id"],
            "delivery_id": t["delivery"], "user_id": (t.get("user_ids") or [""])[0],
            "file_name": t["upload_file"], "upload_activity_id": t["upload_activity"],
            "invite_id": t.get("invite_id", "")}


RULE = {"routing_rule": {"name": "x", "source_channel_id": "{hook_id}",
                         "target_channel_ids": ["{hook2_id}"]}}
CV = "/api/v1/converger"
DL = "/v3/directline"

# Tenant-facing routes that take ids: A's credentials on B's ids vs random ids.
MATRIX: dict[tuple[str, str], Probe] = {
    ("POST", "/api/v1/tokens"): Probe("POST", "/api/v1/tokens",
                                      {"conversation_id": "{conversation_id}", "user_id": "u"}),
    ("GET", "/api/v1/conversations/{conversation_id}"):
        Probe("GET", "/api/v1/conversations/{conversation_id}"),
    ("GET", "/api/v1/conversations/{conversation_id}/activities"):
        Probe("GET", "/api/v1/conversations/{conversation_id}/activities?include=deliveries"),
    ("POST", "/api/v1/conversations/{conversation_id}/activities"):
        Probe("POST", "/api/v1/conversations/{conversation_id}/activities", {"text": "intrusion"}),
    ("GET", "/api/v1/routing_rules/{rule_id}"): Probe("GET", "/api/v1/routing_rules/{rule_id}"),
    ("PATCH", "/api/v1/routing_rules/{rule_id}"):
        Probe("PATCH", "/api/v1/routing_rules/{rule_id}", {"routing_rule": {"enabled": False}}),
    ("PUT", "/api/v1/routing_rules/{rule_id}"):
        Probe("PUT", "/api/v1/routing_rules/{rule_id}", {"routing_rule": {"name": "taken"}}),
    ("DELETE", "/api/v1/routing_rules/{rule_id}"): Probe("DELETE", "/api/v1/routing_rules/{rule_id}"),
    ("POST", "/api/v1/routing_rules"): Probe("POST", "/api/v1/routing_rules", RULE),
    ("GET", f"{CV}/conversations/{{conversation_id}}"):
        Probe("GET", f"{CV}/conversations/{{cg_conversation_id}}"),
    ("GET", f"{CV}/conversations/{{conversation_id}}/activities"):
        Probe("GET", f"{CV}/conversations/{{cg_conversation_id}}/activities"),
    ("POST", f"{CV}/conversations/{{conversation_id}}/activities"):
        Probe("POST", f"{CV}/conversations/{{cg_conversation_id}}/activities", {"text": "intrusion"}),
    ("POST", f"{CV}/conversations/{{conversation_id}}/upload"):
        Probe("POST", f"{CV}/conversations/{{cg_conversation_id}}/upload", multipart=True),
    ("GET", "/uploads/{tenant_id}/{file_name}"): Probe("GET", "/uploads/{tenant_id}/{file_name}"),
    ("POST", "/api/v1/conversations/{conversation_id}/activities/{activity_id}/attachments/"
             "{index}/fetch"):
        Probe("POST", "/api/v1/conversations/{cg_conversation_id}/activities/"
                      "{upload_activity_id}/attachments/0/fetch", {}),
    # Direct Line 3.0 (docs/directline.md): its own error shape, 403 for a token of another
    # conversation, 404 for a conversation not on the caller's channel — the same for B's
    # conversation as for one that does not exist.
    ("GET", f"{DL}/conversations/{{conversation_id}}"):
        Probe("GET", f"{DL}/conversations/{{cg_conversation_id}}"),
    ("GET", f"{DL}/conversations/{{conversation_id}}/activities"):
        Probe("GET", f"{DL}/conversations/{{cg_conversation_id}}/activities"),
    ("POST", f"{DL}/conversations/{{conversation_id}}/activities"):
        Probe("POST", f"{DL}/conversations/{{cg_conversation_id}}/activities",
              {"type": "message", "text": "intrusion"}),
    ("POST", f"{DL}/conversations/{{conversation_id}}/upload"):
        Probe("POST", f"{DL}/conversations/{{cg_conversation_id}}/upload", multipart=True),
    # Analytics (docs/analytics.md): B's channel answers as a channel that does not exist.
    ("GET", "/api/v1/analytics"): Probe("GET", "/api/v1/analytics?range=30d&channel_id={hook_id}"),
    ("GET", "/api/v1/analytics/export.csv"):
        Probe("GET", "/api/v1/analytics/export.csv?range=1d&channel_id={channel_id}"),
}

# Tenant-facing routes without ids: wrong and forged credentials are refused, and the answer
# to A's own credentials names nothing of B's.
NO_ID: dict[tuple[str, str], Probe] = {
    ("POST", "/api/v1/conversations"): Probe("POST", "/api/v1/conversations", {}),
    ("GET", "/api/v1/routing_rules"): Probe("GET", "/api/v1/routing_rules"),
    ("POST", f"{CV}/tokens/generate"): Probe("POST", f"{CV}/tokens/generate"),
    ("POST", f"{CV}/tokens/refresh"): Probe("POST", f"{CV}/tokens/refresh"),
    ("POST", f"{CV}/conversations"): Probe("POST", f"{CV}/conversations"),
    ("POST", f"{DL}/tokens/generate"): Probe("POST", f"{DL}/tokens/generate"),
    ("POST", f"{DL}/tokens/refresh"): Probe("POST", f"{DL}/tokens/refresh"),
    ("POST", f"{DL}/conversations"): Probe("POST", f"{DL}/conversations", {}),
    # A's own analytics, over the whole gateway's traffic: nothing of B's in them.
    ("GET", "/api/v1/analytics"): Probe("GET", "/api/v1/analytics?range=1h"),
    ("GET", "/api/v1/analytics/export.csv"): Probe("GET", "/api/v1/analytics/export.csv"),
}

# Inbound webhooks: no tenant credential, the channel id is the provider-facing address (so
# it is not hidden); B's channels require a signature and A's secret never makes one.
INBOUND = {("GET", "/api/v1/channels/{channel_id}/inbound"),
           ("POST", "/api/v1/channels/{channel_id}/inbound"),
           ("POST", "/api/v1/channels/{channel_id}/status")}

SOCKETS = {("GET", "/socket/websocket"), ("GET", "/socket/converger/websocket"),
           # test_directline_stream: the token is in the URL, refused before the upgrade
           ("GET", f"{DL}/conversations/{{conversation_id}}/stream")}

# Portal pages that take ids: A's portal user on B's ids vs random ids.
PORTAL: dict[tuple[str, str], Probe] = {
    ("GET", "/portal/conversations/{conversation_id}"):
        Probe("GET", "/portal/conversations/{conversation_id}"),
    ("GET", "/portal/conversations/{conversation_id}/timeline.json"):
        Probe("GET", "/portal/conversations/{conversation_id}/timeline.json"),
    ("POST", "/portal/channels/{channel_id}/status"):
        Probe("POST", "/portal/channels/{channel_id}/status", {"status": "inactive"}),
    ("GET", "/portal/channels/{channel_id}"): Probe("GET", "/portal/channels/{channel_id}"),
    ("POST", "/portal/channels/{channel_id}"):
        Probe("POST", "/portal/channels/{channel_id}", {"name": "intrusion", "mode": "duplex"}),
    ("POST", "/portal/channels/{channel_id}/verify_token"):
        Probe("POST", "/portal/channels/{channel_id}/verify_token", {}),
    ("POST", "/portal/channels/{channel_id}/test"):
        Probe("POST", "/portal/channels/{channel_id}/test", {}),
    ("GET", "/portal/deliveries/{delivery_id}"): Probe("GET", "/portal/deliveries/{delivery_id}"),
    ("POST", "/portal/deliveries/{delivery_id}/retry"):
        Probe("POST", "/portal/deliveries/{delivery_id}/retry", {}),
    ("POST", "/portal/deliveries/retry_failed"):
        Probe("POST", "/portal/deliveries/retry_failed", {"channel_id": "{hook2_id}"}),
    ("POST", "/portal/routing_rules/{rule_id}/toggle"):
        Probe("POST", "/portal/routing_rules/{rule_id}/toggle", {}),
    ("POST", "/portal/users/{user_id}/status"):
        Probe("POST", "/portal/users/{user_id}/status", {"status": "inactive"}),
    ("POST", "/portal/users/{user_id}/delete"): Probe("POST", "/portal/users/{user_id}/delete", {}),
    ("POST", "/portal/users/invites/{invite_id}/revoke"):
        Probe("POST", "/portal/users/invites/{invite_id}/revoke", {}),
}
# Portal pages without ids: what they show A names nothing of B's (filters for B included).
PORTAL_LISTS = {
    ("GET", "/portal"): "/portal",
    ("GET", "/portal/channels"): "/portal/channels",
    ("GET", "/portal/conversations"): "/portal/conversations?tenant_id={tenant_id}&channel_id={channel_id}",
    ("GET", "/portal/deliveries"): "/portal/deliveries?tenant_id={tenant_id}&status=pending",
    ("GET", "/portal/routing_rules"): "/portal/routing_rules?tenant_id={tenant_id}",
    ("GET", "/portal/users"): "/portal/users?tenant_id={tenant_id}",
    ("GET", "/portal/tier"): "/portal/tier?tenant_id={tenant_id}",
    ("GET", "/portal/analytics"): "/portal/analytics?range=30d&tenant_id={tenant_id}&channel_id={hook_id}",
    ("GET", "/portal/analytics.json"): "/portal/analytics.json?tenant_id={tenant_id}&channel_id={channel_id}",
    ("GET", "/portal/analytics.csv"): "/portal/analytics.csv?range=1h&tenant_id={tenant_id}&channel_id={hook_id}",
}

OPERATOR = "operator scope: no tenant credential opens it (covered here); what a tenant-scoped " \
           "admin token or user reaches is tests/integration/rbac/test_permissions.py's matrix"
PUBLIC = "public, tenant-free: serves no tenant data"
EXEMPT: dict[tuple[str, str], str] = {
    ("GET", "/livez"): PUBLIC, ("GET", "/readyz"): PUBLIC, ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC, ("GET", "/static/converger.js"): PUBLIC,
    ("GET", "/static/demo.html"): PUBLIC, ("GET", "/ui/static/{name}"): PUBLIC,
    ("GET", "/metrics"): "operator scrape endpoint; test_metrics_name_no_tenant checks it",
    ("GET", "/portal/login"): "the sign-in page itself",
    ("POST", "/portal/login"): "sign-in; test_portal_login_is_per_tenant checks it",
    ("POST", "/portal/logout"): "ends one's own session",
    ("GET", "/portal/health/events"): "an endless event stream of the signed-in user's own tenant "
                                      "(no ids read); test_health_live.py checks another "
                                      "tenant's portal hears none of its changes",
    ("POST", "/portal/users/invites"): "invites into the signed-in user's tenant (no tenant "
                                       "field is read); test_portal_user_create_stays_home "
                                       "checks it",
    ("GET", "/portal/invite/{token}"): "an invitation link: its token is the credential "
                                       "(tests/integration/web/test_invites.py)",
    ("POST", "/portal/invite/{token}"): "an invitation link: its token is the credential "
                                        "(tests/integration/web/test_invites.py)",
    ("GET", "/admin/login"): "the sign-in page itself", ("POST", "/admin/login"): "sign-in",
    ("POST", "/admin/logout"): "ends one's own session",
    ("GET", "/admin/sso/login"): "single sign-on: sends the browser to the identity provider "
                                 "(tests/integration/rbac/test_sso_browser.py)",
    ("GET", "/admin/sso/callback"): "single sign-on's return: this session's state and a "
                                    "verified ID token, or nothing (test_sso_browser.py)",
    ("GET", "/admin/setup/{token}"): "one-time first-admin link, only before any admin exists",
    ("POST", "/admin/setup/{token}"): "one-time first-admin link, only before any admin exists",
}


def served_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir="/nonexistent-isolation", secret_key="k" * 32))
    out = set()
    for route in app.router.routes:
        path = re.sub(r"<([^:>]+)(:[^>]*)?>", r"{\1}", "/" + route.path.lstrip("/"))
        out |= {(m, path) for m in route.methods if m not in ("HEAD", "OPTIONS")}
    return out


def operator_routes(routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {r for r in routes if r[1].startswith(("/api/admin", "/admin")) and r not in EXEMPT}


def test_every_route_is_in_the_matrix() -> None:
    routes = served_routes()
    covered = (set(MATRIX) | set(NO_ID) | INBOUND | SOCKETS | set(PORTAL) | set(PORTAL_LISTS)
               | operator_routes(routes) | set(EXEMPT))
    missing = routes - covered
    assert not missing, f"routes neither in the isolation matrix nor exempt: {sorted(missing)}"
    stale = (set(MATRIX) | set(NO_ID) | INBOUND | SOCKETS | set(PORTAL) | set(PORTAL_LISTS)
             | set(EXEMPT)) - routes
    assert not stale, f"the matrix names routes the app no longer serves: {sorted(stale)}"


# -- calling ---------------------------------------------------------------------------------
def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


async def call(session: aiohttp.ClientSession, base: str, probe: Probe, ids: dict[str, str],
               headers: dict[str, str]) -> tuple[int, str]:
    kw: dict[str, Any] = {"headers": headers, "allow_redirects": False}
    if probe.multipart:
        form = aiohttp.FormData()
        form.add_field("file", b"intrusion", filename="x.txt", content_type="text/plain")
        kw["data"] = form
    elif probe.body is not None:
        kw["json"] = _fill(probe.body, ids)
    async with session.request(probe.method, base + _fill(probe.path, ids), **kw) as r:
        return r.status, await r.text()


def masked(text: str, *id_maps: dict[str, str]) -> str:
    for ids in id_maps:
        for value in ids.values():
            if value:
                text = text.replace(value, "<id>")
    return text


def code_of(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def assert_no_b(text: str, world: dict[str, Any], where: str) -> None:
    b = world["B"]
    secrets = {b["tenant"]["id"], b["web"]["id"], b["hook"]["id"], b["conv"]["id"], b["cg_conv"],
               b["rule"]["id"], b["upload_file"], b["delivery"], b["name"],
               f"secret of {b['name']}", f"outbound of {b['name']}"}
    leaked = sorted(s for s in secrets if s in text)
    assert not leaked, f"{where}: B's data in the answer to A: {leaked}"


@pytest.mark.parametrize("route", sorted(MATRIX), ids=" ".join)
async def test_a_on_b_ids(route: tuple[str, str], world: dict[str, Any],
                          iso_session: aiohttp.ClientSession) -> None:
    """Every credential of A (and every misplaced or forged token) on B's ids answers exactly
    as on ids that do not exist, and never with success."""
    probe, base = MATRIX[route], world["server"].url
    b_ids, none_ids = _ids(world, "B"), _ids(world, "random")
    a_ids = _ids(world, "A")
    for name, headers in credentials(world).items():
        on_b = await call(iso_session, base, probe, {**a_ids, **b_ids}, headers)
        on_none = await call(iso_session, base, probe, {**a_ids, **none_ids}, headers)
        where = f"{route} with {name}"
        assert on_b[0] >= 400, f"{where}: {on_b}"
        assert (on_b[0], code_of(on_b[1])) == (on_none[0], code_of(on_none[1])), \
            f"{where}: B's id answers {on_b}, a missing id {on_none}"
        assert masked(on_b[1], b_ids) == masked(on_none[1], none_ids), f"{where}: bodies differ"
        assert_no_b(on_b[1], world, where)
    # The control: the same probe on A's own ids gets through with some credential of A's, so
    # the refusals above are about whose ids they are, not a broken probe.
    if "{rule_id}" in probe.path:
        a_ids["rule_id"] = (await world["api"].ok(
            "POST", "/api/v1/routing_rules", 201, headers={"x-api-key": world["A"]["api_key"]},
            json={"routing_rule": {"name": f"ctl-{uuid.uuid4()}", "source_channel_id": a_ids["hook_id"],
                                   "target_channel_ids": [a_ids["hook2_id"]]}}))["data"]["id"]
    if probe.body == RULE:
        probe = Probe(probe.method, probe.path, {"routing_rule": {
            **RULE["routing_rule"], "name": f"ctl-{uuid.uuid4()}"}})
    passed = []
    for name, headers in credentials(world).items():
        if (await call(iso_session, base, probe, a_ids, headers))[0] < 400:
            passed.append(name)
    assert passed, f"{route}: no credential of A's works on A's own ids"


@pytest.mark.parametrize("route", sorted(NO_ID), ids=" ".join)
async def test_wrong_tokens_refused(route: tuple[str, str], world: dict[str, Any],
                                    iso_session: aiohttp.ClientSession) -> None:
    probe, base = NO_ID[route], world["server"].url
    accepted = []
    for name, headers in credentials(world).items():
        status, text = await call(iso_session, base, probe, _ids(world, "A"), headers)
        assert_no_b(text, world, f"{route} with {name}")
        if status < 400:
            accepted.append(name)
        if name.startswith(("expired", "foreign", "unsigned")):
            assert status in (400, 401, 403), f"{route} took a forged token {name}: {status} {text}"
    # Only the credential each route is made for gets through.
    allowed = {"POST /api/v1/conversations": {"channel_token"},
               "GET /api/v1/routing_rules": {"api_key", "channel_token"},
               f"POST {CV}/tokens/generate": {"channel_secret"},
               f"POST {CV}/tokens/refresh": {"cg_token", "cg_conv_token"},
               f"POST {CV}/conversations": {"cg_token", "cg_conv_token"},
               # Direct Line takes the channel's secret everywhere, as Azure's does
               f"POST {DL}/tokens/generate": {"channel_secret"},
               f"POST {DL}/tokens/refresh": {"cg_token", "cg_conv_token"},
               f"POST {DL}/conversations": {"channel_secret", "cg_token", "cg_conv_token"},
               "GET /api/v1/analytics": {"api_key"},
               "GET /api/v1/analytics/export.csv": {"api_key"},
               }[" ".join(route)]
    assert set(accepted) == allowed, f"{route}: accepted {accepted}"


async def test_operator_routes_refuse_tenant_credentials(
        world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    """The management API and the admin pages: no tenant credential (nor a portal session)
    gets in."""
    base = world["server"].url
    ids = {**_ids(world, "B"), "token_id": str(uuid.uuid4()), "name": "x", "action": "set_webhook",
           "tier_id": str(uuid.uuid4()), "role_id": str(uuid.uuid4())}
    routes = sorted(operator_routes(served_routes()))
    assert len(routes) > 40
    portal_cookie = {c.key: c.value for c in world["portal"].session.cookie_jar}
    creds = credentials(world)
    for method, path in routes:
        url = base + path.format(**ids)
        for name, headers in creds.items():
            async with iso_session.request(method, url, headers=headers, json={} if method != "GET" else None,
                                           allow_redirects=False) as r:
                text = await r.text()
            _refused(method, path, name, r.status, r.headers, text)
        # A's portal session cookie, sent as the admin session cookie.
        cookies = {"_converger_key": portal_cookie.get("_converger_portal", "")}
        async with iso_session.request(method, url, cookies=cookies, allow_redirects=False,
                                       data={} if method != "GET" else None) as r:
            _refused(method, path, "the portal session", r.status, r.headers, await r.text())


def _refused(method: str, path: str, name: str, status: int, headers: Any, text: str) -> None:
    if path.startswith("/api/admin"):
        assert status == 401, f"{method} {path} with {name}: {status} {text}"
    else:  # a page: to the login page, or 403 (CSRF) for a form post without a session
        assert status in (302, 403), f"{method} {path} with {name}: {status}"
        assert status == 403 or headers["location"].endswith("/admin/login"), (method, path, name)


async def test_inbound_is_not_writable_with_another_tenants_secret(
        world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    base, a, b = world["server"].url, world["A"], world["B"]
    body = json.dumps({"from": "+15550001", "text": "forged", "message_id": "m-1"}).encode()
    for path in ("inbound", "status"):
        for headers in ({}, {"x-converger-signature": converger_signature(a["web"]["secret"], body)},
                        {"x-converger-signature": converger_signature(a["hook"]["secret"], body)}):
            async with iso_session.post(f"{base}/api/v1/channels/{b['hook']['id']}/{path}",
                                        data=body, headers={**headers, "content-type": "application/json"}) as r:
                text = await r.text()
                assert r.status == 401, f"{path} {headers}: {r.status} {text}"
                assert_no_b(text, world, path)
    # The verification challenge of B's channel does not open with A's verify token either.
    async with iso_session.get(f"{base}/api/v1/channels/{b['hook']['id']}/inbound",
                               params={"hub.mode": "subscribe", "hub.challenge": "c",
                                       "hub.verify_token": a["hook"]["secret"]}) as r:
        assert r.status != 200 or (await r.text()) != "c"


async def _join(base_ws: str, session: aiohttp.ClientSession, path: str, token: str,
                topic: str, payload: dict[str, Any]) -> Any:
    try:
        phx = await Phx.connect(session, base_ws, path, token)
    except aiohttp.WSServerHandshakeError as exc:
        return ("refused", exc.status)
    try:
        ref = await phx.send(topic, "phx_join", payload, join_ref="1")
        reply = await phx.reply(ref)
        return ("reply", reply.payload)
    finally:
        await phx.ws.close()


async def test_sockets(world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    """Joining B's conversation topics with any of A's tokens (and forged ones) answers as
    joining a conversation that does not exist; forged tokens do not even connect."""
    base_ws = world["server"].ws_url
    a, b = world["A"], world["B"]
    none = str(uuid.uuid4())
    tokens = {"user_token": a["user_token"], "user_token2": a["user_token2"],
              "channel_token": a["channel_token"], "cg_token": a["cg_token"],
              "cg_conv_token": a["cg_conv_token"], "api_key": a["api_key"],
              "channel_secret": a["web"]["secret"], **forged(world)}
    cases = [("/socket/websocket", "conversation:{}", (b["conv"]["id"], b["hconv"]["id"])),
             ("/socket/converger/websocket", "converger:conversation:{}", (b["cg_conv"],))]
    for path, topic, targets in cases:
        for name, token in tokens.items():
            for target in targets:
                for payload in ({}, {"last_activity_id": b["activity"]["id"]},
                                {"watermark": "0"}):
                    on_b = await _join(base_ws, iso_session, path, token, topic.format(target), payload)
                    on_none = await _join(base_ws, iso_session, path, token, topic.format(none), payload)
                    where = f"{path} {name} {payload}"
                    assert on_b == on_none, f"{where}: B's topic {on_b}, a missing one {on_none}"
                    assert on_b[0] == "refused" or on_b[1].get("status") == "error", where
                    if name.startswith(("expired", "foreign", "unsigned", "api_key", "channel_secret")):
                        assert on_b == ("refused", 403), where


async def test_directline_stream(world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    """Direct Line's stream (the token in the URL, checked before the upgrade): every token of
    A's, and forged ones, on B's conversation — with or without a watermark of B's — is refused
    exactly as on a conversation that does not exist; a watermark of B's on A's own
    conversation as one that names nothing. The control: A's own conversation opens."""
    base, a, b = world["server"].url, world["A"], world["B"]
    none, a_conv = str(uuid.uuid4()), a["cg_conv"]
    b_wm, none_wm = encode_watermark(b["activity"]["id"]), encode_watermark(str(uuid.uuid4()))
    tokens = {"cg_token": a["cg_token"], "cg_conv_token": a["cg_conv_token"],
              "user_token": a["user_token"], "channel_token": a["channel_token"],
              "api_key": a["api_key"], "channel_secret": a["web"]["secret"], **forged(world)}

    async def answer(conv: str, wm: str | None, token: str) -> tuple[int, str]:
        params = {"t": token, **({"watermark": wm} if wm else {})}
        async with iso_session.get(f"{base}{DL}/conversations/{conv}/stream", params=params,
                                   allow_redirects=False) as r:
            return r.status, masked(await r.text(), {"c": conv, "w": wm or ""})

    for name, token in tokens.items():
        cases = [((b["cg_conv"], None), (none, None)), ((b["cg_conv"], b_wm), (none, none_wm)),
                 ((a_conv, b_wm), (a_conv, none_wm))]
        for on_b_args, on_none_args in cases:
            on_b, on_none = await answer(*on_b_args, token), await answer(*on_none_args, token)
            where = f"stream with {name} {on_b_args}"
            assert on_b == on_none, f"{where}: B's {on_b}, a missing one {on_none}"
            assert on_b[0] in (400, 403, 404), where
            assert_no_b(on_b[1], world, where)
    async with iso_session.ws_connect(f"{world['server'].ws_url}{DL}/conversations/{a_conv}/stream",
                                      params={"t": a["cg_conv_token"]}) as ws:
        assert not ws.closed


async def test_live_pushes_stay_in_their_tenant(world: dict[str, Any],
                                               iso_session: aiohttp.ClientSession) -> None:
    """A, joined to its own conversations on both sockets, hears its own new activity and
    nothing of what B posts meanwhile."""
    base_ws, a, b, api = world["server"].ws_url, world["A"], world["B"], world["api"]
    # B posts below: first check that nothing before this test changed B's data.
    assert snapshot(world["server"], b["tenant"]["id"]) == world["snapshot"]
    legacy = await Phx.connect(iso_session, base_ws, "/socket/websocket", a["user_token"])
    cg = await Phx.connect(iso_session, base_ws, "/socket/converger/websocket", a["cg_conv_token"])
    try:
        for phx, topic in ((legacy, f"conversation:{a['conv']['id']}"),
                           (cg, f"converger:conversation:{a['cg_conv']}")):
            reply = await phx.reply(await phx.send(topic, "phx_join", {}, join_ref="1"))
            assert reply.payload["status"] == "ok", reply
        await api.post_activity(b["conv"]["id"], b["api_key"], text=f"secret of {b['name']} live")
        await api.ok("POST", f"{CV}/conversations/{b['cg_conv']}/activities",
                      headers=bearer(b["cg_conv_token"]), json={"text": f"secret of {b['name']} cg"})
        await api.post_activity(a["conv"]["id"], a["api_key"], text="mine, legacy")
        await api.ok("POST", f"{CV}/conversations/{a['cg_conv']}/activities",
                      headers=bearer(a["cg_conv_token"]), json={"text": "mine, cg"})
        for phx, mine in ((legacy, "mine, legacy"), (cg, "mine, cg")):
            await phx.expect(lambda f, m=mine: m in json.dumps(f.payload))
            for frame in phx.inbox + [f for f in phx.raw]:
                assert_no_b(json.dumps(frame.payload) if isinstance(frame, Frame) else frame,
                            world, "live push")
    finally:
        await legacy.ws.close()
        await cg.ws.close()
    # B's rows changed here by B itself: take them into the final comparison.
    world["snapshot"] = snapshot(world["server"], b["tenant"]["id"])


async def test_portal_on_b_ids(world: dict[str, Any]) -> None:
    """A's portal user on B's ids: the same status, redirect, page and flash message as on
    ids that do not exist. The control: on A's own ids the answer differs (the action ran)."""
    portal, b_ids, none_ids = world["portal"], _ids(world, "B"), _ids(world, "random")
    a_ids = _ids(world, "A")

    async def answer(probe: Probe, ids: dict[str, str]) -> tuple[Any, ...]:
        path = _fill(probe.path, {**a_ids, **ids})
        if probe.method == "GET":
            status, body, headers = await portal.get(path)
        else:
            status, body, headers = await portal.post(path, _fill(probe.body, {**a_ids, **ids}))
        # The flash message (kept in the session) is what the next page shows.
        _, page, _ = await portal.get("/portal/channels")
        flash = re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', page)
        return status, headers.get("location"), masked(body, ids), flash

    for route, probe in sorted(PORTAL.items()):
        on_b, on_none = await answer(probe, b_ids), await answer(probe, none_ids)
        assert_no_b(on_b[2], world, f"{route}")
        assert on_b == on_none, f"{route}: B's id {on_b}, a missing id {on_none}"
        assert on_b[0] in (302, 404), f"{route}: {on_b}"
        settle_deliveries(world["server"], a_ids["tenant_id"])
        own = {k: v for k, v in a_ids.items() if k != "user_id"}
        # delete: the viewer; status: the signed-in owner (refused for oneself, differently)
        own["user_id"] = world["A"]["user_ids"][-1 if "delete" in route[1] else 0]
        on_a = await answer(probe, own)
        assert masked(str(on_a), own) != masked(str(on_none), none_ids), \
            f"{route}: A's own id answers like a missing one: {on_a}"
    # Undo what the controls changed of A's that later tests use.
    await portal.post(f"/portal/channels/{a_ids['channel_id']}/status", {"status": "active"})
    await portal.post(f"/portal/routing_rules/{a_ids['rule_id']}/toggle", {})


async def test_portal_lists_show_nothing_of_b(world: dict[str, Any]) -> None:
    portal, b_ids = world["portal"], _ids(world, "B")
    for route, path in sorted(PORTAL_LISTS.items()):
        status, body, _ = await portal.get(_fill(path, b_ids))
        assert status == 200, f"{route}: {status}"
        # Filter links repeat the query as given: B's ids the request itself carried.
        for key in ("tenant_id", "channel_id"):
            body = body.replace(f"{key}={b_ids[key]}", "")
        assert world["A"]["name"] in body or route[1] != "/portal"
        assert_no_b(body, world, f"{route}")


async def test_portal_user_create_stays_home(world: dict[str, Any]) -> None:
    portal, b = world["portal"], world["B"]
    await portal.get("/portal/users")
    await portal.post("/portal/users/invites", {"tenant_id": b["tenant"]["id"],
                                                "email": "new@a.example", "role": "member"})
    with open_database(world["server"].data_dir) as conn:
        row = conn.execute("SELECT tenant_id FROM tenant_invites WHERE email = ?",
                           ("new@a.example",)).fetchone()
    assert row == (world["A"]["tenant"]["id"],)


async def test_portal_login_is_per_tenant(world: dict[str, Any]) -> None:
    """A's user's e-mail and password do not sign in under B's tenant name."""
    c = Client(world["server"].url)
    try:
        assert await c.login(world["A"]["email"], PORTAL_PASSWORD, "portal",
                             tenant=world["B"]["name"]) == 401
    finally:
        await c.close()


async def test_metrics_name_no_tenant(world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    async with iso_session.get(world["server"].url + "/metrics") as r:
        text = await r.text()
    assert_no_b(text, world, "/metrics")


async def test_uploads_with_query_tokens(world: dict[str, Any],
                                         iso_session: aiohttp.ClientSession) -> None:
    """``?token=`` (for <img src>): none of A's tokens, nor forged ones, read B's file; the
    answer equals the one for a file that does not exist."""
    base, a, b = world["server"].url, world["A"], world["B"]
    missing = f"/uploads/{b['tenant']['id']}/{uuid.uuid4()}_note.txt"
    tokens = [a["user_token"], a["channel_token"], a["cg_token"], a["cg_conv_token"],
              *forged(world).values()]
    for token in tokens:
        answers = []
        for path in (b["upload_url"], missing):
            async with iso_session.get(base + path, params={"token": token}) as r:
                answers.append((r.status, code_of(await r.text())))
        assert answers[0] == answers[1] and answers[0][0] >= 400, answers
    # B's own conversation token does read it (the probe above is not vacuous).
    async with iso_session.get(base + b["upload_url"], headers=bearer(b["cg_conv_token"])) as r:
        assert r.status == 200 and (await r.read()).startswith(b"private bytes")


async def test_conversation_tokens_reach_only_their_conversation(
        world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    """Within A: a token scoped to one conversation, on another conversation of the same
    channel, answers as a conversation that does not exist (or is refused outright); and it
    is never a channel token (it mints no tokens and creates no conversations)."""
    base, a = world["server"].url, world["A"]
    none = str(uuid.uuid4())
    scoped = {"user_token2": {"x-channel-token": a["user_token2"]},
              "cg_conv_token_as_channel_token": {"x-channel-token": a["cg_conv_token"]}}
    for name, headers in scoped.items():
        for path in ("/api/v1/conversations/{}", "/api/v1/conversations/{}/activities"):
            answers = []
            for target in (a["conv"]["id"], none):
                async with iso_session.get(base + path.format(target), headers=headers) as r:
                    answers.append((r.status, code_of(await r.text())))
            assert answers[0] == answers[1] == (404, "not_found"), (name, path, answers)
        async with iso_session.post(base + "/api/v1/tokens", headers=headers,
                                    json={"conversation_id": a["conv"]["id"], "user_id": "x"}) as r:
            assert r.status in (401, 403), (name, r.status, await r.text())
        async with iso_session.post(base + "/api/v1/conversations", headers=headers, json={}) as r:
            assert r.status in (401, 403), (name, r.status, await r.text())
    # The Converger API: a scoped token on another conversation of its channel is 403, and
    # the same 403 as for a conversation that does not exist.
    other = await world["api"].ok("POST", f"{CV}/conversations", 201, headers=bearer(a["cg_token"]))
    for path in (f"{CV}/conversations/{{}}", f"{CV}/conversations/{{}}/activities"):
        answers = []
        for target in (other["conversationId"], none):
            async with iso_session.get(base + path.format(target),
                                       headers=bearer(a["cg_conv_token"])) as r:
                answers.append((r.status, code_of(await r.text())))
        assert answers[0] == answers[1] == (403, "out_of_scope"), (path, answers)
    # A channel's Converger token on a conversation of another channel of the same tenant:
    # as if it did not exist, over REST and on the socket.
    for path in (f"{CV}/conversations/{{}}", f"{CV}/conversations/{{}}/activities"):
        answers = []
        for target in (a["hconv"]["id"], none):
            async with iso_session.get(base + path.format(target), headers=bearer(a["cg_token"])) as r:
                answers.append((r.status, code_of(await r.text())))
        assert answers[0] == answers[1] == (404, "not_found"), (path, answers)
    joins = [await _join(world["server"].ws_url, iso_session, "/socket/converger/websocket",
                         a["cg_token"], f"converger:conversation:{target}", {})
             for target in (a["hconv"]["id"], none)]
    assert joins[0] == joins[1] and joins[0][1]["status"] == "error", joins


async def test_receipts_on_own_channel_do_not_reach_b(
        world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    """A receipt A sends, properly signed, on its own channel, naming B's delivery (by id or
    provider message id) is processed as one naming nothing."""
    base, a, b = world["server"].url, world["A"], world["B"]
    for path in ("status", "inbound"):
        for key in ("delivery_id", "provider_message_id"):
            answers = []
            for target in (b["delivery"], str(uuid.uuid4())):
                body = json.dumps({key: target, "status": "delivered"}).encode()
                sig = converger_signature(a["hook"]["secret"], body)
                async with iso_session.post(f"{base}/api/v1/channels/{a['hook']['id']}/{path}",
                                            data=body, headers={"x-converger-signature": sig}) as r:
                    answers.append((r.status, await r.text()))
            assert answers[0] == answers[1], (path, key, answers)
            assert answers[0][0] == 200 and '"receipts_processed":0' in answers[0][1], answers


async def test_inbound_on_own_channel_cannot_name_b_conversations(
        world: dict[str, Any], iso_session: aiohttp.ClientSession) -> None:
    """An inbound message A signs on its own channel, naming B's conversation, is answered as
    one naming a conversation that does not exist, and adds nothing to B's."""
    base, a, b = world["server"].url, world["A"], world["B"]
    answers = []
    for target in (b["conv"]["id"], str(uuid.uuid4())):
        body = json.dumps({"conversation_id": target, "text": "into B?", "from": "x"}).encode()
        sig = converger_signature(a["hook"]["secret"], body)
        async with iso_session.post(f"{base}/api/v1/channels/{a['hook']['id']}/inbound", data=body,
                                    headers={"x-converger-signature": sig}) as r:
            answers.append((r.status, masked(await r.text(), {"t": target})))
    assert answers[0] == answers[1] and answers[0][0] == 404, answers


def test_b_is_unchanged(world: dict[str, Any]) -> None:
    """Runs last in this module (pytest keeps file order): B's stored data is as it was."""
    assert snapshot(world["server"], world["B"]["tenant"]["id"]) == world["snapshot"]

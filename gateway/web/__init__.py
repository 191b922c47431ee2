"""The server-rendered web pages: the admin panel (``/admin``) and the tenant portal
(``/portal``). ``install(app)`` wires them in: guards that run before any page logic, the
blueprints, static files and the one-time setup link."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Awaitable

from sanic import Request, Sanic
from sanic.response import HTTPResponse, raw, redirect, text

from store import users

from . import kit, security

GUARDED = ("/admin", "/portal")


def install(app: Sanic) -> None:
    from ..crypto import secret_key
    from .pages import ADMIN, PORTAL, signin

    settings = app.ctx.settings
    app.ctx.web = kit.WebState(
        env=kit.make_env(),
        sessions=security.Sessions(secret_key(settings), settings.session_lifetime),
        limiter=security.LoginLimiter(per_ip=settings.login_fail_per_ip,
                                      total=settings.login_fail_total),
        allow=security.parse_networks(settings.admin_ip_whitelist),
        proxies=security.parse_networks(settings.trusted_proxies),
        static=kit.load_static(),
        passwords=security.PasswordChecks(settings.login_hash_threads, settings.login_hash_queue),
    )
    if settings.oidc_issuer:
        from ..sso import Sso, SsoConfig, parse_role_map

        base = settings.public_url.rstrip("/") or f"http://{settings.host}:{settings.port}"
        app.ctx.web.sso = Sso(SsoConfig(
            issuer=settings.oidc_issuer, client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret, groups_claim=settings.oidc_groups_claim,
            scopes=settings.oidc_scopes, grants=parse_role_map(settings.oidc_role_map)),
            redirect_uri=f"{base}/admin/sso/callback")
    app.ctx.web.env.globals.update(sso_enabled=bool(settings.oidc_issuer),
                                   local_passwords=settings.local_passwords)
    app.blueprint(ADMIN)
    app.blueprint(PORTAL)

    @app.ctx.hooks.request(priority=90)
    def _guard(request: Request) -> HTTPResponse | Awaitable[HTTPResponse | None] | None:
        path = request.path
        if path == "/admin" or path.startswith("/admin/"):
            web = app.ctx.web
            # The allowlist comes first: outside it nothing else runs, not even the session.
            if not security.within(security.client_ip(request, web.proxies), web.allow):
                return text("Forbidden", status=403)
            return signin.admin_guard(request)  # awaited by the hooks' runner
        if path == "/portal" or path.startswith("/portal/"):
            return signin.portal_guard(request)
        return None

    @app.ctx.hooks.response(priority=90)
    def _save(request: Request, response: HTTPResponse) -> None:
        kit.write_session(request, response)

    @app.get("/ui/static/<name>", name="web_static")
    async def static(request: Request, name: str) -> HTTPResponse:
        item = app.ctx.web.static.get(name)
        if item is None:
            return text("Not Found", status=404)
        return raw(item[0], content_type=item[1], headers={
            "cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"})

    @app.get("/favicon.ico", name="web_favicon")
    async def favicon(request: Request) -> HTTPResponse:
        return redirect("/ui/static/favicon.svg", status=301)

    @app.before_server_stop
    async def _end_streams(app: Sanic) -> None:
        # An open page's event stream would hold the graceful shutdown for its whole timeout.
        for stream in list(app.ctx.web.streams):
            stream.end()

    @app.after_server_start
    async def _setup_link(app: Sanic) -> None:
        if await app.ctx.db.read(users.count_admins) == 0:
            # With several worker processes the supervisor made one token for all of them
            # (any process may answer the link), and only the first prints it.
            token = os.environ.get("CONVERGER_SETUP_TOKEN") or secrets.token_urlsafe(24)
            app.ctx.web.setup_token = token
            cluster = app.ctx.cluster
            if cluster is not None and cluster.slot != 0:
                return
            base = settings.public_url.rstrip("/") or f"http://{settings.host}:{settings.port}"
            # Printed, not logged: it is a credential, valid once, for whoever runs the server.
            # A plain block of its own, set apart from the JSON log lines around it.
            rule = "=" * 72
            print(f"\n{rule}\nNo admin user yet. Create the first one with this link (valid "
                  f"once):\n\n    {base}/admin/setup/{token}\n\n{rule}\n", file=sys.stdout,
                  flush=True)

"""Signing in and out, in both areas: the guards that run before every page (session, CSRF,
who is signed in, what a viewer may not do), login and logout, and the one-time setup link that
creates the first super admin.

Admins sign in with e-mail and password. A tenant's users sign in with their tenant's slug (its
unique sign-in name, ``store.tenants.slugify``), e-mail and password; the tenant's name works too
while it names one tenant with that e-mail (docs/admin.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect, text

from store import tenants, users, web_sessions
from store.util import iso, utcnow

from ...domain import Actor, ValidationFailed, authz
from .. import kit, security
from ..kit import flash, form, render
from . import ADMIN, PORTAL, both
from .users import create_admin

ADMIN_PUBLIC = ("/admin/login", "/admin/setup/", "/admin/sso/")


# -- guards -------------------------------------------------------------------------------------
async def admin_guard(request: Request) -> HTTPResponse | None:
    """Session, CSRF and role checks for every /admin request (after the allowlist)."""
    sess = kit.open_session(request, "admin")
    if (refused := kit.check_csrf(request)) is not None:
        return refused
    kit.signed_in(request, None)
    uid = sess.get("uid")
    if uid:
        now = request.app.ctx.now_iso()

        def read_admin(conn: Any) -> Any:
            # The cookie's session must still exist server-side (logout deletes it).
            if not web_sessions.valid(conn, sess.get("sid"), "admin", uid, now):
                return None
            user = users.get_admin(conn, uid)
            return (user, authz.role_permissions(conn, user.role)) if user else None

        found = await request.app.ctx.db.read(read_admin)
        user = found[0] if found else None
        if user is not None and user.status == "active":
            kit.signed_in(request, user)
            request.ctx.principal = authz.principal(request.ctx.actor, user.role, found[1],
                                                    user.tenant_scope)
        else:  # deactivated or deleted: logged out
            kit.replace_session(request, {})
    if any(request.path.startswith(p) for p in ADMIN_PUBLIC):
        return None
    if request.ctx.user is None:
        flash(request, "You must log in to access this page.", "error")
        return redirect("/admin/login")
    return await kit.authorize_route(request)


async def portal_guard(request: Request) -> HTTPResponse | None:
    """Session, CSRF and role checks for every /portal request: a user of an active tenant."""
    sess = kit.open_session(request, "portal")
    if (refused := kit.check_csrf(request)) is not None:
        return refused
    kit.signed_in(request, None)
    request.ctx.tenant = None
    uid = sess.get("uid")
    if uid:
        now = request.app.ctx.now_iso()

        def read(conn: Any) -> tuple[Any, Any]:
            if not web_sessions.valid(conn, sess.get("sid"), "portal", uid, now):
                return None, None  # logged out (or never logged in) server-side
            user = users.get_tenant_user(conn, uid)
            return user, tenants.get(conn, user.tenant_id) if user else None

        user, tenant = await request.app.ctx.db.read(read)
        if user and user.status == "active" and tenant and tenant.status == "active":
            kit.signed_in(request, user)
            request.ctx.tenant = tenant
            request.ctx.principal = authz.principal(
                request.ctx.actor, user.role, authz.PORTAL.get(user.role, ()), [tenant.id])
        else:
            kit.replace_session(request, {})
    if request.path == "/portal/login" or request.path.startswith("/portal/invite/"):
        return None  # signing in, or an invitation link (its token is the credential)
    if request.ctx.user is None:
        flash(request, "You must log in to access this page.", "error")
        return redirect("/portal/login")
    return await kit.authorize_route(request)


# -- login and logout ---------------------------------------------------------------------------
async def _finish_login(request: Request, found: Any, password: str, *, ip: str, key: str,
                        template: str, home: str, bad: str, **context: Any) -> HTTPResponse:
    """The end of a login in either area: ``found`` is ``(user, hash)`` or None. The password
    is checked first (argon2, off the loop, also when there is no user, so timing does not
    tell), and only a right password learns that the account is disabled."""
    web = kit.state(request)
    # Bounded: its own threads and a short queue (security.PasswordChecks), not the shared pool.
    ok = await web.passwords.verify(found[1] if found else None, password)
    if ok is None:
        flash(request, "Too many logins at once. Try again in a moment.", "error")
        return render(request, template, status=503, **context)
    if not ok or found is None:
        web.limiter.failed(ip, key)
        flash(request, bad, "error")
        return render(request, template, status=401, **context)
    if found[0].status != "active":
        flash(request, "Your account has been deactivated.", "error")
        return render(request, template, status=401, **context)
    web.limiter.succeeded(ip, key)
    await sign_in(request, home.strip("/"), found[0].id)
    flash(request, f"Welcome back, {found[0].name}!")
    return redirect(home)


def _too_many(request: Request, ip: str, key: str, template: str,
              **context: Any) -> HTTPResponse | None:
    if kit.state(request).limiter.blocked(ip, key):
        flash(request, "Too many failed attempts. Try again in a few minutes.", "error")
        return render(request, template, status=429, **context)
    return None


@both("/login", "login_page")
async def login_page(request: Request) -> HTTPResponse:
    area = request.ctx.area
    if request.ctx.user is not None:
        return redirect(f"/{area}")
    return render(request, f"{area}/login.html")


@ADMIN.post("/login", name="admin_login")
async def admin_login(request: Request) -> HTTPResponse:
    email, password = form(request, "email").lower(), form(request, "password")
    if not request.app.ctx.settings.local_passwords:  # single sign-on only
        flash(request, "Local passwords are turned off: sign in with single sign-on.", "error")
        return render(request, "admin/login.html", status=403)
    ip = security.client_ip(request, kit.state(request).proxies)
    if (refused := _too_many(request, ip, email, "admin/login.html", email=email)) is not None:
        return refused
    found = await request.app.ctx.db.read(users.admin_login_row, email)
    return await _finish_login(request, found, password, ip=ip, key=email,
                               template="admin/login.html", home="/admin",
                               bad="Invalid email or password.", email=email)


@PORTAL.post("/login", name="portal_login")
async def portal_login(request: Request) -> HTTPResponse:
    tenant_name, email = form(request, "tenant"), form(request, "email").lower()
    password = form(request, "password")
    ip = security.client_ip(request, kit.state(request).proxies)
    key = f"{tenant_name}\x00{email}"
    values = {"tenant": tenant_name, "email": email}
    if (refused := _too_many(request, ip, key, "portal/login.html", values=values)) is not None:
        return refused

    def read(conn: Any) -> Any:
        # The tenant whose slug was typed, else the one of that name whose user has this
        # e-mail; two of that name with it are ambiguous, refused alike: the slug tells them
        # apart.
        for group in tenants.for_sign_in(conn, tenant_name):
            rows = [row for t in group
                    if (row := users.tenant_login_row(conn, t.id, email)) is not None]
            if rows:
                return rows[0] if len(rows) == 1 else None
        return None

    found = await request.app.ctx.db.read(read)
    return await _finish_login(request, found, password, ip=ip, key=key,
                               template="portal/login.html", home="/portal",
                               bad="Invalid tenant, email, or password.", values=values)


async def sign_in(request: Request, area: str, user_id: str) -> None:
    """A new session: a row server-side (store.web_sessions), named by the signed cookie."""
    ctx = request.app.ctx
    expires = iso(utcnow() + timedelta(seconds=kit.state(request).sessions.lifetime))
    sid = await ctx.db.write(web_sessions.create, area, user_id, expires, ctx.now_iso())
    kit.replace_session(request, {"uid": user_id, "sid": sid})


@both("/logout", "logout", ("POST",))
async def logout(request: Request) -> HTTPResponse:
    sid = request.ctx.session.get("sid")
    if sid is not None:  # the cookie dies with its row, even if someone kept a copy
        await request.app.ctx.db.write(web_sessions.delete, sid)
    kit.replace_session(request, {})
    flash(request, "Logged out successfully.")
    return redirect(f"/{request.ctx.area}/login")


# -- the first admin ----------------------------------------------------------------------------
async def _setup_valid(request: Request, token: str) -> bool:
    """The link works until the first admin exists, however that admin was made (this link,
    ``converger admin create``, the API): checked against the database on every use."""
    web = kit.state(request)
    if web.setup_token and await request.app.ctx.db.read(users.count_admins):
        web.setup_token = None  # dead for good
    expected = web.setup_token
    return bool(expected) and security.csrf_ok({"csrf": expected}, token)


@ADMIN.get("/setup/<token>")
async def setup_page(request: Request, token: str) -> HTTPResponse:
    if not await _setup_valid(request, token):
        return text("This setup link is not valid (it works once).", status=404)
    return render(request, "admin/setup.html", token=token)


@ADMIN.post("/setup/<token>")
async def setup(request: Request, token: str) -> HTTPResponse:
    if not await _setup_valid(request, token):
        return text("This setup link is not valid (it works once).", status=404)
    web = kit.state(request)
    web.setup_token = None  # taken before the first await: two racing posts cannot both use it
    if await request.app.ctx.db.read(users.count_admins) > 0:  # used in another worker process
        return text("This setup link is not valid (it works once).", status=404)
    try:
        user = await create_admin(request, form(request, "email"), form(request, "name"),
                                  form(request, "password"), "super_admin", Actor("system", "setup"))
    except ValidationFailed as exc:
        web.setup_token = token  # not used up by a form with mistakes
        return render(request, "admin/setup.html", status=422, token=token, errors=exc.fields)
    await sign_in(request, "admin", user.id)
    flash(request, f"Welcome, {user.name}! You are the first super admin.")
    return redirect("/admin")

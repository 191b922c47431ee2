"""The admin panel's core pages: sign-in (login, logout, first-admin setup), the dashboard,
tenants and channels. Tenant and channel changes go through ``gateway.domain`` (validation,
encryption, audit) with the signed-in admin as the actor."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect, text

import adapters
from store import alerts, channels, dashboard, tenants, users

from .. import domain, errors
from . import common, sessions
from .common import arg, back, flash, form, render

bp = Blueprint("web_admin", url_prefix="/admin")

PUBLIC = ("/admin/login", "/admin/setup/")
# Config inputs per channel type: (key, label, secret?, required?). Secret inputs are
# password fields and the values are never rendered back.
CONFIG_FIELDS: dict[str, list[tuple[str, str, bool, bool]]] = {
    "webhook": [("url", "Webhook URL", False, True), ("method", "HTTP method", False, False)],
    "whatsapp_meta": [("phone_number_id", "Phone number id", False, True),
                      ("access_token", "Access token", True, True),
                      ("verify_token", "Verify token", True, True),
                      ("app_secret", "App secret (signature check)", True, False)],
    "whatsapp_infobip": [("base_url", "Base URL", False, True), ("api_key", "API key", True, True),
                         ("sender", "Sender number", False, True),
                         ("webhook_username", "Webhook Basic user (optional)", False, False),
                         ("webhook_password", "Webhook Basic password (optional)", True, False)],
}


def actor(request: Request) -> tuple[str, str]:
    return ("admin", request.ctx.user.email)


async def guard(request: Request) -> HTTPResponse | None:
    """Session, CSRF and role checks for every /admin request (after the allowlist)."""
    sess = common.open_session(request, "admin")
    if (refused := common.check_csrf(request)) is not None:
        return refused
    request.ctx.user = None
    uid = sess.get("uid")
    if uid:
        user = await request.app.ctx.db.read(users.get_admin, uid)
        if user is not None and user.status == "active":
            request.ctx.user = user
        else:  # deactivated or deleted: logged out
            common.replace_session(request, {})
    if any(request.path.startswith(p) for p in PUBLIC):
        return None
    if request.ctx.user is None:
        flash(request, "You must log in to access this page.", "error")
        return redirect("/admin/login")
    if (request.method == "POST" and request.ctx.user.role == "viewer"
            and request.path != "/admin/logout"):
        return text("Forbidden: viewers cannot change anything", status=403)
    return None


def super_only(request: Request) -> HTTPResponse | None:
    if request.ctx.user.role != "super_admin":
        return text("Forbidden: only a super admin can do this", status=403)
    return None


# -- sign-in ------------------------------------------------------------------------------------
@bp.get("/login")
async def login_page(request: Request) -> HTTPResponse:
    if request.ctx.user is not None:
        return redirect("/admin")
    return render(request, "admin/login.html")


@bp.post("/login")
async def login(request: Request) -> HTTPResponse:
    web = common.state(request)
    email, password = form(request, "email").lower(), form(request, "password")
    ip = sessions.client_ip(request, web.proxies)
    if web.limiter.blocked(ip, email):
        flash(request, "Too many failed attempts. Try again in a few minutes.", "error")
        return render(request, "admin/login.html", status=429, email=email)
    found = await request.app.ctx.db.read(users.admin_login_row, email)
    return await common.finish_login(request, found, password, ip=ip, key=email,
                                     template="admin/login.html", home="/admin",
                                     bad="Invalid email or password.", email=email)


@bp.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    common.replace_session(request, {})
    flash(request, "Logged out successfully.")
    return redirect("/admin/login")


def _setup_valid(request: Request, token: str) -> bool:
    expected = common.state(request).setup_token
    return bool(expected) and sessions.csrf_ok({"csrf": expected}, token)


@bp.get("/setup/<token>")
async def setup_page(request: Request, token: str) -> HTTPResponse:
    if not _setup_valid(request, token):
        return text("This setup link is not valid (it works once).", status=404)
    return render(request, "admin/setup.html", token=token)


@bp.post("/setup/<token>")
async def setup(request: Request, token: str) -> HTTPResponse:
    if not _setup_valid(request, token):
        return text("This setup link is not valid (it works once).", status=404)
    web = common.state(request)
    web.setup_token = None  # taken before the first await: two racing posts cannot both use it
    try:
        user = await create_admin(request, form(request, "email"), form(request, "name"),
                                  form(request, "password"), "super_admin", ("system", "setup"))
    except errors.ApiError as exc:
        web.setup_token = token  # not used up by a form with mistakes
        return render(request, "admin/setup.html", status=422, token=token,
                      errors=exc.legacy.get("errors", {}))
    common.replace_session(request, {"uid": user.id})
    flash(request, f"Welcome, {user.name}! You are the first super admin.")
    return redirect("/admin")


async def create_admin(request: Request, email: str, name: str, password: str, role: str,
                       who: tuple[str, str]) -> users.AdminUser:
    from . import accounts

    password_hash = await asyncio.to_thread(sessions.hash_password, password) if password else ""
    return await request.app.ctx.db.write(
        accounts.create_admin_tx, email, name, password, password_hash, role, who,
        request.app.ctx.now_iso())


# -- dashboard --------------------------------------------------------------------------------
def _alert_change(body: str) -> tuple[str, str]:
    """``(previous, new)`` health status of an alert's JSON body."""
    try:
        data = json.loads(body)
        return str(data.get("previous_status") or "unknown"), str(data.get("new_status") or "unknown")
    except (ValueError, AttributeError):
        return "unknown", "unknown"


@bp.get("")
async def dashboard_page(request: Request) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any]:
        counts = dashboard.counts(conn)
        health = dashboard.latest_health(conn)
        external = [c for c in channels.list_page(conn, status="active", limit=500)[0]
                    if c.type in adapters.DELIVERING_TYPES]
        recent = alerts.list_page(conn, limit=10)[0]
        names = dashboard.names(conn, "tenants", {c.tenant_id for c in external}
                                | {a.tenant_id for a in recent})
        channel_names = dashboard.names(conn, "channels", {a.channel_id for a in recent})
        return {"counts": counts, "health": health, "external": external, "tenant_names": names,
                "alerts": [(a, _alert_change(a.body)) for a in recent],
                "channel_names": channel_names}

    return render(request, "admin/dashboard.html", **await request.app.ctx.db.read(read))


# -- tenants ----------------------------------------------------------------------------------
async def _tenants_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    try:
        items, nxt = await request.app.ctx.db.read(
            lambda c: tenants.list_page(c, limit=50, cursor=arg(request, "cursor")))
    except ValueError:
        items, nxt = [], None
    return render(request, "admin/tenants.html", status=status, tenants=items, next=nxt, **extra)


@bp.get("/tenants")
async def tenants_page(request: Request) -> HTTPResponse:
    return await _tenants_page(request)


@bp.post("/tenants")
async def tenant_create(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    try:
        tenant, api_key = await ctx.db.write(
            domain.create_tenant_tx, form(request, "name"), form(request, "alert_webhook_url") or None,
            "active", actor(request), ctx.now_iso())
    except errors.ApiError as exc:
        return await _tenants_page(request, 422, errors=exc.legacy.get("errors", {}),
                                   values=dict(request.form or {}))
    flash(request, "Tenant created")
    # Rendered here, not after a redirect: the key exists only in this response.
    return await _tenants_page(request, 201, shown_once={"what": f"API key of {tenant.name}",
                                                         "value": api_key})


@bp.post("/tenants/<tenant_id:uuid>/status")
async def tenant_status(request: Request, tenant_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    new = "inactive" if form(request, "status") == "inactive" else "active"
    result = await ctx.db.write(domain.update_tenant_tx, str(tenant_id), {"status": new},
                                actor(request), ctx.now_iso())
    ctx.tenant_cache.clear()
    flash(request, "Status updated" if result else "Tenant not found", "ok" if result else "error")
    return back(request, "/admin/tenants")


@bp.post("/tenants/<tenant_id:uuid>/webhook")
async def tenant_webhook(request: Request, tenant_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    try:
        result = await ctx.db.write(domain.update_tenant_tx, str(tenant_id),
                                    {"alert_webhook_url": form(request, "alert_webhook_url")},
                                    actor(request), ctx.now_iso())
    except errors.ApiError as exc:
        flash(request, "Alert webhook URL: " + "; ".join(
            sum(exc.legacy.get("errors", {}).values(), [])), "error")
        return back(request, "/admin/tenants")
    flash(request, "Alert webhook updated" if result else "Tenant not found")
    return back(request, "/admin/tenants")


@bp.post("/tenants/<tenant_id:uuid>/rotate")
async def tenant_rotate(request: Request, tenant_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    result = await ctx.db.write(domain.rotate_tenant_key_tx, str(tenant_id), actor(request),
                                ctx.now_iso())
    ctx.tenant_cache.clear()
    if result is None:
        flash(request, "Tenant not found", "error")
        return redirect("/admin/tenants")
    flash(request, "API key rotated: the old key no longer works")
    return await _tenants_page(request, shown_once={"what": f"new API key of {result[0].name}",
                                                    "value": result[1]})


@bp.post("/tenants/<tenant_id:uuid>/delete")
async def tenant_delete(request: Request, tenant_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    if form(request, "confirm") != "yes":
        flash(request, "Deletion not confirmed", "error")
        return redirect("/admin/tenants")
    ok = await ctx.db.write(domain.delete_tenant_tx, str(tenant_id), actor(request), ctx.now_iso())
    ctx.tenant_cache.clear()
    flash(request, "Tenant deleted" if ok else "Tenant not found", "ok" if ok else "error")
    return redirect("/admin/tenants")


# -- channels ---------------------------------------------------------------------------------
def _types() -> list[dict[str, Any]]:
    # The adapter's own secret_fields win: a field it encrypts is never a plain text input.
    return [{"type": t, "modes": list(a.supported_modes), "default": domain.default_mode(t),
             "fields": [(k, label, secret or k in a.secret_fields, required)
                        for k, label, secret, required in CONFIG_FIELDS.get(t, [])]}
            for t, a in adapters.REGISTRY.items()]


async def _channels_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = channels.list_page(conn, tenant_id=arg(request, "tenant_id"),
                                            mode=arg(request, "mode"), limit=50,
                                            cursor=arg(request, "cursor"))
        except ValueError:
            items, nxt = [], None
        return {"channels": items, "next": nxt, "health": dashboard.latest_health(conn),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_names": dict(dashboard.all_names(conn, "tenants"))}

    data = await request.app.ctx.db.read(read)
    return render(request, "admin/channels.html", status=status, types=_types(),
                  types_json=json.dumps(_types()), summary=_summary, **data, **extra)


def _summary(channel: Any) -> str:
    cfg = channel.config
    if channel.type == "webhook":
        return f"{cfg.get('method', 'POST')} {cfg.get('url', '')}"
    if channel.type == "whatsapp_meta":
        return f"Phone: {cfg.get('phone_number_id', '')}"
    if channel.type == "whatsapp_infobip":
        return f"Sender: {cfg.get('sender', '')}"
    return ""


@bp.get("/channels")
async def channels_page(request: Request) -> HTTPResponse:
    return await _channels_page(request)


def _channel_input(request: Request) -> tuple[dict[str, Any], list[Any] | str]:
    kind = form(request, "type")
    config = {}
    for key, _label, _secret, _required in CONFIG_FIELDS.get(kind, []):
        value = form(request, f"config.{kind}.{key}")
        if value:
            config[key] = value
    raw = form(request, "transformations") or "[]"
    try:
        steps: list[Any] | str = json.loads(raw)
    except json.JSONDecodeError as exc:
        steps = f"middleware steps are not valid JSON: {exc.msg}"
    except RecursionError:  # "[[[[…" past the parser's limit was a 500
        steps = "middleware steps nest too deep"
    return config, steps


@bp.post("/channels")
async def channel_create(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    config, steps = _channel_input(request)
    values = {k: v for k, v in (request.form or {}).items() if not k.startswith("config.")}
    values = {k: v[0] if isinstance(v, list) else v for k, v in values.items()}
    if isinstance(steps, str):
        return await _channels_page(request, 422, errors={"transformations": [steps]},
                                    values=values)
    tenant_id = form(request, "tenant_id")
    if not common.is_uuid(tenant_id):
        return await _channels_page(request, 422, errors={"tenant_id": ["choose a tenant"]},
                                    values=values)
    try:
        channel, secret = await ctx.db.write(lambda conn: domain.create_channel_tx(
            conn, ctx.cipher, tenant_id=tenant_id, name=form(request, "name"),
            type=form(request, "type"), mode=form(request, "mode") or None, config=config,
            transformations=steps, status="active", actor=actor(request), now=ctx.now_iso()))
    except errors.ApiError as exc:
        return await _channels_page(request, 422, errors=exc.legacy.get("errors", {}),
                                    values=values)
    flash(request, "Channel created")
    token = ctx.tokens.channel_token(channel.id, channel.tenant_id)
    return await _channels_page(request, 201, shown_once={
        "what": f"secret and a channel token of {channel.name}",
        "value": secret, "extra": token})


@bp.post("/channels/<channel_id:uuid>/status")
async def channel_status(request: Request, channel_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    new = "inactive" if form(request, "status") == "inactive" else "active"
    result = await ctx.db.write(domain.update_channel_tx, ctx.cipher, str(channel_id),
                                {"status": new}, actor(request), ctx.now_iso())
    flash(request, "Status updated" if result else "Channel not found", "ok" if result else "error")
    return back(request, "/admin/channels")


@bp.post("/channels/<channel_id:uuid>/rotate")
async def channel_rotate(request: Request, channel_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    result = await ctx.db.write(domain.rotate_channel_secret_tx, ctx.cipher, str(channel_id),
                                actor(request), ctx.now_iso())
    if result is None:
        flash(request, "Channel not found", "error")
        return redirect("/admin/channels")
    flash(request, "Secret rotated")
    return await _channels_page(request, shown_once={"what": f"new secret of {result[0].name}",
                                                     "value": result[1]})


@bp.post("/channels/<channel_id:uuid>/token")
async def channel_token(request: Request, channel_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    channel = await ctx.db.read(channels.get, str(channel_id))
    if channel is None:
        flash(request, "Channel not found", "error")
        return redirect("/admin/channels")
    token = ctx.tokens.channel_token(channel.id, channel.tenant_id)
    return await _channels_page(request, shown_once={
        "what": f"channel token of {channel.name} (valid 1 hour)", "value": token})


@bp.post("/channels/<channel_id:uuid>/delete")
async def channel_delete(request: Request, channel_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    ok = await ctx.db.write(domain.delete_channel_tx, ctx.cipher, str(channel_id), actor(request),
                            ctx.now_iso())
    flash(request, "Channel deleted" if ok else "Channel not found", "ok" if ok else "error")
    return redirect("/admin/channels")

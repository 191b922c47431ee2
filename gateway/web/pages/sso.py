"""Single sign-on to the admin panel (``CONVERGER_OIDC_ISSUER``, docs/admin.md#single-sign-on):
``/admin/sso/login`` sends the browser to the identity provider (authorization code with PKCE,
gateway/sso.py) and ``/admin/sso/callback`` takes it back: the state must be this session's,
the ID token must verify; the user's groups name their role and tenant scope; the admin user is
made or updated just in time and signed in. Whatever fails, nothing is granted: the sign-in page
says why (the log has the details); a refusal for want of a role is audited. Like every
``/admin`` page, these answer only within the IP allowlist."""

from __future__ import annotations

import logging

import aiohttp
from sanic import Request
from sanic.response import HTTPResponse, redirect, text

from store.util import parse_iso

from ...domain import ValidationFailed
from ...domain import users as user_ops
from ...domain.base import record
from ...http import gw
from ...sso import SsoError, pending_from_session, pending_to_session
from .. import kit, security
from ..kit import flash, render
from . import ADMIN
from .signin import sign_in

log = logging.getLogger("converger.sso")
FAILURES = (SsoError, aiohttp.ClientError, TimeoutError, KeyError, ValueError)


def _refused(request: Request, message: str, status: int) -> HTTPResponse:
    flash(request, message, "error")
    return render(request, "admin/login.html", status=status)


@ADMIN.get("/sso/login")
async def sso_login(request: Request) -> HTTPResponse:
    sso = kit.state(request).sso
    if sso is None:
        return text("Not Found", status=404)
    try:
        async with aiohttp.ClientSession() as session:
            url, pending = await sso.start(session)
    except FAILURES as exc:
        log.warning("single sign-on: the identity provider is unreachable: %s", exc)
        return _refused(request, "The identity provider cannot be reached. Try again later.", 502)
    request.ctx.session["sso"] = pending_to_session(pending)
    request.ctx.session_dirty = True
    return redirect(url)


@ADMIN.get("/sso/callback")
async def sso_callback(request: Request) -> HTTPResponse:
    sso = kit.state(request).sso
    if sso is None:
        return text("Not Found", status=404)
    pending = pending_from_session(request.ctx.session.pop("sso", None))
    request.ctx.session_dirty = True  # the pending sign-in is used up, whatever happens
    state = request.args.get("state") or ""
    if pending is None or not security.csrf_ok({"csrf": pending.state}, state):
        log.warning("single sign-on refused: the state is not this session's")
        return _refused(request, "Single sign-on failed: start again.", 400)
    if request.args.get("error") or not request.args.get("code"):
        log.warning("single sign-on refused by the identity provider: %s",
                    request.args.get("error", "no code"))
        return _refused(request, "The identity provider did not sign you in.", 401)
    ctx = gw(request)
    try:
        async with aiohttp.ClientSession() as session:
            claims = await sso.finish(session, pending, request.args.get("code", ""),
                                      now=parse_iso(ctx.now_iso()).timestamp())
    except FAILURES as exc:
        log.warning("single sign-on refused: %s", exc)
        return _refused(request, "Single sign-on failed: the identity provider's answer was "
                                 "not valid.", 401)
    subject = f"{claims['iss']} {claims['sub']}"
    email = claims["email"] if isinstance(claims.get("email"), str) else ""
    grant = sso.grant(claims)
    if grant is None:
        now = ctx.now_iso()
        await ctx.db.write(lambda conn: record(
            conn, ("system", "sso"), "deny", "admins", subject, now,
            after={"reason": "no_role", "email": email}))
        return _refused(request, "Your account has no role in this gateway (none of your "
                                 "groups is mapped to one).", 403)
    name = claims["name"] if isinstance(claims.get("name"), str) else email
    try:
        user = await user_ops.sso_admin(
            ctx, subject=subject, email=email or f"{claims['sub']}@sso.invalid",
            name=name or "", role=grant.role,
            tenant_scope=list(grant.tenants) if grant.tenants is not None else None)
    except ValidationFailed as exc:
        log.warning("single sign-on refused for %s: %s", subject, exc.messages())
        return _refused(request, "Single sign-on failed: " + "; ".join(exc.messages()), 403)
    if user.status != "active":
        return _refused(request, "Your account has been deactivated.", 403)
    await sign_in(request, "admin", user.id)
    flash(request, f"Welcome, {user.name}!")
    return redirect("/admin")

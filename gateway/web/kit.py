"""What every page uses, in both areas (``/admin`` and ``/portal``): the template environment
and static files, the per-request session (loaded before any page logic, written back on the
way out) with its flash messages and CSRF check, rendering, reading forms and query arguments,
and the tenant a page may show."""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from sanic import Request
from sanic.response import HTTPResponse, html, redirect, text

from ..auth import check_route
from ..domain import Actor, DomainError, Forbidden, NotFound, authz
from ..http import gw
from . import security
from .security import LoginLimiter, Network, PasswordChecks, Sessions

HERE = Path(__file__).resolve().parent
COOKIES = {"admin": "_converger_key", "portal": "_converger_portal"}
# Everything is served by this process: scripts only from here, no framing, no sniffing.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass
class WebState:
    """Kept on ``app.ctx.web``."""

    env: jinja2.Environment
    sessions: Sessions
    limiter: LoginLimiter
    allow: tuple[Network, ...]
    proxies: tuple[Network, ...]
    setup_token: str | None = None
    static: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    streams: set[Any] = field(default_factory=set)  # open event streams, ended at shutdown
    passwords: PasswordChecks = field(default_factory=PasswordChecks)
    sso: Any = None  # gateway.sso.Sso when CONVERGER_OIDC_ISSUER is set


def make_env() -> jinja2.Environment:
    # Loaded relative to this file so the PyInstaller binary (which ships gateway/web/templates
    # as data) finds them exactly as a source checkout does.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(("html",)),
        trim_blocks=True, lstrip_blocks=True,
    )
    # Ids are time-ordered (store.util.new_id): ids made in the same minute share their head, so
    # the distinguishing part shown in tables is the random tail; the full id is in the title.
    env.filters["short"] = lambda v, n=8: v if len(v or "") <= n else "…" + v[-n:]
    env.filters["when"] = lambda v: (v or "")[:19].replace("T", " ")
    env.filters["trunc"] = lambda v, n=40: (v if len(v or "") <= n else v[: n - 1] + "…") if v else ""
    env.globals["qs"] = lambda args, **kw: "?" + urlencode(
        {k: v for k, v in {**args, **kw}.items() if v not in (None, "")})
    return env


def load_static() -> dict[str, tuple[bytes, str]]:
    out = {}
    for path in (HERE / "static").iterdir():
        if path.is_file():
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if path.suffix == ".svg":
                ctype = "image/svg+xml"
            out[path.name] = (path.read_bytes(), ctype)
    return out


def state(request: Request) -> WebState:
    return request.app.ctx.web


# -- the session of this request --------------------------------------------------------------
def open_session(request: Request, area: str) -> dict[str, Any]:
    """Load the area's session (a fresh one with a CSRF token when absent or invalid)."""
    web = state(request)
    data = web.sessions.load(request.cookies.get(COOKIES[area]))
    request.ctx.session_dirty = data is None
    if data is None:
        data = {"csrf": security.new_csrf()}
    request.ctx.session = data
    request.ctx.area = area
    return data


def replace_session(request: Request, data: dict[str, Any]) -> None:
    """A new session (login, logout): a new CSRF token, nothing carried over but flashes."""
    flashes = request.ctx.session.get("flash", [])
    request.ctx.session = {"csrf": security.new_csrf(), **data}
    if flashes:
        request.ctx.session.setdefault("flash", []).extend(flashes)
    request.ctx.session_dirty = True


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.ctx.session.setdefault("flash", []).append([kind, message])
    request.ctx.session_dirty = True


def check_csrf(request: Request) -> HTTPResponse | None:
    """403 for a state-changing request without the session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    submitted = request.headers.get("x-csrf-token")
    if submitted is None and request.form is not None:
        submitted = request.form.get("_csrf")
    if not security.csrf_ok(request.ctx.session, submitted):
        return text("Forbidden: missing or invalid CSRF token", status=403)
    return None


def write_session(request: Request, response: HTTPResponse) -> None:
    area = request.ctx.area  # set by open_session: only a page has a session
    if area is None or not request.ctx.session_dirty:
        return
    web = state(request)
    response.add_cookie(
        COOKIES[area], web.sessions.dump(request.ctx.session), path=f"/{area}",
        httponly=True, samesite="Lax", secure=security.is_https(request, web.proxies),
        max_age=web.sessions.lifetime,
    )


# -- rendering --------------------------------------------------------------------------------
def render(request: Request, template: str, status: int = 200, **context: Any) -> HTTPResponse:
    sess = request.ctx.session
    flashes = sess.pop("flash", [])
    if flashes:
        request.ctx.session_dirty = True
    user = request.ctx.user
    who = request.ctx.principal
    limit = who.tenants if who is not None and request.ctx.area == "admin" else None
    if limit is not None:  # a scoped admin's pickers and names: their tenants only
        if "tenant_list" in context:
            context["tenant_list"] = [t for t in context["tenant_list"] if t[0] in limit]
        if "tenant_names" in context:
            context["tenant_names"] = {k: v for k, v in context["tenant_names"].items()
                                       if k in limit}
    body = state(request).env.get_template(template).render(
        request=request, csrf=sess.get("csrf", ""), flashes=flashes, area=request.ctx.area,
        user=user, can=lambda permission: who is not None and who.can(permission),
        can_write=who is not None and any(not p.endswith(":read") for p in who.permissions),
        args=dict(request.query_args), path=request.path, **context,
    )
    response = html(body, status=status)
    # Pages can hold a secret shown once (a new API key): never keep them in any cache.
    response.headers["cache-control"] = "no-store"
    response.headers.update(SECURITY_HEADERS)
    return response


def back(request: Request, default: str) -> HTTPResponse:
    """Redirect to the page the form came from (same area only), else ``default``."""
    target = request.form.get("next") if request.form else None
    area = f"/{request.ctx.area}"
    if not target or not target.startswith(area) or target.startswith("//"):
        target = default
    return redirect(target)


def form(request: Request, name: str, default: str = "") -> str:
    value = request.form.get(name) if request.form else None
    return (value if value is not None else default).strip()


def arg(request: Request, name: str) -> str | None:
    value = request.args.get(name)
    return value.strip() if value and value.strip() else None


async def found(change: Awaitable[Any]) -> bool:
    """Await a domain change; False when the thing it changes does not exist."""
    try:
        await change
    except NotFound:
        return False
    return True


def is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# -- who acts, and on which tenant ------------------------------------------------------------
def signed_in(request: Request, user: Any) -> None:
    """Record the signed-in user of this request: the pages' ``request.ctx.user`` and the
    audit log's actor (``gateway.auth.actor``)."""
    request.ctx.user = user
    if user is not None:
        kind = "admin" if request.ctx.area == "admin" else "tenant_user"
        request.ctx.actor = Actor(kind, user.email)


# A tenant id no tenant has: what a tenant-scoped admin's filter becomes outside the scope
# (the page then lists nothing, as for a tenant that does not exist).
NO_TENANT = "00000000-0000-4000-8000-000000000000"


def scope(request: Request) -> str | None:
    """The tenant a page may show: the portal user's, or the admin's filter (None = all). A
    tenant-scoped admin always sees one of their tenants: the one asked for if it is theirs,
    else (no filter) the first of them; asking for another shows nothing."""
    if request.ctx.area == "portal":
        return request.ctx.user.tenant_id
    tenant_id = arg(request, "tenant_id")
    tenant_id = tenant_id if is_uuid(tenant_id) else None
    limit = request.ctx.principal.tenants
    if limit is None:
        return tenant_id
    if tenant_id is None:
        return min(limit) if limit else NO_TENANT
    return tenant_id if tenant_id in limit else NO_TENANT


def scope_default(request: Request) -> str | None:
    """The tenant an admin page shows when none (or a missing one) is asked for: all (None),
    or a scoped admin's first tenant."""
    limit = request.ctx.principal.tenants
    return None if limit is None else (min(limit) if limit else NO_TENANT)


def tenant_ids(request: Request) -> frozenset[str] | None:
    """The tenants a page's list may show (None: every one)."""
    if request.ctx.area == "portal":
        return frozenset({request.ctx.user.tenant_id})
    tenants: frozenset[str] | None = request.ctx.principal.tenants
    return tenants


async def form_tenant(request: Request, permission: str) -> str:
    """The form's ``tenant_id`` for a new thing; outside a scoped admin's tenants it becomes a
    tenant that does not exist (the form answers as for one; the refusal is audited)."""
    tenant_id = form(request, "tenant_id")
    who = request.ctx.principal
    if tenant_id and authz.decide(who, permission, tenant_id=tenant_id) is not None:
        try:
            await authz.authorize(gw(request), who, permission, tenant_id=tenant_id,
                                  resource_id=tenant_id)
        except DomainError:
            return NO_TENANT
    return tenant_id


def own_tenant(request: Request) -> str | None:
    """The tenant a change is limited to: the portal user's; None in the admin area (any: a
    scoped admin's things outside the scope were answered as missing by the guard)."""
    return request.ctx.user.tenant_id if request.ctx.area == "portal" else None


# The admin pages a tenant-scoped admin may use: they show only the scope's tenants.
SCOPED_PAGES = tuple(f"/admin/{p}" for p in (
    "conversations", "deliveries", "routing_rules", "tenants", "channels", "tenant_users",
    "analytics", "account", "logout"))


async def authorize_route(request: Request) -> HTTPResponse | None:
    """The page's permission for the signed-in person (``auth.check_route``, the same step as
    the management API's): 403 with the reason, or None. Things outside their scope are
    swapped for ids nothing has, so the page answers as for a missing thing."""
    who = request.ctx.principal
    if (request.ctx.area == "admin" and who.scoped
            and not request.path.startswith(SCOPED_PAGES)):
        return text("Forbidden: this page is not available to a tenant-scoped role", status=403)
    try:
        await check_route(request, who, swap=True)
    except Forbidden as exc:
        return text(f"Forbidden: {exc.detail}", status=403)
    return None

"""The pages, one module per family of what they show: ``signin``, ``dashboard``, ``tenants``,
``channels``, ``conversations``, ``deliveries``, ``routing``, ``users``, ``tokens``, ``roles``,
``audit``, ``analytics``, ``tiers`` and ``portal`` (the tenant portal's own pages).

Every module adds its routes to the two areas' blueprints below: ``ADMIN`` (``/admin``, the
gateway's operators) and ``PORTAL`` (``/portal``, a tenant's own users). The conversations,
deliveries and routing pages (and sign-in) serve both areas through ``both``, scoped to the
signed-in user's tenant in the portal (see ``kit.scope``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sanic import Blueprint

ADMIN = Blueprint("web_admin", url_prefix="/admin")
PORTAL = Blueprint("web_portal", url_prefix="/portal")
Handler = TypeVar("Handler", bound=Callable[..., Any])


def both(uri: str, name: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Handler], Handler]:
    """Route a page in both areas, as ``admin_<name>`` and ``portal_<name>``; the handler reads
    the area from ``request.ctx.area`` (and the tenant it may show from ``kit.scope``)."""
    def register(handler: Handler) -> Handler:
        for bp, area in ((ADMIN, "admin"), (PORTAL, "portal")):
            bp.add_route(handler, uri, methods=list(methods), name=f"{area}_{name}")
        return handler

    return register

# Each module adds its routes to ADMIN and PORTAL when imported (after they exist, above).
from . import (  # noqa: E402, F401, I001
    analytics, audit, channels, conversations, dashboard, deliveries, invites, portal, roles,
    routing, signin, sso, tenants, tiers, tokens, users,
)

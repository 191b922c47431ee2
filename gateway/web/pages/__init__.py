"""The pages, one module per family of what they show: ``signin``, ``dashboard``, ``tenants``,
``channels``, ``conversations``, ``deliveries``, ``routing``, ``users``, ``tokens``, ``audit``
and ``portal`` (the tenant portal's own pages).

Every module adds its routes to the two areas' blueprints below: ``ADMIN`` (``/admin``, the
gateway's operators) and ``PORTAL`` (``/portal``, a tenant's own users). The conversations,
deliveries and routing pages serve both areas, scoped to the signed-in user's tenant in the
portal (see ``kit.scope``)."""

from __future__ import annotations

from sanic import Blueprint

ADMIN = Blueprint("web_admin", url_prefix="/admin")
PORTAL = Blueprint("web_portal", url_prefix="/portal")
AREAS = (ADMIN, PORTAL)

# Each module adds its routes to ADMIN and PORTAL when imported (after they exist, above).
from . import (  # noqa: E402, F401, I001
    audit, channels, conversations, dashboard, deliveries, portal, routing, signin, tenants,
    tokens, users,
)

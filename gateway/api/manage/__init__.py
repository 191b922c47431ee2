"""The management API: ``/api/admin/…`` with ``Authorization: Bearer <admin token>``
(docs/admin.md). Every change goes through ``gateway.domain``."""

from sanic import Blueprint

from ...auth import admin_guard
from .. import analytics
from . import channels, records, roles, tenants, tiers, users

bp = Blueprint.group(tenants.bp, channels.bp, records.bp, users.bp, tiers.bp, roles.bp,
                     url_prefix="/api/admin")
analytics_bp = analytics.admin_bp
bp.middleware(admin_guard, "request")
analytics_bp.middleware(admin_guard, "request")

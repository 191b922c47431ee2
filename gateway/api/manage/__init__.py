"""The management API: ``/api/admin/…`` with ``Authorization: Bearer <admin token>``
(docs/admin.md). Every change goes through ``gateway.domain``."""

from sanic import Blueprint

from .. import analytics
from . import channels, records, tenants, tiers, users

bp = Blueprint.group(tenants.bp, channels.bp, records.bp, users.bp, tiers.bp,
                     url_prefix="/api/admin")
analytics_bp = analytics.admin_bp

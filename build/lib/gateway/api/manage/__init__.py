"""The management API (DESIGN §5): ``/api/admin/…`` with ``Authorization: Bearer <admin token>``."""

from sanic import Blueprint

from . import channels, records, tenants

bp = Blueprint.group(tenants.bp, channels.bp, records.bp, url_prefix="/api/admin")

"""The admin's audit log page: every recorded change, filtered by tenant, actor type, action or
resource type."""

from __future__ import annotations

import json
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse

from store import audit, dashboard

from .. import kit
from ..kit import arg, render
from . import ADMIN


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


@ADMIN.get("/audit_logs")
async def audit_page(request: Request) -> HTTPResponse:
    tenant_id = arg(request, "tenant_id")

    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = audit.list_page(
                conn, tenant_id=tenant_id if kit.is_uuid(tenant_id) else None,
                actor_type=arg(request, "actor_type"), action=arg(request, "action"),
                resource_type=arg(request, "resource_type"), limit=50,
                cursor=arg(request, "cursor"))
        except ValueError:
            items, nxt = [], None
        return {"entries": items, "next": nxt, "tenant_list": dashboard.all_names(conn, "tenants")}

    return render(request, "admin/audit.html", pretty=_pretty, **await request.app.ctx.db.read(read))

"""Analytics over the API (docs/analytics.md): the report as JSON and its series as CSV, under
the management API (``/api/admin/analytics``, any tenant or all of them) and the tenant's own
(``/api/v1/analytics``, with its API key: its own figures only)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from store.util import parse_iso

from .. import errors
from ..auth import admin_auth, report_scope, tenant_auth
from ..domain import analytics as analytics_ops
from ..http import gw, json, uuid_param

admin_bp = Blueprint("manage_analytics", url_prefix="/api/admin")
tenant_bp = Blueprint("tenant_analytics")

QUERY = ("range", "from", "to", "channel_id")


def _window(request: Request) -> analytics_ops.Window:
    args = {k: request.args.get(k) for k in ("range", "from", "to")}
    try:
        return analytics_ops.window(args, parse_iso(gw(request).now_iso()))
    except analytics_ops.BadRange as exc:
        raise errors.bad_request(str(exc), exc.code) from None


def _id(request: Request, name: str) -> str | None:
    value = request.args.get(name)
    return uuid_param(value, name) if value else None


def _answer(request: Request, data: dict[str, Any], csv: bool) -> HTTPResponse:
    if not csv:
        return json({"data": data})
    name = f"analytics-{data['range']}.csv"
    return raw(analytics_ops.to_csv(data).encode(), content_type="text/csv; charset=utf-8",
               headers={"content-disposition": f'attachment; filename="{name}"'})


async def _admin(request: Request, csv: bool) -> HTTPResponse:
    who = await admin_auth(request)
    w = _window(request)
    tenant_id, channel_id = await report_scope(request, who, _id(request, "tenant_id"),
                                               _id(request, "channel_id"))
    data = await analytics_ops.report(gw(request), w, tenant_id=tenant_id, channel_id=channel_id)
    return _answer(request, data, csv)


@admin_bp.get("/analytics")
async def admin_report(request: Request) -> HTTPResponse:
    return await _admin(request, csv=False)


@admin_bp.get("/analytics/export.csv")
async def admin_export(request: Request) -> HTTPResponse:
    return await _admin(request, csv=True)


async def _tenant(request: Request, csv: bool) -> HTTPResponse:
    tenant, claims = await tenant_auth(request)
    if claims is not None:  # tokens reach conversations or a channel, not the tenant's figures
        raise errors.forbidden("analytics need the tenant's API key", "token_out_of_scope")
    w = _window(request)
    data = await analytics_ops.report(gw(request), w, tenant_id=tenant.id,
                                      channel_id=_id(request, "channel_id"))
    return _answer(request, data, csv)


@tenant_bp.get("/analytics")
async def tenant_report(request: Request) -> HTTPResponse:
    return await _tenant(request, csv=False)


@tenant_bp.get("/analytics/export.csv")
async def tenant_export(request: Request) -> HTTPResponse:
    return await _tenant(request, csv=True)


REPORT = {"type": "object", "description": "docs/analytics.md", "properties": {
    k: {"type": t} for k, t in (
        ("range", "string"), ("from", "string"), ("to", "string"), ("step", "integer"),
        ("buckets", "array"), ("activities", "object"), ("deliveries", "object"),
        ("totals", "object"), ("latency", "object"), ("failures", "array"),
        ("conversations", "array"), ("channels", "array"))},
    "required": ["range", "from", "to", "step", "buckets", "activities", "deliveries"]}


def operations(op: Any, admin: tuple[str, ...], api_key: tuple[str, ...]) -> list[Any]:
    """The OpenAPI operations of these routes (gateway/api/openapi.py)."""
    return [
        op("GET", "/api/admin/analytics", "Analytics of the gateway, a tenant or a channel",
           admin, result=REPORT, query=(*QUERY, "tenant_id")),
        op("GET", "/api/admin/analytics/export.csv", "The analytics series as CSV", admin,
           result={"type": "string"}, query=(*QUERY, "tenant_id"), media="text/csv", wrap=""),
        op("GET", "/api/v1/analytics", "The tenant's own analytics (API key)", api_key,
           result=REPORT, query=QUERY, errors=(400, 401, 403, 404)),
        op("GET", "/api/v1/analytics/export.csv", "The tenant's analytics series as CSV",
           api_key, result={"type": "string"}, query=QUERY, media="text/csv", wrap="",
           errors=(400, 401, 403, 404)),
    ]

"""OpenTelemetry traces (issue 7, optional): with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the real
server exports spans over OTLP/HTTP to a real collector stand-in (aiohttp on loopback, decoding
the protobuf requests with the OTLP schema): a SERVER span per request that joins the caller's
``traceparent``, a CLIENT span per delivery attempt; no path, query or token in any span."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.api import Api
from tests.support.server import Server
from tests.support.serving import serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out


async def test_requests_and_deliveries_are_traced(
    make_server: Callable[..., Server], session: aiohttp.ClientSession
) -> None:
    spans: list[tuple[dict[str, Any], Any]] = []  # (resource attributes, span)
    raw: list[bytes] = []

    async def collect(request: web.Request) -> web.Response:
        body = await request.read()
        raw.append(body)
        export = ExportTraceServiceRequest.FromString(body)
        for rs in export.resource_spans:
            resource = _attrs(rs.resource)
            for ss in rs.scope_spans:
                spans.extend((resource, s) for s in ss.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        srv = make_server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_BSP_SCHEDULE_DELAY": "100"})
        api = Api(session, srv.url)
        s = await api.setup("traced", type="webhook", config={"url": f"{base}/hook"})
        conv = s["conversation"]["id"]
        status, body, _ = await api.call(
            "POST", f"/api/v1/conversations/{conv}/activities", json={"text": "hi"},
            headers={"x-api-key": s["api_key"], "x-request-id": "trace-me-1",
                     "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert status == 201, body

        def named(prefix: str) -> list[Any]:
            return [sp for _, sp in spans if sp.name.startswith(prefix)]

        deadline = time.monotonic() + 15
        while not (named("POST /api/v1/conversations/") and named("deliver webhook")):
            assert time.monotonic() < deadline, f"spans seen: {[sp.name for _, sp in spans]}"
            await asyncio.sleep(0.05)

        [post] = [sp for sp in named("POST /api/v1/conversations/")
                  if _attrs(sp).get("converger.request_id") == "trace-me-1"]
        assert post.name == "POST /api/v1/conversations/<conversation_id:str>/activities"
        assert post.kind == post.SPAN_KIND_SERVER
        assert post.trace_id.hex() == TRACE_ID and post.parent_span_id.hex() == PARENT_ID
        assert _attrs(post)["http.response.status_code"] == 201
        assert _attrs(post)["http.route"] == "/api/v1/conversations/<conversation_id:str>/activities"

        [deliver] = named("deliver webhook")
        assert deliver.kind == deliver.SPAN_KIND_CLIENT
        assert _attrs(deliver)["converger.outcome"] == "sent"
        assert _attrs(deliver)["converger.attempt"] == 1

        resource = spans[0][0]
        assert resource["service.name"] == "converger"
        # Spans carry routes, never concrete paths or credentials.
        blob = b"".join(raw)
        for secret in (conv, s["api_key"], s["channel_token"]):
            assert secret.encode() not in blob
        assert srv.stop() == 0  # the flush at shutdown does not hold it up

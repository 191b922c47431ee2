"""Optional OpenTelemetry traces.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (and the SDK installed: ``pip install
'converger[otel]'``; the single binary carries it), every HTTP request becomes a SERVER span —
a caller's W3C ``traceparent`` is honoured, so converger's span joins the caller's trace — and
every delivery attempt a CLIENT span; spans go over OTLP/HTTP (protobuf) to
``<endpoint>/v1/traces`` through the SDK's batch processor, flushed at shutdown. The SDK's own
``OTEL_*`` variables apply (``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``). Without the endpoint nothing is imported and tracing
costs one ``is None`` test per request.

Span attributes follow the OpenTelemetry HTTP semantic conventions (``http.request.method``,
``http.route``, ``http.response.status_code``), plus ``converger.request_id`` (the
``x-request-id``). Paths, queries and bodies are not recorded: they can carry tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from .metrics import route_label

_tracer: Any = None  # an opentelemetry Tracer once install() enabled tracing


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A CLIENT span around outbound work (a delivery attempt); ``None`` when tracing is off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as s:
        yield s


def install(app: Sanic) -> None:
    """Turn tracing on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set."""
    global _tracer
    settings = app.ctx.settings
    log = app.ctx.log
    endpoint = settings.otel_endpoint
    if not endpoint:
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed "
                    "(pip install 'converger[otel]'): no traces")
        return
    from . import __version__

    # Built directly, not through the SDK's entry-point lookups (detectors, propagators), which
    # a frozen binary without package metadata would not find.
    resource = Resource({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "converger",
                         "service.version": __version__})
    propagator = TraceContextTextMapPropagator()
    provider = TracerProvider(resource=resource)
    traces_url = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                  or endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    _tracer = provider.get_tracer("converger", __version__)
    tracer = _tracer
    log.info("tracing: spans exported to %s", traces_url)

    @app.ctx.hooks.request(priority=90)  # after the request id is set
    def _start_span(request: Request) -> None:
        if request.headers.get("upgrade", "").lower() == "websocket":
            return  # a socket lives for hours: its joins and pushes are not one request
        route = route_label(request)
        request.ctx.span = tracer.start_span(
            f"{request.method} {route}", kind=SpanKind.SERVER,
            context=propagator.extract(dict(request.headers)),
            attributes={"http.request.method": request.method, "http.route": route,
                        "converger.request_id": request.ctx.request_id or ""})

    @app.ctx.hooks.response(priority=90)
    def _end_span(request: Request, response: HTTPResponse) -> None:
        s = request.ctx.span
        if s is None:
            return
        request.ctx.span = None
        s.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            s.set_status(Status(StatusCode.ERROR))
        s.end()

    @app.after_server_stop
    async def _flush(app: Sanic) -> None:
        global _tracer
        _tracer = None
        try:  # the exporter blocks (requests); a collector that is down must not hold shutdown
            await asyncio.wait_for(asyncio.to_thread(provider.shutdown), 5.0)
        except TimeoutError:
            log.warning("tracing: spans not flushed within 5 s at shutdown")


"""The admin dashboard: counts, the health of every external channel and the latest alerts;
and, for it and the portal's home, the live stream of ``health_changed`` events that updates
their channel-health card without a reload."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse

import adapters
from store import alerts, channels, dashboard

from ...hub import HEALTH, Subscriber, tenant_health
from ..kit import render, state
from . import ADMIN, both

KEEP_ALIVE = 15.0  # seconds between comments on a quiet stream (proxies, the response timeout)


def _alert_change(body: str) -> tuple[str, str]:
    """``(previous, new)`` health status of an alert's JSON body."""
    try:
        data = json.loads(body)
        return str(data.get("previous_status") or "unknown"), str(data.get("new_status") or "unknown")
    except (ValueError, AttributeError):
        return "unknown", "unknown"


@ADMIN.get("")
async def dashboard_page(request: Request) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any]:
        counts = dashboard.counts(conn)
        health = dashboard.latest_health(conn)
        external = [c for c in channels.list_page(conn, status="active", limit=500)[0]
                    if c.type in adapters.DELIVERING_TYPES]
        recent = alerts.list_page(conn, limit=10)[0]
        names = dashboard.names(conn, "tenants", {c.tenant_id for c in external}
                                | {a.tenant_id for a in recent})
        channel_names = dashboard.names(conn, "channels", {a.channel_id for a in recent})
        return {"counts": counts, "health": health, "external": external, "tenant_names": names,
                "alerts": [(a, _alert_change(a.body)) for a in recent],
                "channel_names": channel_names}

    return render(request, "admin/dashboard.html", **await request.app.ctx.db.read(read))


class HealthStream(Subscriber):
    """One open page's ``health_changed`` events, queued until its stream sends them. A page
    that does not read falls behind and is dropped (its stream ends; the browser reconnects)."""

    LIMIT = 100

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.LIMIT + 1)

    def offer(self, event: str, payload: Any, frame: Any) -> bool:
        if self.queue.qsize() >= self.LIMIT:
            return False
        self.queue.put_nowait(payload)
        return True

    def dropped(self) -> None:
        self.end()

    def end(self) -> None:
        """No more events: the stream sends what it has and finishes (also at shutdown)."""
        if not self.queue.full():
            self.queue.put_nowait(None)


@both("/health/events", "health_events")
async def health_events(request: Request) -> HTTPResponse | None:
    """``text/event-stream`` of ``health_changed``: every channel's in the admin area, the
    signed-in user's tenant's in the portal. ``static/app.js`` redraws the card from it."""
    topic = HEALTH if request.ctx.area == "admin" else tenant_health(request.ctx.user.tenant_id)
    hub, streams = request.app.ctx.hub, state(request).streams
    stream = HealthStream()
    hub.subscribe(topic, stream)
    streams.add(stream)
    try:
        response = await request.respond(content_type="text/event-stream", headers={
            "cache-control": "no-store", "x-accel-buffering": "no"})
        await response.send(": open\n\n")
        while True:
            try:
                async with asyncio.timeout(KEEP_ALIVE):
                    payload = await stream.queue.get()
            except TimeoutError:
                await response.send(": keep-alive\n\n")
                continue
            if payload is None:
                break
            await response.send(f"event: health_changed\ndata: {json.dumps(payload)}\n\n")
        await response.eof()
    finally:
        hub.unsubscribe(topic, stream)
        streams.discard(stream)
    return None

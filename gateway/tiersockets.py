"""A tier's ``max_connections`` (docs/admin.md#sla-tiers): a tenant's real-time sockets (the
legacy and Converger Phoenix sockets, Direct Line streams) are counted in the store
(store/tenant_sockets.py) so that the cap holds for the whole gateway — every worker process
and node — not one process. Past it the upgrade is refused with 429 ``too_many_sockets`` (the
per-token cap's code), ``Retry-After`` and ``RateLimit-Policy``/``RateLimit`` for the
``tenant_sockets`` scope, and the tier's name in the body.

Only a tenant whose tier sets ``max_connections`` costs anything: one write transaction when a
socket opens and one when it closes. Each process refreshes its holder row every ``REFRESH``
seconds while it holds counted sockets (a process that died stops counting after
``tenant_sockets.STALE``) and drops its rows when it stops."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from store import tenant_sockets

from . import errors, tierlimits
from .tasks import cancel_and_wait

log = logging.getLogger("converger.tiersockets")

REFRESH = 5.0
SCOPE = "tenant_sockets"
RETRY_AFTER = 5


class TierSockets:
    def __init__(self, ctx: Any, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.clock = clock
        self.holder = uuid.uuid4().hex
        self.held: dict[str, int] = {}  # tenant -> sockets this process counts
        self._task: asyncio.Task[None] | None = None

    async def admit(self, tenant_id: str, directline: bool = False
                    ) -> tuple[HTTPResponse | None, bool]:
        """``(None, counted)`` when the tenant's tier has room (the socket counted) or no cap
        (not counted); else ``(the 429 to answer the upgrade with, False)``."""
        tier = await tierlimits.of(self.ctx, tenant_id)
        if tier is None or tier.max_connections is None:
            return None, False
        cap = tier.max_connections
        ok, held = await self.ctx.db.write(tenant_sockets.admit, self.holder, tenant_id, cap,
                                           self.clock())
        if ok:
            self.held[tenant_id] = self.held.get(tenant_id, 0) + 1
            self._ensure_refresh()
            return None, True
        detail = (f"The {tier.name} tier allows {cap} open sockets per tenant; {held} are open. "
                  "Close one, or try again later.")
        headers = {"Retry-After": str(RETRY_AFTER),
                   "RateLimit-Policy": f'"{SCOPE}";q={cap}',
                   "RateLimit": f'"{SCOPE}";r=0;t={RETRY_AFTER}'}
        if directline:
            err = errors.directline(429, "too_many_sockets", detail, "TooManyRequests",
                                    headers=headers)
        else:
            err = errors.ApiError(429, "too_many_sockets", detail, headers=headers,
                                  extra={"tier": tier.name, "max_connections": cap})
        return errors.problem_response(err), False

    async def release(self, tenant_id: str) -> None:
        left = self.held.get(tenant_id, 0) - 1
        if left > 0:
            self.held[tenant_id] = left
        else:
            self.held.pop(tenant_id, None)
        try:
            await self.ctx.db.write(tenant_sockets.release, self.holder, tenant_id)
        except Exception as exc:  # the store is closing: the holder's rows go stale anyway
            log.warning("tier sockets: could not release a socket of %s: %s", tenant_id, exc)

    def _ensure_refresh(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh(), name="tier-sockets")

    async def _refresh(self) -> None:
        while self.held:
            await asyncio.sleep(REFRESH)
            try:
                await self.ctx.db.write(tenant_sockets.refresh, self.holder, self.clock())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("tier sockets: refresh failed: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], log, "tier sockets")
            self._task = None
        if self.ctx.db_open:
            try:
                await self.ctx.db.write(tenant_sockets.leave, self.holder)
            except Exception as exc:
                log.warning("tier sockets: could not drop this process's rows: %s", exc)


async def admit(request: Request, tenant_id: str, directline: bool = False
                ) -> HTTPResponse | None:
    ts: TierSockets | None = request.app.ctx.tier_sockets
    if ts is None:
        return None
    refused, counted = await ts.admit(tenant_id, directline)
    if counted:
        request.ctx.tier_socket = tenant_id
    return refused


def take(request: Request) -> str | None:
    """The socket holds its tenant's place now (``_serve``): the tenant to :func:`release`
    when it closes."""
    tenant_id, request.ctx.tier_socket = request.ctx.tier_socket, None
    return tenant_id


async def release(request: Request, tenant_id: str | None) -> None:
    """A counted place given back: the socket closed, or the upgrade was answered over HTTP
    after all (a failed handshake, a later refusal)."""
    ts: TierSockets | None = request.app.ctx.tier_sockets
    if tenant_id is not None and ts is not None:
        await ts.release(tenant_id)


_releasing: set[asyncio.Task[None]] = set()


def release_later(app: Sanic, tenant_id: str) -> None:
    """:func:`release` for a socket that closed outside any request (its write in a task of
    its own, held until done)."""
    ts: TierSockets | None = app.ctx.tier_sockets
    if ts is None:
        return
    task = asyncio.create_task(ts.release(tenant_id), name="tier-socket-release")
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


def install(app: Sanic) -> None:
    app.ctx.tier_sockets = TierSockets(app.ctx)

    @app.before_server_stop
    async def _stop(app: Sanic) -> None:
        await app.ctx.tier_sockets.stop()

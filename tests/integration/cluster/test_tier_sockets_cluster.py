"""A tier's ``max_connections`` with three worker processes (docs/admin.md#sla-tiers): the
tenant's sockets are counted in the store, per process, and the cap holds for their sum — with
sockets open in at least two processes (seen in the store's per-process counts), the next
upgrade is refused whichever process takes it, and a socket closed in one makes room."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from tests.support.api import Api
from tests.support.server import Server, open_database

CAP = 4


def _held(srv: Server, tenant_id: str) -> dict[str, int]:
    conn = open_database(srv.data_dir, readonly=True)  # SQLite file or PostgreSQL database
    try:
        return {r[0]: r[1] for r in conn.execute(
            "SELECT holder, n FROM tenant_sockets WHERE tenant_id = ? AND holder <> '' AND n > 0",
            (tenant_id,))}
    finally:
        conn.close()


async def test_the_cap_holds_across_processes(cluster: Server, capi: Api,
                                              spread: aiohttp.ClientSession) -> None:
    tenant = await capi.tenant("cluster-sockets")
    name = f"sockets-{uuid.uuid4().hex[:6]}"
    await capi.ok("POST", "/api/admin/tiers", 201, headers=capi.admin,
                  json={"name": name, "max_connections": CAP})
    await capi.ok("PUT", f"/api/admin/tenants/{tenant['id']}/tier", headers=capi.admin,
                  json={"tier": name})
    channel = await capi.channel(tenant["id"])
    token = await capi.channel_token(channel["id"])
    conv = await capi.conversation(token)

    async def url() -> str:
        user = (await capi.ok("POST", "/api/v1/tokens", 201, json={
            "conversation_id": conv["id"], "user_id": f"u-{uuid.uuid4().hex}"},
            headers={"x-channel-token": token}))["token"]
        return f"{cluster.ws_url}/socket/websocket?token={user}&vsn=2.0.0"

    held: list[Any] = []
    try:
        held += [await spread.ws_connect(await url()) for _ in range(CAP)]
        # Until the sockets sit in at least two processes (each connection may land on any).
        deadline = time.monotonic() + 30
        while len(_held(cluster, tenant["id"])) < 2:
            assert time.monotonic() < deadline, _held(cluster, tenant["id"])
            await held.pop(0).close()
            while sum(_held(cluster, tenant["id"]).values()) >= CAP:  # counted down on close
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            held.append(await spread.ws_connect(await url()))
        assert sum(_held(cluster, tenant["id"]).values()) == CAP
        for _ in range(6):  # on whichever process: refused
            try:
                extra = await spread.ws_connect(await url())
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 429
            else:
                held.append(extra)
                raise AssertionError("a socket past the tier's cap was accepted")
        assert sum(_held(cluster, tenant["id"]).values()) == CAP
    finally:
        for ws in held:
            await ws.close()

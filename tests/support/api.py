"""A thin async client for tests: the management API to set things up, raw calls for the rest."""

from __future__ import annotations

from typing import Any

import aiohttp

from .server import ADMIN_TOKEN


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}

    async def call(
        self, method: str, path: str, *, json: Any = None, data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        async with self.session.request(
            method, self.base + path, json=json, data=data, headers=headers
        ) as r:
            raw = await r.read()
            ctype = r.headers.get("content-type", "")
            body: Any = raw
            if "json" in ctype and raw:
                import json as _json

                body = _json.loads(raw)
            elif raw:
                body = raw.decode(errors="replace")
            return r.status, body, r.headers

    async def ok(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        status, body, _ = await self.call(method, path, **kw)
        assert status == expect, f"{method} {path} → {status}: {body}"
        return body

    # -- fixtures through the management API ------------------------------------------------
    async def tenant(self, name: str = "acme") -> dict[str, Any]:
        return (await self.ok("POST", "/api/admin/tenants", 201, json={"name": name},
                              headers=self.admin))["data"]

    async def channel(self, tenant_id: str, name: str = "web", type: str = "websocket",
                      mode: str | None = None, config: dict[str, Any] | None = None,
                      **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"tenant_id": tenant_id, "name": name, "type": type,
                                "config": config or {}, **extra}
        if mode:
            body["mode"] = mode
        return (await self.ok("POST", "/api/admin/channels", 201, json=body, headers=self.admin))["data"]

    async def channel_token(self, channel_id: str) -> str:
        return (await self.ok("POST", f"/api/admin/channels/{channel_id}/token",
                              headers=self.admin))["token"]

    async def conversation(self, channel_token: str, **body: Any) -> dict[str, Any]:
        return (await self.ok("POST", "/api/v1/conversations", 201, json=body,
                              headers={"x-channel-token": channel_token}))["data"]

    async def post_activity(self, conversation_id: str, api_key: str, expect: int = 201,
                            key: str | None = None, **body: Any) -> dict[str, Any]:
        headers = {"x-api-key": api_key}
        if key is not None:
            headers["x-idempotency-key"] = key
        return (await self.ok("POST", f"/api/v1/conversations/{conversation_id}/activities",
                              expect, json=body, headers=headers))["data"]

    async def setup(self, name: str = "acme", type: str = "websocket", **channel_kw: Any) -> dict[str, Any]:
        """A tenant, a channel, a channel token and a conversation."""
        t = await self.tenant(name)
        c = await self.channel(t["id"], type=type, **channel_kw)
        tok = await self.channel_token(c["id"])
        conv = await self.conversation(tok)
        return {"tenant": t, "api_key": t["api_key"], "channel": c, "channel_token": tok,
                "conversation": conv}

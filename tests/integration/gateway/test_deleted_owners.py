"""Tokens outlive what they name: a token still validly signed, whose channel or tenant was
deleted, opens nothing — REST (channel and user tokens, API key), the Converger API and the
legacy socket — and answers like any other refused credential, never a 500."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.realtime.conftest import bearer, make_cg_world, user_token
from tests.integration.realtime.phx import Phx
from tests.support.api import Api
from tests.support.server import Server

CG = "/api/v1/converger"


async def _credentials(api: Api) -> dict[str, Any]:
    w = await make_cg_world(api)
    w["channel_token"] = await api.channel_token(w["channel"]["id"])
    legacy = await api.conversation(w["channel_token"])
    w["legacy_conv"] = legacy["id"]
    w["user_token"] = await user_token(api, w["channel_token"], legacy["id"])
    return w


async def _refused(api: Api, server: Server, session: aiohttp.ClientSession,
                   w: dict[str, Any]) -> list[tuple[str, int, str]]:
    """Every credential of ``w`` tried once: (what, status, code)."""
    out = []
    for what, method, path, headers in (
        ("channel token", "POST", "/api/v1/conversations", {"x-channel-token": w["channel_token"]}),
        ("user token", "GET", f"/api/v1/conversations/{w['legacy_conv']}/activities",
         {"x-channel-token": w["user_token"]}),
        ("api key", "GET", f"/api/v1/conversations/{w['legacy_conv']}/activities",
         {"x-api-key": w["api_key"]}),
        ("converger token", "POST", f"{CG}/conversations", bearer(w["token"])),
        ("converger conversation token", "GET", f"{CG}/conversations/{w['conv_id']}/activities",
         bearer(w["conv_token"])),
        ("channel secret", "POST", f"{CG}/tokens/generate", bearer(w["secret"])),
    ):
        status, body, headers_in = await api.call(method, path, json={} if method == "POST" else None,
                                                  headers=headers)
        assert status in (401, 403, 404), (what, status, body)
        assert headers_in["content-type"].startswith("application/problem+json"), what
        out.append((what, status, body["code"]))
    # The legacy socket: the user token's join is refused.
    phx = await Phx.connect(session, server.ws_url, "/socket/websocket", w["user_token"])
    try:
        r = await phx.join(f"conversation:{w['legacy_conv']}")
        assert r.payload["status"] == "error", r.payload
        out.append(("socket join", 0, r.payload["response"].get("reason", "")))
    except ConnectionError:  # refused at connect: also fine
        out.append(("socket join", 0, "refused at connect"))
    finally:
        await phx.close()
    return out


async def test_tokens_of_a_deleted_channel_open_nothing(server: Server, api: Api,
                                                        session: aiohttp.ClientSession) -> None:
    w = await _credentials(api)
    # Everything works before.
    await api.ok("POST", f"{CG}/conversations", 201, headers=bearer(w["token"]))
    await api.ok("GET", f"/api/v1/conversations/{w['legacy_conv']}/activities",
                 headers={"x-channel-token": w["user_token"]})
    await api.ok("DELETE", f"/api/admin/channels/{w['channel']['id']}", 204, headers=api.admin)
    refused = {what: (status, code) for what, status, code in await _refused(api, server, session, w)}
    assert refused["channel token"] == (401, "invalid_token")
    assert refused["user token"] == (404, "not_found")  # the tenant is there; its conversation not
    assert refused["converger token"] == (403, "channel_inactive")
    assert refused["converger conversation token"] == (403, "channel_inactive")
    assert refused["channel secret"][0] == 401


async def test_tokens_of_a_deleted_tenant_open_nothing(server: Server, api: Api,
                                                       session: aiohttp.ClientSession) -> None:
    w = await _credentials(api)
    await api.ok("DELETE", f"/api/admin/tenants/{w['tenant']['id']}", 204, headers=api.admin)
    refused = {what: (status, code) for what, status, code in await _refused(api, server, session, w)}
    assert refused["user token"] == (401, "tenant_not_found")
    assert refused["api key"] == (401, "invalid_api_key")
    assert refused["converger token"] == (403, "channel_inactive")

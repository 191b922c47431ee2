"""Fixtures for the real-time tests: a tenant with a websocket channel, a conversation and a
legacy user token for it, on the session server."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.support.api import Api

_names = itertools.count(1)


async def user_token(api: Api, channel_token: str, conversation_id: str, user: str = "u1") -> str:
    body = await api.ok("POST", "/api/v1/tokens", 201,
                        json={"conversation_id": conversation_id, "user_id": user},
                        headers={"x-channel-token": channel_token})
    return body["token"]


async def make_world(api: Api) -> dict[str, Any]:
    w = await api.setup(name=f"rt-{next(_names)}")
    w["conv_id"] = w["conversation"]["id"]
    w["user_token"] = await user_token(api, w["channel_token"], w["conv_id"])
    return w


@pytest.fixture
async def world(api: Api) -> dict[str, Any]:
    return await make_world(api)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def make_cg_world(api: Api) -> dict[str, Any]:
    """A tenant and channel, an unscoped Converger token, and a conversation with its token."""
    t = await api.tenant(f"cg-{next(_names)}")
    c = await api.channel(t["id"], type="websocket")
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate", headers=bearer(c["secret"]))
    conv = await api.ok("POST", "/api/v1/converger/conversations", 201,
                        headers=bearer(gen["token"]))
    return {"tenant": t, "api_key": t["api_key"], "channel": c, "secret": c["secret"],
            "token": gen["token"], "conv": conv, "conv_id": conv["conversationId"],
            "conv_token": conv["token"]}


@pytest.fixture
async def cg(api: Api) -> dict[str, Any]:
    return await make_cg_world(api)

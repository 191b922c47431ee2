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

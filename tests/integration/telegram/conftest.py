"""Fixtures for the Telegram and Slack integration tests: a gateway of their own (retry waits
scaled down, so the queue's schedule runs without real waiting) and helpers shared by both."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import Server

_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def chat_env() -> dict[str, str]:
    # The stand-ins listen on loopback, which tests.support.server's CONVERGER_OUTBOUND_ALLOW
    # lets the gateway call.
    return {"CONVERGER_BACKOFF_SCALE": "0.001", "CONVERGER_WEBHOOK_TIMEOUT": "2"}


@pytest.fixture(scope="session")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("chat"), env=chat_env()).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
async def capi(chat_server: Server, session: aiohttp.ClientSession) -> Api:
    return Api(session, chat_server.url)


async def conversations_of(api: Api, channel_id: str) -> list[dict[str, Any]]:
    return (await api.ok("GET", f"/api/admin/conversations?channel_id={channel_id}&limit=100",
                         headers=api.admin))["data"]


async def health_of(api: Api, channel_id: str) -> str | None:
    rows = (await api.ok("GET", "/api/admin/health", headers=api.admin))["data"]
    return next((r["status"] for r in rows if r["channel_id"] == channel_id), None)


async def action(api: Api, channel_id: str, name: str, expect: int = 200) -> Any:
    return await api.ok("POST", f"/api/admin/channels/{channel_id}/actions/{name}", expect,
                        headers=api.admin)


async def download(api: Api, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET a stored upload's bytes."""
    async with api.session.get(api.base + url, headers=headers) as resp:
        return resp.status, await resp.read()

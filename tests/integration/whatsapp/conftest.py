"""Fixtures for the WhatsApp integration tests: a gateway of their own (retry waits scaled
down, so the queue's schedule is exercised without real waiting), fresh stand-in provider
servers per test, and small helpers to wire a tenant and a WhatsApp channel to them."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest

from tests.integration.whatsapp.standins import InfobipStandIn, MetaStandIn
from tests.support.api import Api
from tests.support.server import Server

META_TOKEN = "EAAG-integration-meta-token"
VERIFY_TOKEN = "hub-verify-integration"
PNID = "106540352242922"
IB_KEY = "ib-integration-key"
IB_SENDER = "447860099299"

_names = itertools.count(1)
_numbers = itertools.count(1)
T = TypeVar("T")


def new_phone() -> str:
    """A distinct WhatsApp number per use, so tests on the shared server never meet."""
    return f"1650555{next(_numbers):04d}"


@pytest.fixture(scope="session")
def wa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The production rate limits (the shared test servers turn them off): a provider's
    # webhooks must get through them.
    srv = Server(tmp_path_factory.mktemp("whatsapp"), env={
        "CONVERGER_BACKOFF_SCALE": "0.001", "CONVERGER_WEBHOOK_TIMEOUT": "2",
        "CONVERGER_RATE_LIMIT_TOKENS": "10", "CONVERGER_RATE_LIMIT_ACTIVITIES": "6000",
    }).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
async def wapi(wa_server: Server, session: aiohttp.ClientSession) -> Api:
    return Api(session, wa_server.url)


@pytest.fixture
async def meta() -> AsyncIterator[MetaStandIn]:
    async with MetaStandIn(token=META_TOKEN, phone_number_id=PNID) as s:
        yield s  # type: ignore[misc]


@pytest.fixture
async def infobip() -> AsyncIterator[InfobipStandIn]:
    async with InfobipStandIn(api_key=IB_KEY, sender=IB_SENDER) as s:
        yield s  # type: ignore[misc]


async def meta_channel(api: Api, standin: MetaStandIn, mode: str = "duplex",
                       **config: Any) -> dict[str, Any]:
    """A tenant and a whatsapp_meta channel whose Graph API is the stand-in."""
    tenant = await api.tenant(f"wa-meta-{next(_names)}")
    cfg = {"phone_number_id": PNID, "access_token": META_TOKEN, "verify_token": VERIFY_TOKEN,
           "api_base_url": standin.url, "api_version": standin.version, **config}
    if "app_secret" not in cfg and mode != "outbound":
        cfg["allow_unsigned"] = True  # the explicit opt-out (issue 13); signatures: own tests
    channel = await api.channel(tenant["id"], name="whatsapp", type="whatsapp_meta", mode=mode,
                                config=cfg)
    return {"tenant": tenant, "api_key": tenant["api_key"], "channel": channel}


async def infobip_channel(api: Api, standin: InfobipStandIn, **config: Any) -> dict[str, Any]:
    tenant = await api.tenant(f"wa-ib-{next(_names)}")
    cfg = {"base_url": standin.url, "api_key": IB_KEY, "sender": IB_SENDER, **config}
    if "webhook_password" not in cfg:
        cfg["allow_unsigned"] = True  # the explicit opt-out (issue 13); signatures: own tests
    channel = await api.channel(tenant["id"], name="infobip", type="whatsapp_infobip",
                                mode="duplex", config=cfg)
    return {"tenant": tenant, "api_key": tenant["api_key"], "channel": channel}


async def post_inbound(api: Api, channel_id: str, payload: Any, *, raw: bytes | None = None,
                       headers: dict[str, str] | None = None) -> tuple[int, Any]:
    kw: dict[str, Any] = {"headers": {"content-type": "application/json", **(headers or {})}}
    if raw is not None:
        kw["data"] = raw
    else:
        kw["json"] = payload
    status, body, _ = await api.call("POST", f"/api/v1/channels/{channel_id}/inbound", **kw)
    return status, body


async def activities(api: Api, api_key: str, conversation_id: str) -> list[dict[str, Any]]:
    body = await api.ok("GET", f"/api/v1/conversations/{conversation_id}/activities",
                        headers={"x-api-key": api_key})
    return body["data"]


async def deliveries(api: Api, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return (await api.ok("GET", f"/api/admin/deliveries?limit=500&{query}",
                         headers=api.admin))["data"]


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = 10.0) -> T:
    """Poll ``probe`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out waiting for {what}: last saw {last!r}"
        await asyncio.sleep(0.02)


async def delivery_of(api: Api, activity_id: str, done: Callable[[dict[str, Any]], bool],
                      timeout: float = 10.0) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        rows = await deliveries(api, activity_id=activity_id)
        return rows[0] if rows and done(rows[0]) else None
    return await eventually(probe, f"delivery of {activity_id}", timeout)

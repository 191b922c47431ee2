"""Faults of the event stream (docs/pipelines.md): an event too large for the broker (NATS
``max_payload``, RabbitMQ ``max_message_size``) goes out without its data — the envelope with
its ids, ``"truncated": true`` — with an error in the log and a count in ``/readyz``, and the
relay moves on to the next events instead of stalling; a malformed or unsupported
``CONVERGER_EVENTS_URL`` stops start-up with a message naming it. Real brokers on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.brokers import Nats, Rabbit
from tests.support.server import Server

LIMIT = 16_384  # the broker's limit on one message in these tests
BIG = 20_000  # characters of the oversized activity's text
# The next one fits, and is larger than RabbitMQ's smallest frame_max (4096, set in its test):
# its body goes out in several frames.
AFTER = "after " + "y" * 10_000


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _oversized(tmp_path: Path, url: str,
                     consume: Callable[[int], Awaitable[list[dict[str, Any]]]]) -> None:
    srv = Server(tmp_path / "data", env={"CONVERGER_EVENTS_URL": url}).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("big")
            conv = s["conversation"]["id"]

            async def events() -> dict[str, Any]:
                return dict(srv.readiness()["checks"].get("events", {}))

            async def connected() -> bool:
                return (await events()).get("state") == "connected"

            await _until(connected, 30, "the relay never connected")
            ids = []
            for text in ("before", "x" * BIG, AFTER):
                act = await api.post_activity(conv, s["api_key"], text=text)
                ids.append(act["id"])

            async def drained() -> bool:
                r = await events()
                return r.get("state") == "connected" and r.get("behind") == 0

            await _until(drained, 30, "the relay stalled on the oversized event")
            r = await events()
            assert r["oversized"] == {"truncated": 1, "skipped": 0, "last": f"msg_{ids[1]}"}
            assert f"events: the broker refused msg_{ids[1]}" in srv.log()
            assert "publishing it without its data (truncated: true)" in srv.log()

        got = await consume(3)
        # A round that held the oversized event is published again one by one: messages before
        # it may come twice, with the same id and body (at least once).
        first: dict[str, dict[str, Any]] = {}
        for m in got:
            assert first.setdefault(m["id"], m) == m, "a repeat differs from the first copy"
        acts = [m for m in first.values() if m["type"] == "activity.created"]
        assert [(m["seq"], m["id"]) for m in acts] == [(i + 1, f"msg_{a}")
                                                     for i, a in enumerate(ids)]
        big = acts[1]
        assert big["truncated"] is True and big["data"] is None
        assert big["conversation_id"] == conv and big["tenant_id"] == s["tenant"]["id"]
        assert acts[0]["data"]["text"] == "before" and acts[2]["data"]["text"] == AFTER
        assert "truncated" not in acts[2]
    finally:
        srv.stop()


async def test_an_event_over_nats_max_payload_goes_out_truncated_and_the_relay_moves_on(
        tmp_path: Path) -> None:
    import nats

    if not Nats.available():
        pytest.fail("nats-server is missing: run tests/setup.sh")
    broker = Nats(tmp_path / "nats", max_payload=LIMIT).start()

    async def consume(count: int) -> list[dict[str, Any]]:
        nc = await nats.connect(broker.url)
        try:
            assert nc.max_payload == LIMIT  # the broker really has the small limit
            sub = await nc.jetstream().pull_subscribe("converger.*.*.activity.>",
                                                      durable="big", stream="CONVERGER_EVENTS")
            out: list[dict[str, Any]] = []
            while len({m["id"] for m in out}) < count:
                for msg in await sub.fetch(count, timeout=10):
                    await msg.ack()
                    out.append(json.loads(msg.data))
            return out
        finally:
            await nc.close()

    try:
        await _oversized(tmp_path, broker.url, consume)
    finally:
        broker.stop()


async def test_an_event_over_rabbitmq_max_message_size_goes_out_truncated_and_the_relay_moves_on(
        tmp_path: Path) -> None:
    import aio_pika

    if not Rabbit.available():
        pytest.fail("rabbitmq-server is missing: run tests/setup.sh")
    broker = Rabbit(max_message_size=LIMIT, frame_max=4096)
    try:
        broker.start()
        conn = await aio_pika.connect(broker.url)
        async with conn:  # a queue bound before anything is published
            ch = await conn.channel()
            ex = await ch.declare_exchange("converger.events", aio_pika.ExchangeType.TOPIC,
                                           durable=True)
            q = await ch.declare_queue("big", durable=True)
            await q.bind(ex, routing_key="converger.*.*.activity.#")

        async def consume(count: int) -> list[dict[str, Any]]:
            conn = await aio_pika.connect(broker.url)
            async with conn:
                ch = await conn.channel()
                q = await ch.declare_queue("big", durable=True)
                out: list[dict[str, Any]] = []
                async with asyncio.timeout(10), q.iterator() as messages:
                    async for msg in messages:
                        await msg.ack()
                        out.append(json.loads(msg.body))
                        if len({m["id"] for m in out}) == count:
                            break
                return out

        await _oversized(tmp_path, broker.url, consume)
    finally:
        broker.close()


@pytest.mark.parametrize(("url", "says"), [
    ("nats://127.0.0.1:notaport", "is malformed"),
    ("kafka://127.0.0.1:9092", "kafka:// is not supported"),
    ("nats:/no-host", "names no host"),
])
def test_a_malformed_events_url_stops_start_up_with_a_clear_message(
        tmp_path: Path, url: str, says: str) -> None:
    srv = Server(tmp_path / "data", env={"CONVERGER_EVENTS_URL": url})
    proc = srv.spawn()
    try:
        code = proc.wait(60)
    finally:
        srv.stop()
    assert code != 0
    log = srv.log()
    assert "CONVERGER_EVENTS_URL" in log and says in log, log
    assert "Traceback" not in log, log

"""The activity event stream (``CONVERGER_EVENTS_URL``, docs/pipelines.md) against real brokers:
NATS JetStream (Debian's ``nats-server``) and RabbitMQ (Debian's ``rabbitmq-server``), each on a
free loopback port in a temp directory.

A two-process gateway takes activities across many conversations while the broker is stopped
(the API keeps answering 201, ``/readyz`` says the relay is disconnected, the activities wait in
the outbox), the broker comes back, and the whole gateway is SIGKILLed while the relay is
publishing the backlog. The consumer then sees every accepted activity, per conversation in
``seq`` order, and any duplicate carries the same id."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.brokers import Nats, Rabbit
from tests.support.server import Server

CONVERSATIONS = 12
PER_PHASE = 80  # activities posted in each of the four phases
EXCHANGE = "converger.events"


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


class Posting:
    """Posts activities round-robin over the conversations and keeps what was accepted."""

    def __init__(self, session: aiohttp.ClientSession, key: str, convs: list[str]) -> None:
        self.session, self.key, self.convs = session, key, convs
        self.accepted: dict[str, tuple[str, int]] = {}  # activity id -> (conversation, seq)
        self.n = 0

    async def phase(self, url: str, count: int) -> None:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            conv = self.convs[i % len(self.convs)]
            async with sem, self.session.post(
                    f"{url}/api/v1/conversations/{conv}/activities", json={"text": f"m{i}"},
                    headers={"x-api-key": self.key}) as r:
                body = await r.json()
                assert r.status == 201, body
                self.accepted[body["data"]["id"]] = (conv, body["data"]["seq"])

        start, self.n = self.n, self.n + count
        await asyncio.gather(*(one(i) for i in range(start, start + count)))


def _check(accepted: dict[str, tuple[str, int]], messages: list[dict[str, Any]],
           tenant: str, channel: str) -> int:
    """Every accepted activity is there; per conversation in seq order; duplicates only with
    the same id. Returns the number of duplicates."""
    activities = [m for m in messages if m["type"] == "activity.created"]
    by_id: dict[str, dict[str, Any]] = {}
    duplicates = 0
    order: dict[str, list[int]] = {}
    for m in activities:
        assert m["schema_version"] == 1 and m["tenant_id"] == tenant
        assert m["channel_id"] == channel
        assert m["id"] == f"msg_{m['data']['id']}"
        if m["id"] in by_id:
            assert by_id[m["id"]] == m, "a duplicate differs from the first copy"
            duplicates += 1
            continue
        by_id[m["id"]] = m
        order.setdefault(m["conversation_id"], []).append(m["seq"])
    seen = {m["data"]["id"]: (m["conversation_id"], m["seq"]) for m in by_id.values()}
    missing = set(accepted) - set(seen)
    assert not missing, f"{len(missing)} accepted activities never published"
    for conv, seqs in order.items():
        assert seqs == sorted(seqs), f"conversation {conv} out of seq order"
        assert seqs == list(range(1, len(seqs) + 1)), f"conversation {conv} has a gap"
    for aid, where in accepted.items():
        assert seen[aid] == where
    return duplicates


async def _scenario(tmp_path: Path, url: str, stop_broker: Callable[[], None],
                    start_broker: Callable[[], None],
                    consume: Callable[[int], Awaitable[list[dict[str, Any]]]]) -> None:
    env = {"CONVERGER_WORKERS": "2", "CONVERGER_EVENTS_URL": url}
    srv = Server(tmp_path / "data", env=env).start(timeout=60)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("events")
            convs = [s["conversation"]["id"]] + [
                (await api.conversation(s["channel_token"]))["id"]
                for _ in range(CONVERSATIONS - 1)]
            posting = Posting(session, s["api_key"], convs)

            async def relay() -> dict[str, Any]:
                return dict(srv.readiness()["checks"].get("events", {}))

            async def connected() -> bool:
                return (await relay()).get("state") == "connected"

            await _until(connected, 30, "the relay never connected")
            await posting.phase(srv.url, PER_PHASE)

            # The broker goes away: the API still takes activities (they wait in the outbox).
            stop_broker()
            await posting.phase(srv.url, PER_PHASE)

            async def disconnected() -> bool:
                r = await relay()
                return r.get("state") == "disconnected" and "warning" in r

            await _until(disconnected, 30, "/readyz never showed the relay disconnected")
            ready = srv.readiness()
            assert ready["status"] == "ok", ready  # an outage does not make the gateway unready
            assert ready["checks"]["events"]["behind"] > 0
            await posting.phase(srv.url, PER_PHASE)
            start_broker()

            # The whole gateway is SIGKILLed while the relay publishes the backlog.
            async def publishing() -> bool:
                r = await relay()
                return r.get("state") == "connected" and r.get("published", 0) > 0

            await _until(publishing, 30, "the relay never resumed")
            pids = srv.pids()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            assert srv.proc is not None
            srv.proc.wait(10)
        srv.start(timeout=60)
        async with aiohttp.ClientSession() as session:
            posting.session = session
            await posting.phase(srv.url, PER_PHASE)

            async def drained() -> bool:
                r = await relay()
                return r.get("state") == "connected" and r.get("behind") == 0

            await _until(drained, 40, "the relay never caught up")
        assert srv.log().count("events: relay starting") == 2, "one relay per gateway start"
        messages = await consume(len(posting.accepted))
        duplicates = _check(posting.accepted, messages, s["tenant"]["id"], s["channel"]["id"])
        print(f"{len(posting.accepted)} activities, {len(messages)} messages, "
              f"{duplicates} duplicates")
    finally:
        srv.stop(timeout=40)


@pytest.fixture
def nats_broker(tmp_path: Path) -> Iterator[Nats]:
    if not Nats.available():
        pytest.fail("nats-server is missing: run tests/setup.sh")
    broker = Nats(tmp_path / "nats").start()
    yield broker
    broker.stop()


async def test_nats_jetstream_sees_every_activity_in_order_through_an_outage_and_a_crash(
        tmp_path: Path, nats_broker: Nats) -> None:
    import nats

    async def consume(expected: int) -> list[dict[str, Any]]:
        nc = await nats.connect(nats_broker.url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe("converger.*.*.activity.>", durable="test",
                                          stream="CONVERGER_EVENTS")
            out: list[dict[str, Any]] = []
            ids: set[str] = set()
            deadline = time.monotonic() + 20
            while len(ids) < expected and time.monotonic() < deadline:
                try:
                    batch = await sub.fetch(200, timeout=1)
                except nats.errors.TimeoutError:
                    continue
                for msg in batch:
                    body = json.loads(msg.data)
                    assert msg.headers and msg.headers["Nats-Msg-Id"] == body["id"]
                    assert msg.subject.endswith(".activity.created")
                    out.append(body)
                    ids.add(body["id"])
                    await msg.ack()
            return out
        finally:
            await nc.close()

    await _scenario(tmp_path, nats_broker.url, nats_broker.stop, nats_broker.start, consume)


@pytest.fixture
def rabbit_broker() -> Iterator[Rabbit]:
    if not Rabbit.available():
        pytest.fail("rabbitmq-server is missing: run tests/setup.sh")
    broker = Rabbit()
    try:
        yield broker.start()
    finally:
        broker.close()


async def test_rabbitmq_sees_every_activity_in_order_through_an_outage_and_a_crash(
        tmp_path: Path, rabbit_broker: Rabbit) -> None:
    import aio_pika

    async def bind() -> None:  # a durable queue bound before anything is published
        conn = await aio_pika.connect(rabbit_broker.url)
        async with conn:
            ch = await conn.channel()
            ex = await ch.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
            q = await ch.declare_queue("test-activities", durable=True)
            await q.bind(ex, routing_key="converger.*.*.activity.#")

    await bind()

    async def consume(expected: int) -> list[dict[str, Any]]:
        conn = await aio_pika.connect(rabbit_broker.url)
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue("test-activities", durable=True)
            out: list[dict[str, Any]] = []
            ids: set[str] = set()
            async with asyncio.timeout(30), q.iterator() as messages:
                async for msg in messages:
                    body = json.loads(msg.body)
                    assert msg.message_id == body["id"]
                    assert msg.routing_key is not None
                    assert msg.routing_key.endswith(".activity.created")
                    out.append(body)
                    ids.add(body["id"])
                    await msg.ack()
                    if len(ids) >= expected:
                        break
            return out

    await _scenario(tmp_path, rabbit_broker.url, rabbit_broker.stop, rabbit_broker.start,
                    consume)


async def test_a_broker_unreachable_at_start_up_delays_the_stream_but_not_the_api(
        tmp_path: Path) -> None:
    """The gateway starts while nothing listens at the broker's address: the API answers 201,
    ``/readyz`` stays ready and shows the relay disconnected with the error; when the broker
    comes, the waiting activities are published in order."""
    import nats

    broker = Nats(tmp_path / "nats")  # its port is chosen, nothing listens there yet
    srv = Server(tmp_path / "data", env={"CONVERGER_EVENTS_URL": broker.url}).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("late")
            posting = Posting(session, s["api_key"], [s["conversation"]["id"]])
            await posting.phase(srv.url, 20)

            async def disconnected() -> bool:
                r = srv.readiness()
                events = r["checks"].get("events", {})
                return (r["status"] == "ok" and events.get("state") == "disconnected"
                        and "Connect" in str(events.get("error"))
                        and any(w.startswith("events:") for w in r.get("warnings", [])))

            await _until(disconnected, 20, "/readyz never showed the unreachable broker")
            assert "events: broker nats://127.0.0.1:" in srv.log()
            broker.start()
            try:
                async def drained() -> bool:
                    r = srv.readiness()["checks"]["events"]
                    return r["state"] == "connected" and r["behind"] == 0

                await _until(drained, 20, "the relay never published the waiting activities")
                nc = await nats.connect(broker.url)
                try:
                    sub = await nc.jetstream().pull_subscribe(
                        "converger.>", durable="late", stream="CONVERGER_EVENTS")
                    batch = await sub.fetch(50, timeout=5)
                    got = [json.loads(m.data) for m in batch]
                finally:
                    await nc.close()
                assert [m["seq"] for m in got] == list(range(1, 21))
                assert {m["data"]["id"] for m in got} == set(posting.accepted)
            finally:
                broker.stop()
    finally:
        srv.stop()

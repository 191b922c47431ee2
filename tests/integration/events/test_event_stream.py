"""The activity event stream (``CONVERGER_EVENTS_URL``, docs/pipelines.md) against real brokers:
NATS JetStream (Debian's ``nats-server``) and RabbitMQ (Debian's ``rabbitmq-server``), each on a
free loopback port in a temp directory.

The full-size run (issue 16): a two-process gateway takes 10,000 activities posted concurrently
across 50 conversations; in the middle the broker is stopped for 5 s (the API keeps answering
201, ``/readyz`` says the relay is disconnected, the activities wait in the outbox), and later,
while the relay publishes the backlog and posts keep coming, the whole gateway is SIGKILLed once
and restarted (a quarter of the posts before, during the outage, across the kill, after). The
consumer then sees every accepted activity, per conversation in ``seq``
order, duplicates only with the same id, and each conversation's changes (created, closed,
reopened) in commit order before its activities."""

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

from tests.support import postgres
from tests.support.api import Api
from tests.support.brokers import Nats, Rabbit
from tests.support.server import Server

CONVERSATIONS = 50
# On PostgreSQL (make test-postgres) a quarter: the same four phases, outage and SIGKILL with the
# relay reading the outbox from PostgreSQL, where an activity costs ~6 × the CPU it does on
# SQLite (docs/performance.md); the full 10,000 run in make test.
TOTAL = 2_500 if postgres.enabled() else 10_000
OUTAGE = 5.0  # seconds the broker stays stopped
CONCURRENCY = 16
EXCHANGE = "converger.events"


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


class Posting:
    """Posts activities round-robin over the conversations from ``CONCURRENCY`` clients and
    keeps what was accepted (201). While the gateway is down (``up`` cleared) a client whose
    request failed waits for it to come back; such an activity may or may not have committed,
    so it is not counted as accepted (if it committed, the stream carries it all the same)."""

    def __init__(self, url: str, key: str, convs: list[str]) -> None:
        self.url, self.key, self.convs = url, key, convs
        self.accepted: dict[str, tuple[str, int]] = {}  # activity id -> (conversation, seq)
        self.refused: list[str] = []
        self.up = asyncio.Event()
        self.up.set()
        self.n = 0
        self.inflight = 0

    async def phase(self, session: aiohttp.ClientSession, count: int) -> None:
        """Post until ``count`` more activities were accepted."""
        goal = len(self.accepted) + count

        async def client() -> None:
            while len(self.accepted) + self.inflight < goal:
                i, self.n = self.n, self.n + 1
                self.inflight += 1
                conv = self.convs[i % len(self.convs)]
                was_up = self.up.is_set()
                try:
                    async with session.post(
                            f"{self.url}/api/v1/conversations/{conv}/activities",
                            json={"text": f"m{i}"}, headers={"x-api-key": self.key}) as r:
                        body = await r.json(content_type=None)
                        if r.status == 201:
                            self.accepted[body["data"]["id"]] = (conv, body["data"]["seq"])
                        elif was_up and self.up.is_set():
                            self.refused.append(f"{r.status}: {body}")
                except (TimeoutError, aiohttp.ClientError):
                    if was_up and self.up.is_set():
                        await asyncio.sleep(0.05)  # the kill is being noticed: look again
                    await self.up.wait()
                finally:
                    self.inflight -= 1

        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))


def _check(accepted: dict[str, tuple[str, int]], messages: list[dict[str, Any]],
           tenant: str, channel: str, convs: list[str]) -> int:
    """Every accepted activity is there; per conversation in seq order without gaps;
    duplicates only with the same id (and body); every conversation's creation came before
    its activities, the first one's close and reopen between its creation and its first
    activity. Returns the number of duplicates."""
    by_id: dict[str, dict[str, Any]] = {}
    duplicates = 0
    order: dict[str, list[int]] = {}
    changes: dict[str, list[str]] = {}
    for m in messages:
        assert m["schema_version"] == 1 and m["tenant_id"] == tenant
        assert m["channel_id"] == channel
        if m["id"] in by_id:
            assert by_id[m["id"]] == m, "a duplicate differs from the first copy"
            duplicates += 1
            continue
        by_id[m["id"]] = m
        conv = m["conversation_id"]
        if m["type"] == "activity.created":
            assert m["id"] == f"msg_{m['data']['id']}"
            assert conv in changes, f"conversation {conv}: an activity before its creation"
            order.setdefault(conv, []).append(m["seq"])
        else:
            assert m["type"].startswith("conversation.") and m["id"].startswith("msg_c")
            assert conv not in order, f"conversation {conv}: a change after its activities"
            changes.setdefault(conv, []).append(m["type"])
    assert changes[convs[0]] == ["conversation.created", "conversation.closed",
                                 "conversation.reopened"]
    assert all(changes[c] == ["conversation.created"] for c in convs[1:])
    seen = {m["data"]["id"]: (m["conversation_id"], m["seq"]) for m in by_id.values()
            if m["type"] == "activity.created"}
    missing = set(accepted) - set(seen)
    assert not missing, (f"{len(missing)} of {len(accepted)} accepted activities never "
                         f"published (seen {len(seen)}, e.g. {sorted(missing)[:3]})")
    for conv, seqs in order.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"conversation {conv}: out of order or a gap"
    for aid, where in accepted.items():
        assert seen[aid] == where
    return duplicates


async def _scenario(tmp_path: Path, url: str, stop_broker: Callable[[], object],
                    start_broker: Callable[[], object],
                    consume: Callable[[Callable[[str], bool]],
                                      Awaitable[list[dict[str, Any]]]]) -> None:
    env = {"CONVERGER_WORKERS": "2", "CONVERGER_EVENTS_URL": url}
    srv = Server(tmp_path / "data", env=env).start(timeout=60)
    began = time.monotonic()
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2),
                timeout=aiohttp.ClientTimeout(total=30)) as session:
            api = Api(session, srv.url)
            s = await api.setup("events")
            convs = [s["conversation"]["id"]] + [
                (await api.conversation(s["channel_token"]))["id"]
                for _ in range(CONVERSATIONS - 1)]
            for action in ("close", "reopen"):  # conversation changes: published in order
                await api.ok("POST", f"/api/admin/conversations/{convs[0]}/{action}",
                             headers=api.admin)
            posting = Posting(srv.url, s["api_key"], convs)

            async def relay() -> dict[str, Any]:
                try:
                    async with session.get(f"{srv.url}/readyz") as r:
                        return dict((await r.json(content_type=None))["checks"]
                                    .get("events", {}))
                except (TimeoutError, aiohttp.ClientError):
                    return {}

            async def connected() -> bool:
                return (await relay()).get("state") == "connected"

            await _until(connected, 30, "the relay never connected")
            quarter = TOTAL // 4
            await posting.phase(session, quarter)  # 1: with the broker up

            # 2: in the middle the broker goes away for OUTAGE seconds while posts go on: the
            # API still takes activities (they wait in the outbox) and /readyz says so.
            await asyncio.to_thread(stop_broker)
            down = time.monotonic()
            during_outage = asyncio.create_task(posting.phase(session, quarter))

            async def outage_seen() -> bool:
                r = await relay()
                return (r.get("state") == "disconnected" and "warning" in r
                        and r.get("behind", 0) > 0 and time.monotonic() - down >= OUTAGE)

            await _until(outage_seen, 60, "/readyz never showed the relay disconnected")
            async with session.get(f"{srv.url}/readyz") as r:
                assert r.status == 200  # an outage does not make the gateway unready
            await during_outage
            accepted_in_outage = len(posting.accepted)
            await asyncio.to_thread(start_broker)

            # 3: while the relay publishes the backlog and posts go on, the whole gateway is
            # SIGKILLed once, and started again; the posting clients wait for it and go on.
            before = (await relay()).get("published", 0)
            during_kill = asyncio.create_task(posting.phase(session, quarter))

            async def publishing() -> bool:
                r = await relay()
                return r.get("state") == "connected" and r.get("published", 0) > before

            await _until(publishing, 60, "the relay never resumed")
            posting.up.clear()
            killed_mid_posting = not during_kill.done()
            for pid in srv.pids():
                os.kill(pid, signal.SIGKILL)
            assert srv.proc is not None
            srv.proc.wait(10)
            await asyncio.to_thread(srv.start, 60)
            posting.up.set()
            await during_kill
            await posting.phase(session, TOTAL - len(posting.accepted))  # 4: after the restart
            assert len(posting.accepted) == TOTAL
            assert not posting.refused, posting.refused[:5]

            async def drained() -> bool:
                r = await relay()
                return r.get("state") == "connected" and r.get("behind") == 0

            await _until(drained, 90, "the relay never caught up")
        assert srv.log().count("events: relay starting") == 2, "one relay per gateway start"
        posted = time.monotonic() - began
        waiting = {f"msg_{aid}" for aid in posting.accepted}
        changes: set[str] = set()

        def complete(new: str) -> bool:  # every accepted activity and the 52 changes yet?
            waiting.discard(new)
            if new.startswith("msg_c"):
                changes.add(new)
            return not waiting and len(changes) >= CONVERSATIONS + 2

        messages = await consume(complete)
        duplicates = _check(posting.accepted, messages, s["tenant"]["id"], s["channel"]["id"],
                            convs)
        print(f"{len(posting.accepted)} activities ({accepted_in_outage} accepted before the "
              f"broker came back; killed while posting: {killed_mid_posting}), "
              f"{len(messages)} messages, {duplicates} duplicates; posted and relayed in "
              f"{posted:.1f}s")
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

    async def consume(complete: Callable[[str], bool]) -> list[dict[str, Any]]:
        nc = await nats.connect(nats_broker.url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe("converger.>", durable="test",
                                          stream="CONVERGER_EVENTS")
            out: list[dict[str, Any]] = []
            done = False
            deadline = time.monotonic() + 30
            while not done and time.monotonic() < deadline:
                try:
                    batch = await sub.fetch(500, timeout=1)
                except TimeoutError:  # nats-py raises both its own and asyncio's
                    continue
                for msg in batch:
                    await msg.ack()
                    body = json.loads(msg.data)
                    assert msg.headers and msg.headers["Nats-Msg-Id"] == body["id"]
                    assert msg.subject.endswith("." + body["type"])
                    if body["type"] != "delivery.status":
                        out.append(body)
                        done = complete(body["id"])
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
            await q.bind(ex, routing_key="converger.*.*.conversation.#")

    await bind()

    async def consume(complete: Callable[[str], bool]) -> list[dict[str, Any]]:
        conn = await aio_pika.connect(rabbit_broker.url)
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=500)
            q = await ch.declare_queue("test-activities", durable=True)
            out: list[dict[str, Any]] = []
            done = False
            async with q.iterator() as messages:
                while not done:
                    try:  # until complete, or nothing more came for a while (then _check says)
                        msg = await asyncio.wait_for(anext(messages), 15)
                    except TimeoutError:
                        break
                    await msg.ack()
                    body = json.loads(msg.body)
                    assert msg.message_id == body["id"]
                    assert msg.routing_key is not None
                    assert msg.routing_key.endswith("." + body["type"])
                    out.append(body)
                    done = complete(body["id"])
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
            posting = Posting(srv.url, s["api_key"], [s["conversation"]["id"]])
            await posting.phase(session, 20)

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
                    got = [m for m in got if m["type"] == "activity.created"]
                finally:
                    await nc.close()
                assert [m["seq"] for m in got] == list(range(1, 21))
                assert {m["data"]["id"] for m in got} == set(posting.accepted)
            finally:
                broker.stop()
    finally:
        srv.stop()

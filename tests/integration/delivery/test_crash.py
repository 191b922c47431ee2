"""Crash safety: SIGKILL the server in the middle of delivering 1,000 activities (the receiver
has answered 150 and holds the next ones unanswered, so some are in flight and most pending at
the kill on any machine), start it again, and every activity is delivered at least once; every
delivery row ends ``sent``; a duplicate carries the same ``webhook-id`` (the receiver's dedupe
key)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import aiohttp

from tests.integration.delivery.conftest import webhook_setup
from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api
from tests.support.server import Server, open_database

N = 1000


async def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_sigkill_mid_delivery_loses_nothing(
    fresh_server: Server, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    # The kill lands mid-way whatever the machine's speed: after the 150th call the receiver
    # answers nothing until the kill (those calls are in flight then, the rest still pending).
    receiver.hold("crash", after=150)
    srv = fresh_server.start()
    api = Api(session, srv.url)
    s = await webhook_setup(api, receiver, "crash")
    conv, key = s["conversation"]["id"], s["api_key"]
    sem = asyncio.Semaphore(32)

    async def post(i: int) -> str:
        async with sem:
            return (await api.post_activity(conv, key, text=f"m{i}"))["id"]

    ids = set(await asyncio.gather(*(post(i) for i in range(N))))
    assert len(ids) == N

    async def some_in_flight() -> bool:  # 150 answered, and more sent that wait for answers
        return receiver.held["crash"] > 0

    try:
        await _wait(some_in_flight, 30, "no deliveries in flight before the kill")
        srv.kill()
        at_kill = len(receiver.calls["crash"])
    finally:
        receiver.release("crash")
    assert at_kill < N, "the kill came too late to test anything"
    print(f"killed after {at_kill} calls")

    srv.start()

    async def all_done() -> bool:
        _, body, _ = await api.call(
            "GET", f"/api/admin/deliveries?channel_id={s['channel']['id']}&status=pending&limit=1",
            headers=api.admin)
        return body["data"] == []

    await _wait(all_done, 45, "deliveries still pending after the restart")
    srv.stop()

    db = open_database(srv.data_dir)
    rows = db.execute("SELECT id, activity_id, status FROM deliveries WHERE channel_id = ?",
                      (s["channel"]["id"],)).fetchall()
    db.close()
    assert len(rows) == N
    assert {status for _, _, status in rows} == {"sent"}
    delivery_of = {activity: did for did, activity, _ in rows}
    assert set(delivery_of) == ids

    seen: dict[str, set[str]] = defaultdict(set)
    for call in receiver.calls["crash"]:
        seen[call.json()["id"]].add(call.headers["webhook-id"])
    print(f"{len(receiver.calls['crash'])} calls for {N} activities")
    assert set(seen) == ids  # every activity arrived at least once
    for activity_id, webhook_ids in seen.items():
        assert webhook_ids == {delivery_of[activity_id]}  # duplicates share the delivery id


async def test_sigterm_releases_every_lease(
    fresh_server: Server, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    # Deliveries after the 20th stay unanswered until the stop: in flight when SIGTERM comes,
    # and the rest still pending, however fast the machine sends them.
    receiver.hold("term", after=20)
    srv = fresh_server.start()
    api = Api(session, srv.url)
    s = await webhook_setup(api, receiver, "term")
    for i in range(60):
        await api.post_activity(s["conversation"]["id"], s["api_key"], text=f"t{i}")

    async def in_flight() -> bool:
        return receiver.held["term"] > 0

    try:
        await _wait(in_flight, 20, "workers never started")
        assert srv.stop() == 0
    finally:
        receiver.release("term")
    db = open_database(srv.data_dir)
    held = db.execute("SELECT count(*) FROM deliveries WHERE claim_token IS NOT NULL").fetchone()[0]
    pending = db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]
    db.close()
    assert held == 0 and pending > 0

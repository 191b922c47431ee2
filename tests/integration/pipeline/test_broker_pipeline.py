"""The broker pipeline end to end, on RabbitMQ and on NATS JetStream (docs/pipelines.md):

- 5,000 deliveries through two ``converger deliver`` processes, one SIGKILLed mid-run: every
  delivery is ``sent`` with one recorded attempt, the receiver got each at least once, and only
  the killed worker's in-flight jobs (at most its prefetch) twice;
- a receiver answering 500 three times then 200: ``sent`` after 4 attempts, each retry due by
  the 30/90/270 s schedule on an injected clock (``CONVERGER_CLOCK_FILE``), with ``serve``
  consuming (the default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp

from store.util import parse_iso
from tests.support import postgres
from tests.support.api import Api
from tests.support.server import Server, database_env

from .conftest import Broker, Counting, Deliver, pipeline_env, table, until

# On PostgreSQL (make test-postgres) a fifth: two deliver processes, one SIGKILLed mid-run,
# claiming and completing on PostgreSQL, where a delivery costs several times the CPU it does
# on SQLite (docs/performance.md); the full 5,000 run in make test.
N = 1000 if postgres.enabled() else 5000
CONCURRENCY = 8  # per deliver process; its prefetch (jobs it may hold unacked) is twice that


def _queue(data: Path, tenant_id: str, conversation_id: str, n: int) -> None:
    """N activities and their deliveries written with the gateway's own transaction code while
    it is stopped (the API's ingest is not what this test measures), on its store (SQLite or
    PostgreSQL)."""
    from gateway import config
    from gateway.app import open_database
    from gateway.domain.activities import NewActivity, insert_tx
    from store.util import iso, utcnow

    settings = config.load({**os.environ, **database_env(data)}, data_dir=str(data))
    db, _ = open_database(settings)

    def batch(conn: Any, start: int, count: int) -> None:
        for i in range(start, start + count):
            insert_tx(conn, tenant_id, conversation_id, NewActivity(text=f"m{i}"), iso(utcnow()))

    try:
        for start in range(0, n, 500):
            db.write_sync(batch, start, min(500, n - start))
    finally:
        db.close()


async def test_5000_deliveries_through_two_deliver_workers_one_sigkilled(
        broker: tuple[str, Broker], counting: Counting, tmp_path: Path) -> None:
    kind, b = broker
    env = pipeline_env(kind, b.url, CONVERGER_WEBHOOK_TIMEOUT="2")
    data = tmp_path / "data"
    # serve only publishes here: the two deliver processes do every attempt.
    srv = Server(data, env={**env, "CONVERGER_PIPELINE_CONSUME": "0"}).start(timeout=60)
    workers = [Deliver(data, env, "a", CONCURRENCY), Deliver(data, env, "b", CONCURRENCY)]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            api = Api(session, srv.url)
            s = await api.setup("pipe", type="webhook", config={"url": counting.url})
            conv = s["conversation"]["id"]
            # Queued while no worker runs: serve publishes them at start, they wait in the broker.
            srv.stop()
            _queue(data, s["tenant"]["id"], conv, N)
            srv.start(timeout=60)
            # Every row handed to the broker (whichever of serve's processes did it: with
            # CONVERGER_WORKERS=2 each counts its own in /readyz).
            await until(lambda: table(data, "SELECT count(*) FROM deliveries WHERE claim_token "
                                            "LIKE 'bus:%'")[0][0] >= N, 60,
                        "serve did not hand every job to the broker")
            assert counting.total == 0
            for w in workers:
                w.start()
            for w in workers:
                await w.connected()
            # Mid-run: worker a dies with jobs in flight.
            await until(lambda: counting.total >= N // 3, 60, "deliveries did not start")
            workers[0].kill()
            killed_at = counting.total
            assert killed_at < N, "the run was over before the kill"

            await until(lambda: len(counting.counts) >= N, 90,
                        f"only {len(counting.counts)} of {N} deliveries arrived")

            def settled() -> bool:
                return table(data, "SELECT count(*) FROM deliveries WHERE status = 'sent'")[0][0] == N

            await until(settled, 60, "not every delivery recorded as sent")
    finally:
        for w in workers:
            w.stop()
        srv.stop()

    rows = table(data, "SELECT status, attempts, claim_token, count(*) FROM deliveries "
                       "GROUP BY status, attempts, claim_token")
    assert rows == [("sent", 1, None, N)], rows
    ids = {r[0] for r in table(data, "SELECT id FROM deliveries")}
    assert set(counting.counts) == ids  # each at least once, nothing foreign
    twice = {d: c for d, c in counting.counts.items() if c > 1}
    # Only jobs worker a held when it died come again (at most its prefetch), each at most twice,
    # and only ones it could have started before it was killed.
    assert len(twice) <= 2 * CONCURRENCY, twice
    assert all(c == 2 for c in twice.values()), twice
    first_seen = {d: i for i, d in reversed(list(enumerate(counting.order)))}
    assert all(first_seen[d] < killed_at + 2 * CONCURRENCY for d in twice)
    log = workers[1].log()
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 2000):][:5000]


async def test_500_three_times_then_200_is_sent_after_4_attempts_on_the_backoff_schedule(
        broker: tuple[str, Broker], counting: Counting, tmp_path: Path) -> None:
    kind, b = broker
    clock = tmp_path / "clock"
    clock.write_text("0")
    data = tmp_path / "data"
    # serve consumes as well (the default): one process does everything.
    srv = Server(data, env=pipeline_env(kind, b.url, CONVERGER_CLOCK_FILE=str(clock))).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("retry", type="webhook", config={"url": counting.url})
            counting.failing = 3
            act = await api.post_activity(s["conversation"]["id"], s["api_key"], text="hi")

            def row() -> tuple[str, int, str | None, str | None]:
                got = table(data, "SELECT status, attempts, next_attempt_at, last_error "
                                  "FROM deliveries WHERE activity_id = ?", act["id"])
                return got[0]

            offset = 0.0
            for attempt, wait in ((1, 30), (2, 90), (3, 270)):
                await until(lambda a=attempt: row()[1] == a, 30, f"attempt {attempt} not recorded")
                status, attempts, due, error = row()
                assert status == "pending" and error, row()
                # Due `wait` s after the attempt by the injected clock (± the attempt's time).
                attempted = table(data, "SELECT at FROM delivery_attempts WHERE delivery_id = ? "
                                        "ORDER BY attempt DESC LIMIT 1",
                                  table(data, "SELECT id FROM deliveries WHERE activity_id = ?",
                                        act["id"])[0][0])[0][0]
                assert due is not None
                gap = (parse_iso(due) - parse_iso(attempted)).total_seconds()
                assert abs(gap - wait) < 1, (attempt, gap)
                # Not sent again before it is due …
                assert counting.total == attempt
                # … and sent once the clock reaches the due time.
                offset += wait + 1
                clock.write_text(str(offset))
                await until(lambda a=attempt: counting.total == a + 1, 30,
                            f"retry {attempt} not sent once due")
            await until(lambda: row()[0] == "sent", 30, "not sent after the fourth attempt")
            assert row()[:2] == ("sent", 4)
            assert counting.total == 4 and len(counting.counts) == 1
            ready = srv.readiness()["checks"]["delivery"]
            assert ready["pipeline"] == kind and ready["state"] == "connected"
            assert ready["consuming"] is True
    finally:
        srv.stop()

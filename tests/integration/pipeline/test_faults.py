"""The broker pipeline's bad input and faults (docs/pipelines.md#broker-pipeline): a broker
unreachable at start-up, a broker that goes away and comes back (the API keeps answering 201,
the deliveries wait in the table, ``/readyz`` says so, none is lost or sent twice), a row handed
to the broker whose job was never published (a crash between commit and publish), jobs that
are not ours, and settings that cannot work (clear start-up errors)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gateway.workers.broker import STREAM, SUBJECT
from tests.support.api import Api
from tests.support.brokers import Nats, Rabbit
from tests.support.server import COMMAND, ROOT, Server, open_database

from .conftest import Counting, Deliver, pipeline_env, table, until


def _unstarted(kind: str, tmp_path: Path) -> Nats | Rabbit:
    if kind == "nats":
        if not Nats.available():
            pytest.skip("nats-server is not installed (tests/setup.sh installs it)")
        return Nats(tmp_path / "nats")
    if not Rabbit.available():
        pytest.skip("rabbitmq-server is not installed (tests/setup.sh installs it)")
    return Rabbit()


def _delivery(srv: Server) -> dict[str, object]:
    return dict(srv.readiness()["checks"]["delivery"])


@pytest.mark.parametrize("kind", ["nats", "rabbitmq"])
async def test_broker_down_at_start_and_again_later_deliveries_wait_none_lost(
        kind: str, counting: Counting, tmp_path: Path) -> None:
    b = _unstarted(kind, tmp_path)  # its port is chosen; nothing listens there yet
    data = tmp_path / "data"
    srv = Server(data, env=pipeline_env(kind, b.url)).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("down", type="webhook", config={"url": counting.url})
            conv, key = s["conversation"]["id"], s["api_key"]
            # Unreachable at start-up: the gateway serves, /readyz says why deliveries wait.
            await until(lambda: _delivery(srv).get("state") == "disconnected", 30,
                        "readyz does not show the broker down")
            body = srv.readiness()
            assert body["checks"]["delivery"]["ok"] is True
            assert any("delivery broker disconnected" in w for w in body.get("warnings", [])), body
            for i in range(10):
                await api.post_activity(conv, key, text=f"early {i}")
            assert counting.total == 0
            assert table(data, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == [(10,)]
            assert "deliveries wait in the table" in srv.log()

            b.start()
            await until(lambda: len(counting.counts) == 10, 60, "the waiting deliveries never went")
            await until(lambda: _delivery(srv).get("state") == "connected", 30, "not connected")

            # The broker goes away and comes back.
            b.stop()
            await until(lambda: _delivery(srv).get("state") == "disconnected", 30,
                        "readyz does not show the broker gone")
            for i in range(10):
                await api.post_activity(conv, key, text=f"during {i}")
            b.start()
            await until(lambda: len(counting.counts) == 20, 60,
                        "deliveries accepted during the outage never went")
            await until(lambda: table(data, "SELECT count(*) FROM deliveries "
                                            "WHERE status = 'sent'") == [(20,)], 30, "not recorded")
            assert _delivery(srv)["state"] == "connected"
    finally:
        srv.stop()
        if isinstance(b, Rabbit):
            b.close()
        else:
            b.stop()
    assert set(counting.counts.values()) == {1}, counting.counts  # none lost, none twice


async def test_a_row_handed_over_but_never_published_is_published_again(
        counting: Counting, tmp_path: Path) -> None:
    """A crash between the handoff claim's commit and the publish leaves the row leased to the
    broker with no job anywhere: when the lease runs out the rescuer gives it back and the
    sweeper publishes it."""
    b = _unstarted("nats", tmp_path).start()
    data = tmp_path / "data"
    env = pipeline_env("nats", b.url, CONVERGER_LEASE_RESCUE_INTERVAL="0.3")
    srv = Server(data, env=env).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("stranded", type="webhook", config={"url": counting.url})
            conv, key = s["conversation"]["id"], s["api_key"]
            await api.post_activity(conv, key, text="first")
            await until(lambda: counting.total == 1, 30, "first delivery not sent")
        srv.stop()
        # As a sweeper that died right after its claim committed would leave it: handed to the
        # broker (a `bus:` claim with a lease that has run out by now), never published.
        conn = open_database(data)
        try:
            conn.execute("UPDATE deliveries SET status = 'pending', claim_token = 'bus:lost', "
                         "leased_until = '2000-01-01T00:00:00.000000Z', sent_at = NULL")
        finally:
            conn.close()
        srv.start()
        await until(lambda: counting.total == 2, 30, "the stranded row was never republished")
        await until(lambda: table(data, "SELECT status, claim_token FROM deliveries")
                    == [("sent", None)], 30, "not recorded")
    finally:
        srv.stop()
        b.stop()


async def test_sigterm_of_a_deliver_worker_gives_its_rows_back_and_another_finishes(
        counting: Counting, tmp_path: Path) -> None:
    """A clean stop mid-run: the worker gives back every row it holds (in flight or waiting in
    its buffer), exits 0, and a worker started later sends the rest; nothing is lost, and only
    attempts cut off in flight (at most its concurrency) reach the receiver twice."""
    b = _unstarted("nats", tmp_path).start()
    data = tmp_path / "data"
    env = pipeline_env("nats", b.url)
    srv = Server(data, env={**env, "CONVERGER_PIPELINE_CONSUME": "0"}).start()
    first, second = Deliver(data, env, "first", 4), Deliver(data, env, "second", 4)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("sigterm", type="webhook", config={"url": counting.url})
            # After 20 answers the receiver holds the next attempts unanswered: in flight when
            # SIGTERM comes and the rest still waiting, however fast the worker sends.
            counting.hold.after = 20
            for i in range(120):
                await api.post_activity(s["conversation"]["id"], s["api_key"], text=f"m{i}")
            first.start()
            await until(lambda: counting.held > 0, 60, "the first worker sent nothing")
            assert first.stop() == 0, first.log()[-3000:]
            counting.release()
            assert "leases released" in first.log()
            assert table(data, "SELECT count(*) FROM deliveries WHERE claim_token LIKE 'w%'") \
                == [(0,)], "a stopped worker kept rows"
            left = table(data, "SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0]
            assert left > 0, "the run was over before the stop"
            second.start()
            await until(lambda: table(data, "SELECT count(*) FROM deliveries "
                                            "WHERE status = 'sent'") == [(120,)], 60,
                        "the second worker did not finish")
    finally:
        first.stop()
        second.stop()
        srv.stop()
        b.stop()
    assert len(counting.counts) == 120
    assert sum(1 for c in counting.counts.values() if c > 1) <= 4, counting.counts
    assert table(data, "SELECT DISTINCT attempts FROM deliveries") == [(1,)]


async def test_jobs_that_are_not_ours_are_dropped_and_work_goes_on(
        counting: Counting, tmp_path: Path) -> None:
    import nats

    b = _unstarted("nats", tmp_path).start()
    data = tmp_path / "data"
    srv = Server(data, env=pipeline_env("nats", b.url)).start()
    try:
        await until(lambda: _delivery(srv).get("state") == "connected", 30, "not connected")
        nc = await nats.connect(b.url)
        js = nc.jetstream()
        await js.publish(SUBJECT, b"not json", stream=STREAM)
        await js.publish(SUBJECT, b'{"v": 1, "delivery_id": "nope", "token": "bus:x", '
                                  b'"tenant_id": "t", "channel_id": "c", "attempt": 1}',
                         stream=STREAM)
        await nc.close()
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("foreign", type="webhook", config={"url": counting.url})
            await api.post_activity(s["conversation"]["id"], s["api_key"], text="real")
            await until(lambda: counting.total == 1, 30, "the real job was not delivered")
        await until(lambda: "not a delivery job" in srv.log(), 10, "garbage job not logged")
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()
        b.stop()


def _run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args, "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                          env={**os.environ, "CONVERGER_SECRET_KEY": "test-secret-key-0123456789",
                               **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("env", "message"), [
    ({"CONVERGER_PIPELINE": "kafka"},
     "CONVERGER_PIPELINE must be one of queue, inline, rabbitmq, nats (got 'kafka')"),
    ({"CONVERGER_PIPELINE": "nats"}, "CONVERGER_PIPELINE=nats needs CONVERGER_PIPELINE_URL"),
    ({"CONVERGER_PIPELINE": "nats", "CONVERGER_PIPELINE_URL": "nats://127.0.0.1:99999"},
     "CONVERGER_PIPELINE_URL is malformed"),
    ({"CONVERGER_PIPELINE": "rabbitmq", "CONVERGER_PIPELINE_URL": "nats://127.0.0.1:4222"},
     "CONVERGER_PIPELINE_URL must start with amqp:// or amqps:// for CONVERGER_PIPELINE=rabbitmq"),
    ({"CONVERGER_PIPELINE": "rabbitmq", "CONVERGER_PIPELINE_URL": "amqp:///vhost"},
     "CONVERGER_PIPELINE_URL names no host"),
    ({"CONVERGER_PIPELINE": "queue"}, "deliver needs a broker pipeline"),
])
def test_deliver_refuses_settings_that_cannot_work(env: dict[str, str], message: str,
                                                   tmp_path: Path) -> None:
    done = _run(["deliver"], env, tmp_path)
    assert done.returncode == 2, done
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_malformed_pipeline_url(tmp_path: Path) -> None:
    done = _run(["serve", "--port", "1"], {"CONVERGER_PIPELINE": "nats",
                                           "CONVERGER_PIPELINE_URL": "nats://[::1"}, tmp_path)
    assert done.returncode == 2, done
    assert "CONVERGER_PIPELINE_URL is malformed" in done.stderr, done.stderr

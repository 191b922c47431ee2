"""Graceful shutdown: SIGTERM while requests are in flight loses no accepted request and exits
within 10 s; Litestream, stopped last, has shipped everything committed."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time

import aiohttp

from tests.support.api import Api


async def test_sigterm_with_requests_in_flight(make_server, tmp_path) -> None:
    replica = tmp_path / "replica"
    srv = make_server(env={"CONVERGER_REPLICA_URL": f"file://{replica}"})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=250)) as http:
        api = Api(http, srv.url)
        s = await api.setup("shutdown", type="webhook", config={"url": "http://127.0.0.1:9/x"})
        conv, key = s["conversation"]["id"], s["api_key"]
        accepted: list[str] = []
        refused = 0
        done = 0

        async def one(i: int) -> None:
            nonlocal refused, done
            try:
                status, body, _ = await api.call(
                    "POST", f"/api/v1/conversations/{conv}/activities",
                    json={"text": f"m{i}"}, headers={"x-api-key": key})
            except (TimeoutError, aiohttp.ClientError):
                refused += 1
                return
            finally:
                done += 1
            if status == 201:
                accepted.append(body["data"]["id"])
            else:
                refused += 1

        tasks = [asyncio.create_task(one(i)) for i in range(200)]
        while done < 20:  # some answered, most still in flight
            await asyncio.sleep(0.001)
        assert srv.proc is not None
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*tasks)
        code = await asyncio.to_thread(srv.proc.wait, 15)
        elapsed = time.monotonic() - t0
    assert code == 0, srv.log()
    assert elapsed < 10, elapsed
    assert len(accepted) + refused == 200 and len(accepted) >= 20
    db = srv.data_dir / "converger.db"
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM activities")}
        leased = conn.execute("SELECT count(*) FROM deliveries WHERE claim_token IS NOT NULL").fetchone()[0]
    assert set(accepted) <= stored, f"{len(set(accepted) - stored)} accepted activities lost"
    assert leased == 0
    # Litestream was stopped after the database closed: the replica has every accepted activity.
    restored = tmp_path / "restored.db"
    from gateway import config, replication

    code, out = replication.restore(
        config.load({}, data_dir=str(tmp_path / "r"), replica_url=f"file://{replica}"), output=restored)
    assert code == 0, out
    with sqlite3.connect(restored) as conn:
        replicated = {r[0] for r in conn.execute("SELECT id FROM activities")}
    assert set(accepted) <= replicated

"""Concurrency against the real server: idempotency under a burst with one key, ordering under
concurrent posts, and 50 clients × 2,000 activities with every 201 durable, none twice, no 5xx."""

from __future__ import annotations

import asyncio
import collections

import aiohttp

from tests.support.api import Api
from tests.support.server import Server, open_database

from .checks import key


def _db_rows(server: Server, sql: str, *params: object) -> list[tuple]:
    conn = open_database(server.data_dir, readonly=True)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


async def test_idempotency_under_20_concurrent_requests(api: Api, server: Server) -> None:
    s = await api.setup("burst")
    cid = s["conversation"]["id"]
    results = await asyncio.gather(*(
        api.call("POST", f"/api/v1/conversations/{cid}/activities", json={"text": f"try {i}"},
                 headers={**key(s["api_key"]), "x-idempotency-key": "same-key"})
        for i in range(20)))
    assert [r[0] for r in results] == [201] * 20, [r[1] for r in results if r[0] != 201][:2]
    ids = {r[1]["data"]["id"] for r in results}
    assert len(ids) == 1
    assert len({r[1]["data"]["text"] for r in results}) == 1  # all answers are the stored one
    rows = _db_rows(server, "SELECT id FROM activities WHERE conversation_id = ?", cid)
    assert rows == [(ids.pop(),)]


async def test_seq_ordering_under_concurrent_clients(api: Api) -> None:
    s = await api.setup("order")
    cid = s["conversation"]["id"]
    url = f"{api.base}/api/v1/conversations/{cid}/activities"

    async def client(n: int) -> list[int]:
        seqs = []
        async with aiohttp.ClientSession() as own:  # its own connection: a separate client
            for j in range(10):
                async with own.post(url, json={"text": f"{n}:{j}"}, headers=key(s["api_key"])) as r:
                    assert r.status == 201
                    seqs.append((await r.json())["data"]["seq"])
        return seqs

    per_client = await asyncio.gather(*(client(n) for n in range(20)))
    for seqs in per_client:
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    allseq = sorted(x for seqs in per_client for x in seqs)
    assert allseq == list(range(1, 201))
    listed = (await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                           headers=key(s["api_key"])))["data"]
    assert [a["seq"] for a in listed] == list(range(1, 201))
    # Each client's activities appear in the order it sent them.
    by_client: dict[str, list[int]] = collections.defaultdict(list)
    for a in listed:
        n, j = a["text"].split(":")
        by_client[n].append(int(j))
    assert all(v == list(range(10)) for v in by_client.values())
    assert [a["inserted_at"] for a in listed] == sorted(a["inserted_at"] for a in listed)


async def test_50_clients_2000_activities(api: Api, server: Server) -> None:
    s = await api.setup("load")
    convs = [s["conversation"]["id"]] + [
        (await api.conversation(s["channel_token"]))["id"] for _ in range(9)]
    statuses: collections.Counter[int] = collections.Counter()
    created: list[tuple[str, str, int]] = []
    errors: list[str] = []

    async def client(n: int) -> None:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as own:
            for j in range(40):
                cid = convs[(n + j) % len(convs)]
                try:
                    async with own.post(f"{api.base}/api/v1/conversations/{cid}/activities",
                                        json={"text": f"{n}-{j}"},
                                        headers=key(s["api_key"])) as r:
                        statuses[r.status] += 1
                        if r.status == 201:
                            d = (await r.json())["data"]
                            created.append((d["id"], d["conversation_id"], d["seq"]))
                        else:
                            errors.append(await r.text())
                except aiohttp.ClientError as exc:  # counted: a dropped request is a failure
                    errors.append(repr(exc))

    await asyncio.gather(*(client(n) for n in range(50)))
    assert not [c for c in statuses if c >= 500], statuses
    assert statuses[201] == 2000, (statuses, errors[:3])
    ids = [c[0] for c in created]
    assert len(set(ids)) == 2000
    rows = _db_rows(server, "SELECT id, conversation_id, seq, text FROM activities WHERE tenant_id = ?",
                    s["tenant"]["id"])
    assert len(rows) == 2000 and {r[0] for r in rows} == set(ids)
    assert len({r[3] for r in rows}) == 2000  # none twice
    per_conv: dict[str, list[int]] = collections.defaultdict(list)
    for _, cid, seq, _ in rows:
        per_conv[cid].append(seq)
    for seqs in per_conv.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    # What the API answered is what the database holds.
    assert {(c[0], c[1], c[2]) for c in created} == {(r[0], r[1], r[2]) for r in rows}

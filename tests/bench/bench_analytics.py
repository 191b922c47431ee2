"""Analytics at scale (issue 21; not collected by pytest, not in CI):

    PYTHONPATH=. python -m tests.bench.bench_analytics [--activities 5000000] [--days 30]

1. **Load**: ``--activities`` activities over ``--days`` simulated days (an injected clock),
   written directly into the store one simulated hour at a time: the activity rows, a delivery
   row for every outbound one (half) in its final state (sent 95 %, of which 70 % delivered and
   28 % read; failed 5 %, one of a few reasons), and the delivery counters the delivery path
   keeps for them (the same upserts into the same tables, summed per bucket: writing 7.5
   million rows one call at a time takes hours on a loaded 2-core machine). The activities'
   counters are the rollup job's (from the feed events the activity rows' trigger appends).
   ``--tenants`` tenants of unequal size with ``--channels`` channels each, conversations of
   10–70 activities. The rollup job's fold runs after every simulated hour, as the scheduler
   would, and the feed is pruned up to what it counted, as the feed pruner would.
2. **Queries**: at the end of the simulated period, every analytics query the API and pages make
   (``gateway.domain.analytics.read``: series, latency percentiles, failure reasons, busiest
   conversations, per-channel totals, health) for 1 h, 1 d and 30 d, for the whole gateway, the
   busiest tenant and one of its channels, ``--queries`` times each on a read-only connection:
   p50, p99 and max in milliseconds. Target: p99 < 100 ms.
3. **Write-path cost**: the activity write path (one transaction: ``activities.insert`` +
   ``queue.enqueue``, as the API's) on the loaded database, in alternating blocks with the
   rollup counters on and off (``store.analytics.ENABLED``), same run: ``ratio`` = time on ÷
   time off. Target: <= 1.10. Then the job's share, off the write path: one rollup run
   counting the activities just written (CPU per activity), and a report's extra cost while
   one job interval's activities (``--pending``) are still uncounted.

Prints one JSON object; figures in docs/performance.md ("Analytics").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.domain import analytics as analytics_ops
from store import activities, analytics, channels, conversations, feed, migrations, queue, tenants
from store.connect import connect
from store.util import iso, new_id

REASONS = ("webhook returned status 503: upstream unavailable",
           "webhook returned status 429: slow down", "connection refused",
           "timeout after 10s", "webhook returned status 500: internal error")


def _world(conn: Any, n_tenants: int, n_channels: int, t0: str) -> list[dict[str, Any]]:
    world = []
    for i in range(n_tenants):
        t = tenants.create(conn, name=f"bench-{i}", api_key_hash=f"k{i}", api_key_hint="x", now=t0)
        chans = [channels.create(conn, tenant_id=t.id, name=f"ch{j}", type="webhook",
                                 mode="duplex", config={"url": "http://127.0.0.1:9/"},
                                 transformations=[], secret_hash="s", secret_enc="e", now=t0).id
                 for j in range(n_channels)]
        world.append({"id": t.id, "channels": chans, "convs": {}, "weight": 1.0 / (i + 1)})
    return world


def load(conn: Any, world: list[dict[str, Any]], n: int, start: datetime, days: int,
         rnd: random.Random) -> dict[str, float]:
    """``n`` activities (half of them outbound, each with a delivery) spread evenly over the
    period, one simulated hour at a time: the rows in bulk, and the rollup counters the write
    path keeps for them (the same upserts, summed per bucket), then the hour's fold."""
    weights = [w["weight"] for w in world]
    hours = days * 24
    began = time.perf_counter()
    made = deliveries = 0
    fold_s = 0.0
    seqs: dict[str, list[Any]] = {}
    for h in range(hours):
        hour_start = start + timedelta(hours=h)
        count = n * (h + 1) // hours - made
        acts: list[tuple[Any, ...]] = []
        dels: list[tuple[Any, ...]] = []
        bumps: dict[tuple[int, str, str, int, str, str], int] = {}

        def bump(span_: int, tenant: str, chan: str, at: int, kind: str, key: str,
                 bumps: dict[tuple[int, str, str, int, str, str], int] = bumps) -> None:
            k = (span_, tenant, chan, at - at % span_, kind, key)
            bumps[k] = bumps.get(k, 0) + 1

        conn.execute("BEGIN IMMEDIATE")
        for i in range(count):
            at = hour_start + timedelta(seconds=3600.0 * i / count)
            t = rnd.choices(world, weights)[0]
            ch = t["channels"][rnd.randrange(len(t["channels"]))]
            conv = t["convs"].get(ch)
            if conv is None or conv[1] <= 0:
                c = conversations.create(conn, tenant_id=t["id"], channel_id=ch, now=iso(at))
                conv = t["convs"][ch] = [c.id, rnd.randint(10, 70)]
                seqs[c.id] = [0, iso(at)]
            conv[1] -= 1
            now, epoch = iso(at), int(at.timestamp())
            seq = seqs[conv[0]]
            seq[0] += 1
            seq[1] = now
            inbound = rnd.random() < 0.5
            aid = new_id()
            acts.append((aid, t["id"], conv[0], seq[0], "message", "u", "hello", "[]", "{}",
                         None, ch if inbound else None, None, now, now, "{}"))
            if inbound:
                continue
            deliveries += 1
            sent_ms = rnd.choice((60, 120, 300, 800, 2500))
            sent = at + timedelta(milliseconds=sent_ms)
            if rnd.random() < 0.05:
                error = rnd.choice(REASONS)
                dels.append((new_id(), aid, ch, t["id"], conv[0], "failed", 1, error, None,
                             None, None, now, iso(sent)))
                bump(analytics.HOUR, t["id"], ch, epoch, "failure", analytics.reason_of(error))
                bump(analytics.MINUTE, t["id"], ch, epoch, "count", "failed")
                continue
            bump(analytics.MINUTE, t["id"], ch, epoch, "count", "sent")
            bump(analytics.HOUR, t["id"], ch, epoch, "latency",
                 f"sent:{analytics.latency_index(sent_ms)}")
            status, delivered, read = "sent", None, None
            if rnd.random() < 0.7:
                wait = rnd.choice((1, 2, 5, 20))
                delivered, status = sent + timedelta(seconds=wait), "delivered"
                bump(analytics.MINUTE, t["id"], ch, epoch, "count", "delivered")
                bump(analytics.HOUR, t["id"], ch, epoch, "latency",
                     f"delivered:{analytics.latency_index(wait * 1000)}")
                if rnd.random() < 0.4:
                    seen = rnd.choice((30, 120, 900))
                    read, status = delivered + timedelta(seconds=seen), "read"
                    bump(analytics.MINUTE, t["id"], ch, epoch, "count", "read")
                    bump(analytics.HOUR, t["id"], ch, epoch, "latency",
                         f"read:{analytics.latency_index(seen * 1000)}")
            dels.append((new_id(), aid, ch, t["id"], conv[0], status, 1, None, iso(sent),
                         iso(delivered) if delivered else None, iso(read) if read else None,
                         now, now))
        conn.executemany(f"INSERT INTO activities ({activities.COLUMNS}) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", acts)
        conn.executemany(
            """INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, conversation_id,
                   status, attempts, last_error, sent_at, delivered_at, read_at, inserted_at,
                   updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", dels)
        for span_ in (analytics.MINUTE, analytics.HOUR, analytics.DAY):
            table = analytics.TABLES[span_]
            conn.executemany(
                f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (kind, bucket, tenant_id, channel_id, key)
                    DO UPDATE SET n = {table}.n + excluded.n""",
                [(k[1], k[2], k[3], k[4], k[5], v) for k, v in bumps.items() if k[0] == span_])
        conn.executemany("UPDATE conversations SET last_seq = ?, last_activity_at = ? WHERE id = ?",
                         [(v[0], v[1], k) for k, v in seqs.items()])
        conn.execute("COMMIT")
        live = {c[0] for w in world for c in w["convs"].values()}
        seqs = {k: v for k, v in seqs.items() if k in live}
        made += count
        f0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        analytics.fold(conn, int((hour_start + timedelta(hours=1)).timestamp()))
        conn.execute("COMMIT")
        fold_s += time.perf_counter() - f0
        conn.execute("BEGIN IMMEDIATE")
        while feed.prune(conn, analytics.cursor(conn)) > 0:
            pass
        conn.execute("COMMIT")
        if h % 24 == 23:
            print(f"  day {h // 24 + 1}: {made:,} activities, {time.perf_counter() - began:.0f} s",
                  file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - began
    return {"activities": n, "deliveries": deliveries, "seconds": round(elapsed, 1),
            "activities_per_s": round(n / elapsed), "fold_runs": hours,
            "fold_ms_mean": round(fold_s / hours * 1000, 1)}


def queries(path: Path, world: list[dict[str, Any]], now: datetime, repeat: int
            ) -> dict[str, Any]:
    conn = connect(path, readonly=True)
    try:
        busiest = world[0]
        scopes = {"gateway": (None, None), "tenant": (busiest["id"], None),
                  "channel": (busiest["id"], busiest["channels"][0])}
        out: dict[str, Any] = {}
        worst = worst_cpu = 0.0
        for rng in ("1h", "1d", "30d"):
            w = analytics_ops.window({"range": rng}, now)
            for scope, (tenant_id, channel_id) in scopes.items():
                times, cpu = [], []
                for _ in range(repeat):
                    t0, c0 = time.perf_counter(), time.thread_time()
                    data = analytics_ops.read(conn, w, tenant_id=tenant_id, channel_id=channel_id)
                    times.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.thread_time() - c0) * 1000)
                times.sort()
                cpu.sort()
                p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
                cpu99 = cpu[min(len(cpu) - 1, round(0.99 * (len(cpu) - 1)))]
                worst = max(worst, p99)
                worst_cpu = max(worst_cpu, cpu99)
                out[f"{rng} {scope}"] = {
                    "p50_ms": round(statistics.median(times), 1), "p99_ms": round(p99, 1),
                    "max_ms": round(times[-1], 1), "cpu_p50_ms": round(statistics.median(cpu), 1),
                    "cpu_p99_ms": round(cpu99, 1), "points": len(data["buckets"]),
                    "activities": data["totals"]["activities_in"]
                    + data["totals"]["activities_out"]}
        out["worst_p99_ms"] = round(worst, 1)
        out["worst_cpu_p99_ms"] = round(worst_cpu, 1)
        return out
    finally:
        conn.close()


def write_cost(conn: Any, world: list[dict[str, Any]], at: datetime, blocks: int, per_block: int
               ) -> dict[str, Any]:
    """Alternating blocks with the rollup counters on and off; one transaction per activity."""
    t = world[0]
    ch = t["channels"][0]
    conv = conversations.create(conn, tenant_id=t["id"], channel_id=ch, now=iso(at)).id
    spent = {True: 0.0, False: 0.0}
    cpu = {True: 0.0, False: 0.0}
    n = 0
    for b in range(blocks):
        enabled = b % 2 == 0
        analytics.ENABLED = enabled
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(per_block):
            now = iso(at + timedelta(milliseconds=n))
            n += 1
            conn.execute("BEGIN IMMEDIATE")
            act = activities.insert(conn, tenant_id=t["id"], conversation_id=conv, sender="u",
                                    now=now, text="hello")
            queue.enqueue(conn, act, [ch], now)
            conn.execute("COMMIT")
        spent[enabled] += time.perf_counter() - t0
        cpu[enabled] += time.thread_time() - c0
    analytics.ENABLED = True
    each = blocks // 2 * per_block
    return {"activities_each": each,
            "us_per_activity_on": round(spent[True] / each * 1e6, 1),
            "us_per_activity_off": round(spent[False] / each * 1e6, 1),
            "ratio": round(spent[True] / spent[False], 3),
            "cpu_us_per_activity_on": round(cpu[True] / each * 1e6, 1),
            "cpu_us_per_activity_off": round(cpu[False] / each * 1e6, 1),
            "cpu_ratio": round(cpu[True] / cpu[False], 3)}


def job_cost(conn: Any, path: Path, world: list[dict[str, Any]], at: datetime, pending: int
             ) -> dict[str, Any]:
    """The rollup job's share, off the write path: one run counting everything written since
    the last (phase 3's activities), CPU per activity; then ``pending`` activities left
    uncounted (one job interval's worth) and the tenant's 1 h and 30 d reports with them, against
    the same reports with none pending."""
    uncounted = conn.execute("SELECT count(*) FROM feed WHERE id > ? AND kind = 'a'",
                             (analytics.cursor(conn),)).fetchone()[0]
    t0, c0 = time.perf_counter(), time.thread_time()
    conn.execute("BEGIN IMMEDIATE")
    analytics.count_activities(conn)
    conn.execute("COMMIT")
    out: dict[str, Any] = {
        "activities_counted": uncounted,
        "us_per_activity": round((time.perf_counter() - t0) / max(uncounted, 1) * 1e6, 1),
        "cpu_us_per_activity": round((time.thread_time() - c0) / max(uncounted, 1) * 1e6, 1)}
    t = world[0]
    ch = t["channels"][0]
    conv = conversations.create(conn, tenant_id=t["id"], channel_id=ch, now=iso(at)).id
    rconn = connect(path, readonly=True)
    try:
        def cpu_ms(rng: str, tenant_id: str | None) -> float:
            w = analytics_ops.window({"range": rng}, at + timedelta(minutes=5))
            spent = []
            for _ in range(20):
                c0 = time.thread_time()
                analytics_ops.read(rconn, w, tenant_id=tenant_id, channel_id=None)
                spent.append(time.thread_time() - c0)
            return round(statistics.median(spent) * 1000, 1)
        none = {f"{r} {s}": cpu_ms(r, tid) for r in ("1h", "30d")
                for s, tid in (("tenant", t["id"]), ("gateway", None))}
        conn.execute("BEGIN IMMEDIATE")
        for i in range(pending):
            activities.insert(conn, tenant_id=t["id"], conversation_id=conv, sender="u",
                              now=iso(at + timedelta(milliseconds=i)), text="hello")
        conn.execute("COMMIT")
        some = {f"{r} {s}": cpu_ms(r, tid) for r in ("1h", "30d")
                for s, tid in (("tenant", t["id"]), ("gateway", None))}
    finally:
        rconn.close()
    out["pending_activities"] = pending
    out["report_cpu_ms_none_pending"] = none
    out["report_cpu_ms_with_pending"] = some
    conn.execute("BEGIN IMMEDIATE")
    analytics.count_activities(conn)
    conn.execute("COMMIT")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--activities", type=int, default=5_000_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--tenants", type=int, default=20)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--write-blocks", type=int, default=40)
    p.add_argument("--write-per-block", type=int, default=1000)
    p.add_argument("--pending", type=int, default=1000,
                   help="activities left uncounted for the last measure (a job interval's)")
    p.add_argument("--db", help="database file (default: a temporary one, deleted after)")
    p.add_argument("--reuse", action="store_true",
                   help="--db already holds a load (of these options): only phases 2 and 3")
    args = p.parse_args()
    rnd = random.Random(21)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    start = end - timedelta(days=args.days)
    tmp = None
    if args.db:
        path = Path(args.db)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-analytics-")
        path = Path(tmp.name) / "a.db"
    conn = connect(path)
    try:
        result: dict[str, Any] = {"machine": {"nproc": os.cpu_count(),
                                              "loadavg": os.getloadavg()[0]}}
        if args.reuse:
            world = [{"id": r[0], "channels": [c[0] for c in conn.execute(
                "SELECT id FROM channels WHERE tenant_id = ? ORDER BY name", (r[0],))]}
                for r in conn.execute("SELECT id FROM tenants ORDER BY inserted_at, rowid")]
        else:
            migrations.apply(conn)
            conn.execute("BEGIN IMMEDIATE")
            world = _world(conn, args.tenants, args.channels, iso(start))
            conn.execute("COMMIT")
            result["load"] = load(conn, world, args.activities, start, args.days, rnd)
            conn.execute("BEGIN IMMEDIATE")
            analytics.fold(conn, int(end.timestamp()))
            conn.execute("COMMIT")
        result["rows"] = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                          for t in ("activities", "deliveries", "analytics_minute",
                                    "analytics_hour", "analytics_day")}
        result["db_mb"] = round(path.stat().st_size / 1e6)
        result["queries"] = queries(path, world, end, args.queries)
        result["write_path"] = write_cost(conn, world, end, args.write_blocks,
                                          args.write_per_block)
        result["job"] = job_cost(conn, path, world, end, args.pending)
        result["loadavg_end"] = os.getloadavg()[0]
    finally:
        conn.close()
        if tmp is not None:
            tmp.cleanup()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

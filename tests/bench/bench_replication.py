"""Replication cost and WAL bound: activities/s with and without Litestream, and the WAL's peak.

    python -m tests.bench.bench_replication [--seconds 60] [--writers 64]

Drives the write path at full speed in-process (the pipeline's insert + enqueue transaction
through ``Database.write``, group-committed by the writer thread, one activity and one delivery
per job), once without replication and once with ``litestream replicate`` supervised exactly as
``converger serve`` runs it (``gateway.replication.Supervisor``, ``checkpoints=False``). The WAL
file size is sampled every 50 ms. Prints one JSON line per run; the run without replication is
the same-run baseline. Targets (issue 7): WAL under 256 MB throughout, replication costing under
30% of throughput. Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway import config
from gateway.crypto import Cipher
from gateway.domain import channels as channel_ops
from gateway.domain import tenants as tenant_ops
from gateway.domain.activities import NewActivity, insert_tx
from gateway.replication import Supervisor, guard_for
from store import conversations, migrations
from store.db import Database
from store.util import iso, utcnow

ACTOR = ("system", "bench")
WAL_TARGET_MB = 256
COST_TARGET = 0.30


def _setup(conn: Any, cipher: Cipher) -> tuple[str, str]:
    now = iso(utcnow())
    tenant, _ = tenant_ops.create_tx(conn, "bench", None, "active", ACTOR, now)
    channel, _ = channel_ops.create_tx(
        conn, cipher, tenant_id=tenant.id, name="hook", type="webhook", mode=None,
        config={"url": "http://127.0.0.1:9/x"}, transformations=[], status="active",
        actor=ACTOR, now=now)
    conv = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id, now=now)
    return tenant.id, conv.id


async def run(seconds: float, writers: int, replicate: bool, workdir: Path) -> dict[str, Any]:
    data = workdir / ("with" if replicate else "without")
    data.mkdir(parents=True)
    settings = config.load({}, data_dir=str(data),
                           replica_url=f"file://{workdir / 'replica'}" if replicate else None)
    db = Database(settings.db_path, checkpoints=not replicate)
    db.start(prepare=migrations.apply)
    tenant_id, conv_id = await db.write(_setup, Cipher("bench-key"))
    log = logging.getLogger("bench")
    sup = None
    if replicate:
        sup = Supervisor(settings, log)
        db.between_batches = guard = guard_for(settings)
        sup.start()
        await asyncio.sleep(1.5)  # let Litestream open the database and take its snapshot
    wal = settings.db_path.with_name(settings.db_path.name + "-wal")
    peak = 0
    count = 0
    stop = time.monotonic() + seconds

    async def writer() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await db.write(insert_tx, tenant_id, conv_id, NewActivity(text="x" * 200), iso(utcnow()))
            count += 1

    async def sampler() -> None:
        nonlocal peak
        while time.monotonic() < stop:
            try:
                peak = max(peak, wal.stat().st_size)
            except OSError:
                pass
            await asyncio.sleep(0.05)

    t0 = time.monotonic()
    await asyncio.gather(sampler(), *(writer() for _ in range(writers)))
    elapsed = time.monotonic() - t0
    final_wal = wal.stat().st_size if wal.exists() else 0
    db.close()
    restarts = 0
    pauses = guard.pauses if replicate else 0
    if sup is not None:
        restarts = sup.restarts
        await sup.stop()
    return {"replication": replicate, "seconds": round(elapsed, 1), "activities": count,
            "activities_per_s": round(count / elapsed), "commits": db.commits,
            "wal_peak_mb": round(peak / 2**20, 1), "wal_end_mb": round(final_wal / 2**20, 1),
            "litestream_restarts": restarts, "writer_pauses": pauses, "truncate_pages": settings.wal_truncate_pages}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--only", choices=("with", "without"))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-repl-") as tmp:
        results = []
        for replicate in (False, True):
            if args.only and args.only != ("with" if replicate else "without"):
                continue
            res = await run(args.seconds, args.writers, replicate, Path(tmp))
            print(json.dumps(res), flush=True)
            results.append(res)
        if len(results) == 2 and results[0]["activities_per_s"]:
            cost = 1 - results[1]["activities_per_s"] / results[0]["activities_per_s"]
            print(json.dumps({"replication_cost": f"{cost:.0%}"}), flush=True)
            peak = results[1]["wal_peak_mb"]
            ok = peak < WAL_TARGET_MB and cost < COST_TARGET
            print(f"machine: nproc={os.cpu_count()}  loadavg={Path('/proc/loadavg').read_text().strip()}")
            print(f"with/without {results[1]['activities_per_s']}/{results[0]['activities_per_s']} "
                  f"activities/s: cost {cost:.0%} (target < {COST_TARGET:.0%}); WAL peak {peak} MB "
                  f"(target < {WAL_TARGET_MB} MB)  {'OK' if ok else 'MISSED'}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())

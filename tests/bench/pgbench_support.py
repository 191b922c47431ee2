"""PostgreSQL for the benchmarks (``--database postgres`` of bench_activity and bench_delivery):
a throwaway cluster (tests/support/postgres.py), converger nodes on one database of it, the CPU
the cluster used, and a **pgbench** ceiling of the same shape as an accepted activity: one
transaction inserting an activity row and its delivery row into the schema's own tables (same
columns, indexes, foreign keys and triggers, the feed's included) with the same client count.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.support import postgres
from tests.support.server import Server

PGBENCH_SCRIPT = r"""BEGIN;
INSERT INTO activities (id, tenant_id, conversation_id, seq, type, sender, text, metadata,
    inserted_at, updated_at)
VALUES (gen_random_uuid()::text, :tenant, :conv,
    nextval('pb_seq'), 'message', '{"id":"bench","role":"user"}', 'hello from the benchmark',
    '{"n":1}', pb_now(), pb_now())
RETURNING id \gset a_
INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, conversation_id, status,
    next_attempt_at, inserted_at, updated_at)
VALUES (gen_random_uuid()::text, :a_id, :chan, :tenant,
    :conv, 'pending', pb_now(), pb_now(), pb_now());
COMMIT;
"""


def use_postgres() -> postgres.Cluster:
    """Every :class:`Server` of this process on a database of its own in a throwaway cluster."""
    postgres.MODE = "postgres"
    return postgres.shared()


def start_nodes(root: Path, n: int, env: dict[str, str], database: str) -> list[Server]:
    """``n`` converger nodes (one process each) on one database of the cluster."""
    url = postgres.shared().create_database(database)
    nodes = []
    for i in range(1, n + 1):
        nodes.append(Server(root / f"{database}-node{i}", env={
            **env, "CONVERGER_DATABASE_URL": url}).start(60))
    return nodes


def postmaster_pid(cluster: postgres.Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def cluster_cpu_seconds(cluster: postgres.Cluster) -> float:
    """CPU time of the whole cluster: the postmaster, its live backends, and (cutime/cstime)
    the backends that have exited since."""
    from tests.bench.baseline import tree_cpu_seconds

    pid = postmaster_pid(cluster)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    exited = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return tree_cpu_seconds(pid) + exited


class PgBench:
    """The pgbench ceiling: a database migrated like converger's, one tenant, channel and
    conversation, and the script above run by ``pgbench -c clients``."""

    def __init__(self, cluster: postgres.Cluster) -> None:
        from store import channels, conversations, migrations, tenants
        from store.pg import PgDatabase
        from store.util import iso, utcnow

        self.cluster = cluster
        self.url = cluster.create_database("pgbench_ceiling")
        db = PgDatabase(self.url)
        db.start(prepare=migrations.apply)

        def world(conn: Any) -> dict[str, str]:
            now = iso(utcnow())
            t = tenants.create(conn, name="pgbench", api_key_hash="h", api_key_hint="x", now=now)
            ch = channels.create(conn, tenant_id=t.id, name="hook", type="webhook", mode="duplex",
                                 config={"url": "http://127.0.0.1:9/hook"}, transformations=[],
                                 secret_hash="s", secret_enc="e", now=now)
            conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=now)
            conn.execute("CREATE SEQUENCE pb_seq")
            # the time as the store writes it (a function: pgbench would read ':MI' as a variable)
            conn.execute("""CREATE FUNCTION pb_now() RETURNS text LANGUAGE sql AS
                $$ SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$""")
            return {"tenant": t.id, "chan": ch.id, "conv": conv.id}

        self.vars = db.write_sync(world)
        db.close()
        self.dir = Path(tempfile.mkdtemp(prefix="converger-pgbench-"))
        self.script = self.dir / "activity.sql"
        self.script.write_text(PGBENCH_SCRIPT)

    def run(self, duration: float, clients: int) -> dict[str, Any]:
        for old in self.dir.glob("pgbench_log*"):
            old.unlink()
        cmd = [str(self.cluster.bin / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", "1",
               "-T", str(max(1, round(duration))), "-f", str(self.script), "-l",
               "--log-prefix", str(self.dir / "pgbench_log"),
               *(a for k, v in self.vars.items() for a in ("-D", f"{k}={v}")), self.url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120,
                             cwd=self.dir)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed: {out.stderr}\n{out.stdout}")
        tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
        lat = sorted(int(line.split()[2]) / 1000 for f in self.dir.glob("pgbench_log*")
                     for line in f.read_text().splitlines() if line.strip())
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        return {"rps": tps, "p50_ms": statistics.median(lat) if lat else float("nan"),
                "p99_ms": lat[int(len(lat) * 0.99)] if lat else float("nan"),
                "requests": len(lat), "non_2xx": int(failed.group(1)) if failed else 0,
                "socket_errors": ""}


def feed_cost(duration: float = 6, clients: int = 50, rounds: int = 2) -> None:
    """The pgbench ceiling with and without the feed's trigger on ``activities`` (m0023's
    commit-ordered ids: every inserting transaction holds the one ``feed_counter`` row until it
    commits), alternating, so the cost of the cross-node change feed's ordering shows on its own.

        PYTHONPATH=. python -m tests.bench.pgbench_support [--duration 6] [--clients 50]
    """
    import psycopg

    cluster = use_postgres()
    bench = PgBench(cluster)
    for _ in range(rounds):
        for on in (True, False):
            with psycopg.connect(bench.url, autocommit=True) as conn:
                conn.execute(f"ALTER TABLE activities {'ENABLE' if on else 'DISABLE'} "
                             "TRIGGER feed_activity")
            cpu0 = cluster_cpu_seconds(cluster)
            res = bench.run(duration, clients)
            cpu = (cluster_cpu_seconds(cluster) - cpu0) / max(1, res["requests"]) * 1e6
            print(f"{'with' if on else 'without':7} the feed trigger: {res['rps']:7.0f} tps  "
                  f"p50 {res['p50_ms']:7.1f} ms  p99 {res['p99_ms']:7.1f} ms  "
                  f"cluster CPU {cpu:5.0f} us/transaction", flush=True)
    print(f"machine: nproc={os.cpu_count()}  loadavg {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=float, default=6)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    feed_cost(a.duration, a.clients, a.rounds)

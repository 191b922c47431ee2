"""Delivery throughput against a same-run baseline (not collected by pytest).

    PYTHONPATH=. python -m tests.bench.bench_delivery [--n 5000] [--overhead-n 20000]
        [--pipeline rabbitmq|nats [--deliver K]]

0. **Baseline** (the ceiling for HTTP delivery on this machine, measured in the same run): a bare
   aiohttp client in this process POSTs the body and headers of a real delivery (captured by the
   receiver) to the same receiver with the same concurrency as the workers (20), as fast as it
   can. Measured twice (after the end-to-end run and after the drain) to see the drift; the
   ratios use the mean of the two.
1. **End to end, sustained**: a real ``converger serve`` with 20 workers posts to a receiver
   in a separate process that answers 200 at once. Activities are posted as fast as a client
   can (32 in flight); reported: deliveries/s from the first post to the last delivery.
2. **Drain**: N deliveries are already in the queue when the server starts (written with the
   real write path while it was down); reported: deliveries/s from the first to the last
   delivery the receiver saw (the workers' own speed, no ingest competing for the CPU).
3. **Queue overhead**: the writer's work per delivery on a real database file: the workers'
   claim job (batches of 40: the claim and what sending needs) and their outcomes job (the
   updates, feed events, attempt rows and analytics counts of a batch), one transaction each.

4. **Broker pipeline** (``--pipeline rabbitmq|nats``): 1 and 2 again in the same run with
   ``CONVERGER_PIPELINE`` set, against a real broker started here (tests/support/brokers.py):
   ``serve`` publishes and consumes (the default), or with ``--deliver K`` only publishes while
   K ``converger deliver`` processes (20 workers each) make the attempts. Reported with a
   ``broker_`` prefix, and ``broker_vs_queue_e2e`` / ``broker_vs_queue_drain``.

``--database postgres [--nodes N]`` runs 1–3 on PostgreSQL instead (a throwaway cluster,
tests/support/postgres.py): N nodes (``converger serve`` processes, 20 delivery workers each) on
one database, activities posted round-robin over them (a 503 sent again and counted), every node
delivering; the gateway's CPU counts the cluster's processes too. Run it without and with the
flag for the same run's SQLite figures (docs/performance.md §8 has both).

Reported: the figures above, and ``ratio_e2e`` / ``ratio_drain`` = deliveries/s ÷ baseline
posts/s. Target (issue 4): >= 1,000 deliveries/s sustained with 20 workers. Figures:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import postgres
from tests.support.api import Api
from tests.support.server import Server, free_port

# -- the receiver process -------------------------------------------------------------------


def run_receiver(port: int) -> None:
    from aiohttp import web

    state = {"n": 0, "first": 0.0, "last": 0.0}
    sample: dict[str, Any] = {}  # the first request's body and headers (for the baseline)

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        if not state["n"]:
            state["first"] = now
            if not sample:
                sample.update(body=body.decode(), headers={
                    k: v for k, v in request.headers.items()
                    if k.lower() not in ("host", "content-length", "connection", "user-agent",
                                         "accept", "accept-encoding")})
        state["n"] += 1
        state["last"] = now
        return web.Response(text="ok")

    async def count(request: web.Request) -> web.Response:
        return web.json_response(state)

    async def reset(request: web.Request) -> web.Response:
        state.update(n=0, first=0.0, last=0.0)
        return web.json_response(state)

    async def sample_(request: web.Request) -> web.Response:
        return web.json_response(sample)

    app = web.Application()
    app.router.add_get("/sample", sample_)
    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def _receiver_state(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url + "/count") as r:
        return await r.json()


async def _wait_count(session: aiohttp.ClientSession, url: str, n: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = await _receiver_state(session, url)
        if state["n"] >= n:
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {state['n']} of {n} delivered")
        await asyncio.sleep(0.02)


# -- 0: the baseline ------------------------------------------------------------------------


async def baseline(n: int, rurl: str, concurrency: int = 20, receiver_pid: int | None = None,
                   cpu: dict[str, list[float]] | None = None) -> float:
    """Posts/s of a bare aiohttp client sending a captured delivery to the receiver, ``n`` posts
    over ``concurrency`` connections (as the workers: one session, 20 in flight). With ``cpu``,
    the CPU µs per post of this client and of the receiver are appended to its lists."""
    from tests.bench.baseline import tree_cpu_seconds

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async with session.get(rurl + "/sample") as r:
            sample = await r.json()
        body, headers = sample["body"].encode(), sample["headers"]
        await session.post(rurl + "/reset")
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(rurl + "/hook", data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"receiver answered {resp.status}")

        cpu0 = (_own_cpu(), tree_cpu_seconds(receiver_pid) if receiver_pid else 0.0)
        t0 = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.time() - t0
        if cpu is not None:
            cpu.setdefault("client", []).append((_own_cpu() - cpu0[0]) / n * 1e6)
            if receiver_pid:
                cpu.setdefault("receiver", []).append(
                    (tree_cpu_seconds(receiver_pid) - cpu0[1]) / n * 1e6)
        state = await _receiver_state(session, rurl)
        if state["n"] < n:
            raise RuntimeError(f"receiver saw {state['n']} of {n} baseline posts")
        await session.post(rurl + "/reset")
    return n / elapsed


# -- 1 and 2: through the real server -------------------------------------------------------


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _own_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def end_to_end(n: int, workdir: Path, rurl: str, workers: int = 1,
                     receiver_pid: int | None = None, env: dict[str, str] | None = None,
                     delivers: int = 0, name: str = "e2e", nodes: int = 1,
                     cluster: Any = None) -> dict[str, float]:
    """The CPU each party used during the end-to-end run is reported as cores (CPU seconds ÷
    wall seconds): the gateway (every process), the posting client (this process), the
    receiver, and the whole machine (everything else is the neighbours)."""
    from tests.bench.baseline import tree_cpu_seconds
    from tests.support.deliver import Deliver

    out: dict[str, float] = {}
    bare: dict[str, list[float]] = {}
    env = env or {}
    srv_env = {"CONVERGER_WORKERS": str(workers), **env}
    if delivers:
        srv_env["CONVERGER_PIPELINE_CONSUME"] = "0"
    if cluster is not None:  # --database postgres: N nodes on one database
        from tests.bench import pgbench_support

        servers = pgbench_support.start_nodes(workdir, nodes, srv_env, f"bench_{name}")
    else:
        servers = [Server(workdir / name, env=srv_env).start(timeout=60)]
    srv = servers[0]

    def gateway_cpu() -> float:
        total = sum(tree_cpu_seconds(x.proc.pid) for x in servers)  # type: ignore[union-attr]
        if cluster is not None:
            total += pgbench_support.cluster_cpu_seconds(cluster)
        return total

    helpers = [Deliver(workdir / name, env, f"bench{i}", 20) for i in range(delivers)]
    for h in helpers:
        h.start()
    try:
        for h in helpers:
            await h.connected()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            api = Api(session, srv.url)
            s = await api.setup("bench", type="webhook", config={"url": rurl + "/hook"})
            conv, key = s["conversation"]["id"], s["api_key"]
            await session.post(rurl + "/reset")
            sem = asyncio.Semaphore(32)

            refused = 0

            async def post(i: int) -> None:
                nonlocal refused
                async with sem:  # round-robin over the nodes
                    while True:  # a 503 committed nothing: the client sends it again
                        r = await session.post(
                            f"{servers[i % len(servers)].url}/api/v1/conversations/{conv}/activities",
                            json={"text": f"m{i}"}, headers={"x-api-key": key})
                        await r.read()
                        if r.status != 503:
                            assert r.status == 201, r.status
                            return
                        refused += 1

            assert srv.proc is not None
            if env.get("CONVERGER_PIPELINE"):  # connected to the broker before the clock starts
                deadline = time.monotonic() + 60
                while srv.readiness()["checks"]["delivery"].get("state") != "connected":
                    if time.monotonic() > deadline:
                        raise RuntimeError("serve never connected to the broker")
                    await asyncio.sleep(0.05)
            cpu0 = (gateway_cpu(), _own_cpu(),
                    tree_cpu_seconds(receiver_pid) if receiver_pid else 0.0, *_machine_busy())
            t0 = time.time()
            await asyncio.gather(*(post(i) for i in range(n)))
            posted = time.time()
            state = await _wait_count(session, rurl, n, 120)
            wall = time.time() - t0
            cpu1 = (gateway_cpu(), _own_cpu(),
                    tree_cpu_seconds(receiver_pid) if receiver_pid else 0.0, *_machine_busy())
            out["e2e_cores_gateway"] = (cpu1[0] - cpu0[0]) / wall
            out["e2e_cores_client"] = (cpu1[1] - cpu0[1]) / wall
            out["e2e_cores_receiver"] = (cpu1[2] - cpu0[2]) / wall
            out["e2e_cores_machine_busy"] = (cpu1[3] - cpu0[3]) / wall
            out["e2e_gateway_cpu_us_per_delivery"] = (cpu1[0] - cpu0[0]) / n * 1e6
            out["e2e_posts_refused_503"] = refused
            out["e2e_posts_per_s"] = n / (posted - t0)
            out["e2e_deliveries_per_s"] = n / (state["last"] - t0)
            out["e2e_lag_after_last_post_s"] = state["last"] - posted
            base1 = await baseline(n, rurl, receiver_pid=receiver_pid, cpu=bare)

            # Drain: the same server stopped, N more deliveries queued, then started again.
            for x in servers:
                x.stop()
            _queue_directly(srv, s["tenant"]["id"], conv, n)
            await session.post(rurl + "/reset")
            for x in servers:
                x.start()
            state = await _wait_count(session, rurl, n, 120)
            out["drain_deliveries_per_s"] = n / max(state["last"] - state["first"], 1e-9)
            base2 = await baseline(n, rurl, receiver_pid=receiver_pid, cpu=bare)
    finally:
        for h in helpers:
            h.stop()
        for x in servers:
            x.stop()
    out["baseline_posts_per_s_1"], out["baseline_posts_per_s_2"] = base1, base2
    out["baseline_posts_per_s"] = (base1 + base2) / 2
    # What the ceiling costs: CPU µs per post of the bare client and of the receiver. At half
    # the ceiling's rate the receiver and the posting client (about a bare client's cost per
    # activity) take their share of the machine's cores; what is left, divided by that rate, is
    # the gateway's CPU budget per delivery for ratio_e2e = 0.5 (printed next to its real cost).
    for who in ("client", "receiver"):
        if bare.get(who):
            out[f"baseline_cpu_us_per_post_{who}"] = sum(bare[who]) / len(bare[who])
    if "baseline_cpu_us_per_post_receiver" in out:
        rate = out["baseline_posts_per_s"] / 2
        others = (out["baseline_cpu_us_per_post_client"]
                  + out["baseline_cpu_us_per_post_receiver"]) * rate / 1e6
        out["budget_cpu_us_per_delivery_at_half"] = max(os.cpu_count() or 1, 1) \
            * 1e6 / rate - (out["baseline_cpu_us_per_post_client"]
                            + out["baseline_cpu_us_per_post_receiver"])
        out["budget_cores_left_at_half"] = (os.cpu_count() or 1) - others
    out["ratio_e2e"] = out["e2e_deliveries_per_s"] / out["baseline_posts_per_s"]
    out["ratio_drain"] = out["drain_deliveries_per_s"] / out["baseline_posts_per_s"]
    return out


def _queue_directly(srv: Server, tenant_id: str, conversation_id: str, n: int) -> None:
    """Write N activities and their deliveries with the server's own transaction code."""
    from gateway.domain.activities import NewActivity, insert_tx
    from store import migrations
    from store.db import Database
    from store.util import iso, utcnow

    url = srv.extra_env.get("CONVERGER_DATABASE_URL")
    if url:  # --database postgres: the nodes' database
        from store.pg import PgDatabase

        db: Database = PgDatabase(url)
    else:
        db = Database(srv.data_dir / "converger.db")
    db.start(prepare=migrations.apply)

    def batch(conn: Any, count: int) -> None:
        for i in range(count):
            insert_tx(conn, tenant_id, conversation_id, NewActivity(text=f"q{i}"), iso(utcnow()))

    for start in range(0, n, 500):
        db.write_sync(batch, min(500, n - start))
    db.close()


async def broker_run(args: argparse.Namespace, workdir: Path, rurl: str, receiver_pid: int,
                     queue_results: dict[str, float]) -> dict[str, float]:
    """4: the same end-to-end and drain runs with CONVERGER_PIPELINE=rabbitmq|nats."""
    from tests.support.brokers import Nats, Rabbit

    broker: Nats | Rabbit = Nats(workdir / "nats") if args.pipeline == "nats" else Rabbit()
    broker.start()
    try:
        env = {"CONVERGER_PIPELINE": args.pipeline, "CONVERGER_PIPELINE_URL": broker.url}
        got = await end_to_end(args.n, workdir, rurl, args.workers, receiver_pid, env,
                               args.deliver, name="broker")
    finally:
        if isinstance(broker, Rabbit):
            broker.close()
        else:
            broker.stop()
    out = {f"broker_{k}": v for k, v in got.items()}
    out["broker_deliver_processes"] = float(args.deliver)
    out["broker_vs_queue_e2e"] = got["e2e_deliveries_per_s"] / queue_results["e2e_deliveries_per_s"]
    out["broker_vs_queue_drain"] = (got["drain_deliveries_per_s"]
                                    / queue_results["drain_deliveries_per_s"])
    return out


# -- 3: the queue alone ---------------------------------------------------------------------


def queue_overhead(n: int, workdir: Path, batch: int = 40) -> dict[str, float]:
    from adapters.base import DeliveryResult
    from gateway.workers.delivery import Outcome, claim_tx, outcomes_tx
    from store import activities, channels, conversations, migrations, queue, tenants
    from store.connect import connect
    from store.util import iso, utcnow

    if postgres.enabled():
        from store.pg import PgConnection

        conn: Any = PgConnection.open(postgres.shared().create_database("bench_queue"))
        begin = "BEGIN"
    else:
        conn = connect(workdir / "queue.db")
        begin = "BEGIN IMMEDIATE"
    migrations.apply(conn)
    now = iso(utcnow())
    conn.execute(begin)
    t = tenants.create(conn, name="t", api_key_hash="h", api_key_hint="x", now=now)
    ch = channels.create(conn, tenant_id=t.id, name="c", type="webhook", mode="duplex", config={},
                         transformations=[], secret_hash="s", secret_enc="e", now=now)
    conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=now)
    for _ in range(n):
        a = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u", now=now)
        queue.enqueue(conn, a, [ch.id], now)
    conn.execute("COMMIT")
    done = 0
    t0 = time.perf_counter()
    while done < n:  # the writer's two jobs per batch, as the delivery workers submit them
        now = iso(utcnow())
        conn.execute(begin)
        claimed = claim_tx(conn, now, 120, batch)
        conn.execute("COMMIT")
        conn.execute(begin)
        outcomes_tx(conn, [Outcome(w.delivery, w.delivery.claim_token or "", now,
                                   DeliveryResult(ok=True), 3) for w in claimed], 1.0, True)
        conn.execute("COMMIT")
        done += len(claimed)
    elapsed = time.perf_counter() - t0
    conn.close()
    return {"queue_claim_complete_us_per_delivery": elapsed / n * 1e6,
            "queue_claim_complete_per_s": n / elapsed}


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--overhead-n", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=1, help="converger serve --workers N")
    parser.add_argument("--pipeline", choices=["rabbitmq", "nats"],
                        help="also run end to end and drain through this broker pipeline")
    parser.add_argument("--deliver", type=int, default=0,
                        help="with --pipeline: K converger deliver processes do the attempts")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--nodes", type=int, default=1,
                        help="with --database postgres: N converger nodes on one database")
    args = parser.parse_args(argv)
    cluster = None
    if args.database == "postgres":
        from tests.bench import pgbench_support

        cluster = pgbench_support.use_postgres()
    elif args.nodes != 1:
        parser.error("--nodes needs --database postgres")
    port = free_port()
    rurl = f"http://127.0.0.1:{port}"
    receiver = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_delivery", "receiver", str(port)])
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await _receiver_state(session, rurl)
                    break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            results = {"n": float(args.n)}
            results = {"n": float(args.n), "workers": float(args.workers),
                       "nodes": float(args.nodes)}
            if args.overhead_n:
                results.update(queue_overhead(args.overhead_n, Path(tmp)))
            results.update(await end_to_end(args.n, Path(tmp), rurl, args.workers, receiver.pid,
                                            nodes=args.nodes, cluster=cluster))
            if args.pipeline:
                results.update(await broker_run(args, Path(tmp), rurl, receiver.pid, results))
    finally:
        receiver.terminate()
        receiver.wait(5)
    print(json.dumps({k: round(v, 2 if k.startswith(("ratio", "e2e_cores", "broker_vs",
                                                      "broker_ratio", "broker_e2e_cores"))
                               else 1)
                      for k, v in results.items()},
                     indent=2))
    print(f"database: {args.database}  nodes: {args.nodes}")
    print(f"machine: nproc={os.cpu_count()}  loadavg={Path('/proc/loadavg').read_text().strip()}")
    e2e = results["e2e_deliveries_per_s"]
    print(f"end to end {e2e:,.0f} deliveries/s = {results['ratio_e2e']:.2f} x baseline "
          f"{results['baseline_posts_per_s']:,.0f} posts/s; drain {results['drain_deliveries_per_s']:,.0f}"
          f"/s = {results['ratio_drain']:.2f} x; target >= 1,000 deliveries/s "
          f"{'OK' if e2e >= 1000 else 'BELOW TARGET'}")
    if "budget_cpu_us_per_delivery_at_half" in results:
        print(f"the ceiling's cost per post: bare client "
              f"{results['baseline_cpu_us_per_post_client']:.0f} us + receiver "
              f"{results['baseline_cpu_us_per_post_receiver']:.0f} us of CPU; at 0.5 x the ceiling "
              f"({results['baseline_posts_per_s'] / 2:,.0f}/s) the gateway would have "
              f"{results['budget_cores_left_at_half']:.2f} cores = "
              f"{results['budget_cpu_us_per_delivery_at_half']:.0f} us of CPU per delivery "
              f"(it spends {results['e2e_gateway_cpu_us_per_delivery']:.0f} us)")
    if args.pipeline:
        print(f"{args.pipeline} pipeline ({args.deliver or 'no'} deliver processes): end to end "
              f"{results['broker_e2e_deliveries_per_s']:,.0f} deliveries/s "
              f"({results['broker_vs_queue_e2e']:.2f} x queue), drain "
              f"{results['broker_drain_deliveries_per_s']:,.0f}/s "
              f"({results['broker_vs_queue_drain']:.2f} x queue)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["receiver"]:
        run_receiver(int(sys.argv[2]))
    else:
        asyncio.run(main(sys.argv[1:]))

"""Activity write path vs. a bare Sanic JSON echo, in one run (not part of the test suite).

    python -m tests.bench.bench_activity [--duration 10] [--connections 50] [--rounds 3]
                                         [--events nats|rabbitmq]

Starts two servers, each in its own process with the same Sanic settings (single_process,
uvloop, no access log): the JSON echo app of tests/bench/baseline.py, and the real converger
server on a fresh data directory with one tenant, a websocket channel and one conversation. Load
comes from a separate process: ``wrk`` (Debian's package) with a Lua script for the POST, or,
without wrk, an aiohttp client in its own process. Prints requests/s, p50/p99 and the server's
CPU time per request for each, and the ratio activity / echo (target: ≥ 0.35). Only one server
is under load at a time; rounds alternate echo and activity so both see the same noise.

``--events nats|rabbitmq`` adds a third server in the same rounds, the same gateway with
``CONVERGER_EVENTS_URL`` set to a real broker (tests/support/brokers.py): the publishing cost on
the write path is its req/s and server CPU per request against the plain gateway's (issue 16:
≤ 15%); with ``--before TREE`` also the ``--before`` tree's gateway with the stream on, against
the same plain gateway (the stream's cost before and after, in one run). Its CPU is counted until the relay has published everything the round wrote (``/readyz``
``behind`` 0), so work the relay does after the load stops is not missed; the broker's own CPU
per request is reported separately. Figures: docs/performance.md.

``--database postgres`` adds, in the same rounds (so the SQLite figures are of the same run),
the gateway on PostgreSQL (a throwaway cluster, tests/support/postgres.py): ``pg1``, one node;
``pg2``, two nodes on one database, each loaded by a wrk of its own with half the connections
(req/s summed, p50/p99 the worse of the two); and ``pgbench``, the ceiling: pgbench with the same
client count running one transaction per activity that inserts an activity row and its delivery
row into the same schema (tests/bench/pgbench_support.py; use ``--channel-type webhook`` for the
gateway to write the same two rows). Server CPU on PostgreSQL counts the cluster's processes too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.baseline import start_echo, tree_cpu_seconds  # noqa: E402
from tests.support.server import ADMIN_TOKEN, Server  # noqa: E402

BODY = {"text": "hello from the benchmark", "sender": "bench", "metadata": {"n": 1}}
TARGET = 0.5  # issue 14 (issue 2 asked 0.35); and p99 < 25 ms


# -- the converger side -----------------------------------------------------------------------
def call(base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def converger_setup(base: str, channel_type: str, hook: str = "http://127.0.0.1:9/hook") -> dict[str, str]:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    tenant = call(base, "POST", "/api/admin/tenants", {"name": "bench"}, admin)["data"]
    config = {"url": hook} if channel_type == "webhook" else {}
    channel = call(base, "POST", "/api/admin/channels", {
        "tenant_id": tenant["id"], "name": "bench", "type": channel_type, "config": config}, admin)["data"]
    token = call(base, "POST", f"/api/admin/channels/{channel['id']}/token", None, admin)["token"]
    conv = call(base, "POST", "/api/v1/conversations", {}, {"x-channel-token": token})["data"]
    return {"api_key": tenant["api_key"], "conversation_id": conv["id"]}


# -- load generation --------------------------------------------------------------------------
LUA = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{extra}
"""


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def load_wrk(url: str, headers: dict[str, str], duration: float, connections: int) -> dict[str, Any]:
    extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA.format(body=json.dumps(json.dumps(BODY)), extra=extra))
        script = f.name
    try:
        # One wrk thread: on a 2-core machine the other core is the server's.
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s", script, url],
            capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:(.*)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": total,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sock.group(1).strip() if sock else ""}


def load_aiohttp(url: str, headers: dict[str, str], duration: float, connections: int) -> dict[str, Any]:
    """Fallback load generator: an aiohttp client in its own process."""
    out = subprocess.run(
        [sys.executable, __file__, "--aiohttp-load", url, json.dumps(headers), str(duration),
         str(connections)], capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    return json.loads(out)


def aiohttp_client(url: str, headers: dict[str, str], duration: float, connections: int) -> None:
    import asyncio

    import aiohttp

    async def main() -> dict[str, Any]:
        lat: list[float] = []
        bad = 0
        body = json.dumps(BODY).encode()
        hdrs = {"content-type": "application/json", **headers}
        end = time.perf_counter() + duration
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:
            async def worker() -> None:
                nonlocal bad
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    async with s.post(url, data=body, headers=hdrs) as r:
                        await r.read()
                        if r.status >= 300:
                            bad += 1
                    lat.append(time.perf_counter() - t)
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - start
        lat.sort()
        return {"rps": len(lat) / elapsed, "p50_ms": lat[len(lat) // 2] * 1000,
                "p99_ms": lat[int(len(lat) * 0.99)] * 1000, "requests": len(lat), "non_2xx": bad,
                "socket_errors": ""}

    print(json.dumps(asyncio.run(main())))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc: unlike requests/s it
    hardly moves when other work shares the machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_cpu(broker: Any) -> float:
    """CPU seconds of the broker's processes (nats-server; RabbitMQ's Erlang VM and epmd)."""
    if broker is None:
        return 0.0
    pids = broker._ours() if hasattr(broker, "_ours") else [broker.proc.pid]
    return sum(tree_cpu_seconds(p) for p in pids)


def drained(base: str, timeout: float = 120.0) -> float:
    """Wait until the relay has published everything (``/readyz`` ``behind`` 0); seconds it
    took after the load stopped."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                ev = json.loads(r.read())["checks"]["events"]
        except urllib.error.HTTPError as err:
            ev = json.loads(err.read())["checks"]["events"]
        if ev.get("state") == "connected" and ev.get("behind") == 0:
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError("the event relay did not catch up")


# -- PostgreSQL (--database postgres) ---------------------------------------------------------
def postgres_targets(nodes: list[Server], args: argparse.Namespace, load: Any, pgb: Any,
                     cluster: Any) -> dict[str, tuple[Any, Any]]:
    """name → (run for a duration, CPU seconds so far): pg1 (nodes[0]), pg2 (nodes[1:3], loaded
    together) and the pgbench ceiling; the CPU of each is the gateway's processes plus the whole
    PostgreSQL cluster's."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.bench import pgbench_support

    def pg_cpu(servers: list[Server]) -> Any:
        return lambda: (sum(tree_cpu_seconds(s.proc.pid) for s in servers)  # type: ignore[union-attr]
                        + pgbench_support.cluster_cpu_seconds(cluster))

    one = converger_setup(nodes[0].url, args.channel_type)
    two = converger_setup(nodes[1].url, args.channel_type)
    half = max(1, args.connections // 2)

    def single(duration: float) -> dict[str, Any]:
        return dict(load(f"{nodes[0].url}/api/v1/conversations/{one['conversation_id']}"
                         "/activities", {"x-api-key": one["api_key"]}, duration, args.connections))

    def both(duration: float) -> dict[str, Any]:
        with ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda n: load(
                f"{n.url}/api/v1/conversations/{two['conversation_id']}/activities",
                {"x-api-key": two["api_key"]}, duration, half), nodes[1:3]))
        return {"rps": sum(o["rps"] for o in outs), "p50_ms": max(o["p50_ms"] for o in outs),
                "p99_ms": max(o["p99_ms"] for o in outs),
                "requests": sum(o["requests"] for o in outs),
                "non_2xx": sum(o["non_2xx"] for o in outs),
                "socket_errors": " ".join(o["socket_errors"] for o in outs).strip()}

    return {"pg1": (single, pg_cpu(nodes[:1])), "pg2": (both, pg_cpu(nodes[1:3])),
            "pgbench": (lambda d: pgb.run(d, args.connections),
                        lambda: pgbench_support.cluster_cpu_seconds(cluster))}


# -- the run ----------------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--channel-type", default="websocket", choices=("websocket", "webhook"),
                   help="websocket: no delivery rows; webhook: one queued delivery per activity")
    p.add_argument("--loader", choices=("auto", "wrk", "aiohttp"), default="auto")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--workers", type=int, default=1,
                   help="converger serve --workers N, and the echo app with N processes")
    p.add_argument("--receiver", action="store_true",
                   help="webhook channel: deliver to a live local receiver (else a closed port)")
    p.add_argument("--events", choices=("nats", "rabbitmq"),
                   help="also run the gateway with CONVERGER_EVENTS_URL on this real broker in "
                        "the same rounds: the event publishing cost on the write path")
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                   help="postgres: also pg1, pg2 (two nodes) and the pgbench ceiling")
    p.add_argument("--before", metavar="TREE",
                   help="also run the gateway from this source tree (e.g. `git worktree add "
                        "/tmp/before <commit>`) in the same rounds: before/after in one run")
    args = p.parse_args()
    loader = args.loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "aiohttp"
    load = load_wrk if loader == "wrk" else load_aiohttp

    results: dict[str, list[dict[str, Any]]] = {"echo": [], "activity": []}
    if args.before:
        results["before"] = []
    if args.events:
        results["events"] = []
        if args.before:
            results["events_before"] = []
    cluster = None
    if args.database == "postgres":
        results.update({"pg1": [], "pg2": [], "pgbench": []})
    with tempfile.TemporaryDirectory(prefix="converger-bench-") as tmp:
        broker: Any = None
        events_srv = None
        if args.events:
            from tests.support.brokers import Nats, Rabbit

            broker = (Nats(Path(tmp) / "nats") if args.events == "nats" else Rabbit()).start()
            events_srv = Server(Path(tmp) / "events", env={
                "CONVERGER_LOG_LEVEL": "WARNING", "CONVERGER_WORKERS": str(args.workers),
                "CONVERGER_EVENTS_URL": broker.url}).start(60)
        server = Server(Path(tmp) / "data", env={
            "CONVERGER_LOG_LEVEL": "WARNING", "CONVERGER_WORKERS": str(args.workers)}).start(60)
        pg_nodes: list[Server] = []
        if args.database == "postgres":
            from tests.bench import pgbench_support

            cluster = pgbench_support.use_postgres()  # the servers started from here on
            env = {"CONVERGER_LOG_LEVEL": "WARNING", "CONVERGER_WORKERS": str(args.workers)}
            pg_nodes = (pgbench_support.start_nodes(Path(tmp), 1, env, "bench_pg1")
                        + pgbench_support.start_nodes(Path(tmp), 2, env, "bench_pg2"))
        before = events_before = None
        if args.before:
            import tests.support.server as support

            here, support.ROOT = support.ROOT, Path(args.before).resolve()  # the server's cwd
            try:
                before = Server(Path(tmp) / "before", env={
                    "CONVERGER_LOG_LEVEL": "WARNING", "CONVERGER_WORKERS": str(args.workers)}).start(60)
                if broker is not None:  # the stream's cost before and after, in the same rounds
                    events_before = Server(Path(tmp) / "events-before", env={
                        "CONVERGER_LOG_LEVEL": "WARNING", "CONVERGER_WORKERS": str(args.workers),
                        "CONVERGER_EVENTS_URL": broker.url}).start(60)
            finally:
                support.ROOT = here
        echo_proc, echo_url = start_echo(args.workers)
        receiver = None
        hook = "http://127.0.0.1:9/hook"
        if args.receiver:
            from tests.support.server import free_port

            rport = free_port()
            receiver = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_delivery",
                                         "receiver", str(rport)], cwd=ROOT)
            hook = f"http://127.0.0.1:{rport}/hook"
            time.sleep(1.5)
        try:
            setup = converger_setup(server.url, args.channel_type, hook)
            act_url = f"{server.url}/api/v1/conversations/{setup['conversation_id']}/activities"
            act_headers = {"x-api-key": setup["api_key"]}
            targets = [("echo", echo_url + "/echo", {}), ("activity", act_url, act_headers)]
            pids = {"echo": getattr(echo_proc, "pids", [echo_proc.pid]),
                    "activity": [server.proc.pid]}  # type: ignore[union-attr]
            if before is not None:
                old = converger_setup(before.url, args.channel_type, hook)
                targets.append(("before", f"{before.url}/api/v1/conversations/"
                                f"{old['conversation_id']}/activities", {"x-api-key": old["api_key"]}))
                pids["before"] = [before.proc.pid]  # type: ignore[union-attr]
            stream_servers = {"events": events_srv, "events_before": events_before}
            for name, srv in stream_servers.items():
                if srv is not None:
                    ev = converger_setup(srv.url, args.channel_type, hook)
                    targets.append((name, f"{srv.url}/api/v1/conversations/"
                                    f"{ev['conversation_id']}/activities",
                                    {"x-api-key": ev["api_key"]}))
                    pids[name] = [srv.proc.pid]  # type: ignore[union-attr]
            extra: dict[str, tuple[Any, Any]] = {}
            if cluster is not None:
                extra = postgres_targets(pg_nodes, args, load, pgbench_support.PgBench(cluster),
                                         cluster)
            for _, url, headers in targets:
                load(url, headers, args.warmup, args.connections)
            for run, _ in extra.values():
                run(args.warmup)
            for r in range(args.rounds):
                for name, (run, cpu) in extra.items():
                    cpu0 = cpu()
                    res = run(args.duration)
                    res["cpu_us_per_request"] = (cpu() - cpu0) / max(1, res["requests"]) * 1e6
                    res["load_avg"] = os.getloadavg()[0]
                    results[name].append(res)
                    print(f"round {r + 1} {name:8} {res['rps']:9.0f} req/s  p50 {res['p50_ms']:7.2f} ms"
                          f"  p99 {res['p99_ms']:7.2f} ms  server CPU "
                          f"{res['cpu_us_per_request']:5.0f} us/req  non-2xx {res['non_2xx']}"
                          f"{'  socket errors ' + res['socket_errors'] if res['socket_errors'] else ''}",
                          flush=True)
                for name, url, headers in targets:
                    cpu0 = sum(tree_cpu_seconds(p) for p in pids[name])
                    broker0 = broker_cpu(broker) if name in stream_servers else 0.0
                    res = load(url, headers, args.duration, args.connections)
                    if name in stream_servers:
                        res["relay_lag_s"] = drained(stream_servers[name].url)  # type: ignore[union-attr]
                        res["broker_cpu_us_per_request"] = (broker_cpu(broker) - broker0) / max(
                            1, res["requests"]) * 1e6
                    res["cpu_us_per_request"] = (sum(tree_cpu_seconds(p) for p in pids[name]) - cpu0) / max(
                        1, res["requests"]) * 1e6
                    res["load_avg"] = os.getloadavg()[0]
                    results[name].append(res)
                    print(f"round {r + 1} {name:8} {res['rps']:9.0f} req/s  p50 {res['p50_ms']:7.2f} ms"
                          f"  p99 {res['p99_ms']:7.2f} ms  server CPU "
                          f"{res['cpu_us_per_request']:5.0f} us/req  non-2xx {res['non_2xx']}"
                          f"{'  socket errors ' + res['socket_errors'] if res['socket_errors'] else ''}",
                          flush=True)
        finally:
            echo_proc.terminate()
            echo_proc.wait(10)
            server.stop(40)
            for node in pg_nodes:
                node.stop(40)
            if before is not None:
                before.stop(40)
            for srv in (events_srv, events_before):
                if srv is not None:
                    srv.stop(40)
            if broker is not None:
                (broker.close if hasattr(broker, "close") else broker.stop)()
            if receiver is not None:
                receiver.terminate()
                receiver.wait(10)
        from store.connect import connect

        conn = connect(server.data_dir / "converger.db", readonly=True)
        stored = conn.execute("SELECT count(*) FROM activities").fetchone()[0]
        conn.close()

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    ratios = [a["rps"] / e["rps"] for a, e in zip(results["activity"], results["echo"], strict=True)]
    ratio = statistics.median(ratios)
    print()
    print(f"machine: nproc={os.cpu_count()}  loader={loader}  connections={args.connections}  "
          f"duration={args.duration}s x {args.rounds} rounds  channel={args.channel_type}  "
          f"workers={args.workers}{'  receiver=live' if args.receiver else ''}")
    for name in results:
        print(f"{name:8} median {med(name, 'rps'):9.0f} req/s  p50 {med(name, 'p50_ms'):7.2f} ms  "
              f"p99 {med(name, 'p99_ms'):7.2f} ms  server CPU {med(name, 'cpu_us_per_request'):5.0f} us/req")
    print(f"ratio activity/echo: median {ratio:.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
          f"  target >= {TARGET}  {'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    answered = sum(x["requests"] - x["non_2xx"] for x in results["activity"])
    cpu_ratio = med("echo", "cpu_us_per_request") / med("activity", "cpu_us_per_request")
    print(f"CPU-cost ratio echo/activity (noise-robust estimate of the same ratio): {cpu_ratio:.2f}")
    if args.before:
        old_ratios = [b["rps"] / e["rps"] for b, e in zip(results["before"], results["echo"], strict=True)]
        print(f"before ({args.before}): ratio before/echo median {statistics.median(old_ratios):.2f}; "
              f"CPU per request before {med('before', 'cpu_us_per_request'):.0f} us, "
              f"now {med('activity', 'cpu_us_per_request'):.0f} us; req/s now/before (median of "
              f"rounds) {statistics.median(a['rps'] / b['rps'] for a, b in zip(results['activity'], results['before'], strict=True)):.2f}")
    for stream in ("events", "events_before") if args.events else ():
        if stream not in results:
            continue
        by_rps = [e["rps"] / a["rps"] for e, a in zip(results[stream], results["activity"],
                                                      strict=True)]
        by_cpu = [a["cpu_us_per_request"] / e["cpu_us_per_request"]
                  for e, a in zip(results[stream], results["activity"], strict=True)]
        rps_cost = 1 - statistics.median(by_rps)
        cpu_cost = 1 / statistics.median(by_cpu) - 1
        label = f" from {args.before}" if stream == "events_before" else ""
        print(f"event publishing cost ({args.events}{label}): by req/s {rps_cost:.0%} (events/plain per "
              f"round: {', '.join(f'{r:.2f}' for r in by_rps)}); by server CPU per request "
              f"{cpu_cost:.0%} ({med('activity', 'cpu_us_per_request'):.0f} -> "
              f"{med(stream, 'cpu_us_per_request'):.0f} us, the relay's tail included; per round "
              f"{', '.join(f'{1 / r - 1:.0%}' for r in by_cpu)}); "
              f"broker CPU {med(stream, 'broker_cpu_us_per_request'):.0f} us per activity; "
              f"relay drained {max(x['relay_lag_s'] for x in results[stream]):.2f}s after the "
              f"load at most; target <= 15%  "
              f"{'OK' if max(rps_cost, cpu_cost) <= 0.15 else 'OVER TARGET'}")
    if cluster is not None:
        sq, ceiling = med("activity", "rps"), med("pgbench", "rps")
        print(f"PostgreSQL: pg1/SQLite {med('pg1', 'rps') / sq:.2f}, pg2/SQLite "
              f"{med('pg2', 'rps') / sq:.2f}, pg1/pgbench {med('pg1', 'rps') / ceiling:.2f}, "
              f"pg2/pgbench {med('pg2', 'rps') / ceiling:.2f} (medians of req/s)")
    loads = ", ".join(f"{x['load_avg']:.1f}" for x in results["activity"])
    print(f"load average (1 min) after each plain round: {loads}")
    print(f"activities in the database: {stored} (answered 201 in measured rounds: {answered}; "
          "the rest are the warm-up and requests in flight when wrk stopped)")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "ratios": ratios,
                                               "ratio": ratio, "cpu_ratio": cpu_ratio, "loader": loader,
                                               "nproc": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--aiohttp-load":
        aiohttp_client(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(main())

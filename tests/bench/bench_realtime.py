"""Real-time benchmark: POST-to-receive latency and pushes/s, the gateway against a baseline.

    python -m tests.bench.bench_realtime            # both cases, 10 s each, baseline then gateway
    python -m tests.bench.bench_realtime --case a --seconds 30 [--target gateway]
    python -m tests.bench.bench_realtime --case c --workers 2 --before /tmp/before  # before/after

(a) 1,000 sockets, each joined to its own conversation; activities posted over HTTP at 500/s
    spread across the conversations (one push per post).
(b) 500 sockets joined to one conversation; 20 activities/s (500 pushes per post).
(c) 10,000 sockets over 1,000 conversations (ten each); 1,000 activities/s spread across the
    conversations (10,000 pushes/s). Also reported: the gateway's resident memory (every process)
    before the sockets open and once they are all joined, per socket. Run it with
    ``--workers 2`` (``converger serve --workers N``; the sockets spread over the processes and
    every push crosses the change feed). The baseline is one process whatever ``--workers``
    says: a bare app cannot fan a POST out to another process's sockets.

``--trace DIR`` (tests/bench/trace): every process of the run — the server's, the poster, the
socket clients — records its garbage collections, event-loop lags and CPU waits, the gateway's
workers the age of each activity when their hub publishes it, the clients each push's receive
time; a report then says where the slow pushes fall (``python -m tests.bench.trace.report DIR``
reads it again). The socket clients and the poster freeze their heap once set up
(``--client-gc default`` does not): with 5,000 aiohttp sockets, a client's own full collection
took 0.3 s of CPU, and the pushes it was timing waited meanwhile.

Every run also reports the server's CPU time (all its processes) from the first POST until
the pushes were collected, per push received: on a loaded machine, where latencies say more
about the neighbours than about the server, that figure still compares two servers.

The server, the poster and the socket clients are separate processes (clients split over
``--receivers`` processes), so the load generator does not share the server's event loop.
Each activity's text carries the wall-clock time its POST started; a receiver's latency is its
receive time minus that. Not collected by pytest (tests/bench is excluded).

Same-run baseline: each case runs first against the bare Sanic broadcast app of
tests/bench/baseline.py (the gateway's Sanic settings; a WebSocket endpoint, a plain set of
sockets per conversation, a POST that sends its JSON to them; no auth, no store) with the same
client processes and the same load, then against the gateway. Reported per case: both runs'
latencies and pushes/s, and the ratios gateway p99 / baseline p99 and gateway pushes/s ÷
baseline pushes/s. Target (issue 3): gateway p99 < 100 ms in both cases. Figures:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench.baseline import start_broadcast, tree_cpu_seconds  # noqa: E402
from tests.support.server import ADMIN_TOKEN, Server  # noqa: E402

TARGET_P99_MS = 100  # issue 3, both cases
SECRET = "bench-secret-key-0123456789-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


# -- set-up (main process) ------------------------------------------------------------------
async def _setup(base: str, conversations: int) -> dict[str, Any]:
    from gateway.tokens import Tokens

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
        async with s.post(f"{base}/api/admin/tenants", json={"name": "bench"}, headers=ADMIN) as r:
            tenant = (await r.json())["data"]
        async with s.post(f"{base}/api/admin/channels", headers=ADMIN,
                          json={"tenant_id": tenant["id"], "name": "ws", "type": "websocket"}) as r:
            channel = (await r.json())["data"]
        async with s.post(f"{base}/api/admin/channels/{channel['id']}/token", headers=ADMIN) as r:
            ctoken = (await r.json())["token"]

        async def conv(_: int) -> str:
            async with s.post(f"{base}/api/v1/conversations", json={},
                              headers={"x-channel-token": ctoken}) as r:
                return (await r.json())["data"]["id"]

        ids = await asyncio.gather(*(conv(i) for i in range(conversations)))
    tokens = Tokens(SECRET)  # the server runs with this key, so tokens can be minted here
    return {"api_key": tenant["api_key"], "conversations": list(ids),
            "tokens": [tokens.user_token(cid, tenant["id"], f"u{i}") for i, cid in enumerate(ids)]}


# -- the load generator's own pauses --------------------------------------------------------
CLIENT_GC_ENV = "BENCH_CLIENT_GC"  # --client-gc default: leave the clients' collector alone


def _settle_heap() -> None:
    """Collect once, then move everything alive into the collector's permanent generation
    (``gc.freeze``): a client process holding 5,000 sockets (aiohttp: hundreds of objects
    each) otherwise stops for a full collection of all of them — 0.3 s of CPU, measured with
    ``--trace`` — while the pushes it should be timing wait in its socket buffers. The
    clients measure the server; their own pauses must not be in the figures."""
    import gc

    gc.collect()
    gc.freeze()


# -- socket clients (receiver processes) ----------------------------------------------------
async def _receive(ws_base: str, joins: list[tuple[str, str]], ready: Any, stop: Any,
                   out: Any) -> None:
    latencies: list[float] = []
    # limit=0: every socket holds a connection (the default pool of 100 would block the rest).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        opening = asyncio.Semaphore(32)  # thousands of sockets: a few dozen handshakes at once

        async def connect(token: str, cid: str) -> None:
            async with opening:
                ws = await s.ws_connect(f"{ws_base}/socket/websocket?token={token}&vsn=2.0.0",
                                        heartbeat=None, max_msg_size=0)
                await ws.send_str(json.dumps(["1", "1", f"conversation:{cid}", "phx_join", {}]))
                sockets.append(ws)

        await asyncio.gather(*(connect(token, cid) for token, cid in joins))
        for ws in sockets:  # every join answered before the load starts
            while True:
                frame = json.loads((await ws.receive(timeout=60)).data)
                if frame[3] == "phx_reply":
                    break

        # --trace: each push's receive time (floats: nothing more for the collector to track)
        received: list[float] | None = [] if TRACE_ENV in os.environ else None

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                now = time.time()
                frame = json.loads(msg.data)
                if frame[3] == "new_activity":
                    latency = now - float(frame[4]["text"])
                    latencies.append(latency)
                    if received is not None:
                        received.append(now)

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        if os.environ.get(CLIENT_GC_ENV) != "default":
            _settle_heap()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for t in readers:
            t.cancel()
        for ws in sockets:
            await ws.close()
    if received is not None:
        _write_trace("pushes", [{"k": "push", "t": t, "d": d}
                                for t, d in zip(received, latencies, strict=True)])
    out.put(latencies)


def receiver(ws_base: str, joins: list[tuple[str, str]], ready: Any, stop: Any, out: Any,
             role: str = "receiver") -> None:
    import resource

    os.environ["BENCH_ROLE"] = role  # --trace: the trace file's name

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # thousands of sockets (case c)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_receive(ws_base, joins, ready, stop, out))


# -- poster process -------------------------------------------------------------------------
async def _post(base: str, api_key: str, conversations: list[str], rate: float, seconds: float,
                out: Any) -> None:
    posted, failed, post_lat = 0, 0, []
    trace: list[tuple[float, float]] | None = [] if TRACE_ENV in os.environ else None
    headers = {"x-api-key": api_key, "content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128)) as s:
        async def one(cid: str, due: float) -> None:
            nonlocal posted, failed
            t = time.time()
            if trace is not None:  # how late the poster started this POST
                trace.append((t, time.monotonic() - due))
            body = json.dumps({"text": repr(t), "sender": "bench"})
            try:
                async with s.post(f"{base}/api/v1/conversations/{cid}/activities", data=body,
                                  headers=headers) as r:
                    await r.read()
                    ok = r.status == 201
            except aiohttp.ClientError:
                ok = False
            if ok:
                posted += 1
                post_lat.append(time.time() - t)
            else:
                failed += 1

        n = int(rate * seconds)
        start = time.monotonic()
        # The POSTs in flight (a finished one is forgotten: 10,000 finished tasks kept to the
        # end made the poster's full collections ever longer).
        tasks: set[asyncio.Task[None]] = set()
        if os.environ.get(CLIENT_GC_ENV) != "default":
            _settle_heap()
        for i in range(n):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(conversations[i % len(conversations)], due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    if trace is not None:
        _write_trace("posts", [{"k": "post", "t": t, "late": late} for t, late in trace])
    out.put({"posted": posted, "failed": failed, "elapsed": elapsed, "post_latencies": post_lat})


def poster(base: str, api_key: str, conversations: list[str], rate: float, seconds: float,
           out: Any) -> None:
    os.environ["BENCH_ROLE"] = "poster"
    asyncio.run(_post(base, api_key, conversations, rate, seconds, out))


# -- one case -------------------------------------------------------------------------------
def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


TRACE_ENV = "CONVERGER_BENCH_TRACE"  # --trace: the run's trace directory (tests/bench/trace)


def _write_trace(kind: str, records: list[dict[str, Any]]) -> None:
    path = Path(os.environ[TRACE_ENV]) / f"{kind}-{os.getpid()}.jsonl"
    with path.open("a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


TRACE_DIR: str | None = None  # --trace
BEFORE_TREE: str | None = None  # --before: the source tree whose gateway is the "before" target


def _start(target: str, tmp: Path, conversations: int,
           workers: int = 1) -> tuple[str, str, dict[str, Any], Any, Any]:
    """The server under load: ``gateway`` (the real server, set up with a tenant, a websocket
    channel and the conversations) or ``baseline`` (the bare Sanic broadcast app, which needs
    no set-up). Returns its HTTP and WebSocket base URLs, the world and a stop function."""
    if target == "baseline":
        proc, url = start_broadcast()

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(30)  # closing 10,000 sockets on a loaded machine takes a while
            except Exception:
                proc.kill()
                proc.wait(10)

        ids = [str(uuid.uuid4()) for _ in range(conversations)]
        world = {"api_key": "-", "conversations": ids, "tokens": ["-"] * conversations}
        return url, "ws" + url[len("http"):], world, stop, [proc.pid]
    import tests.support.server as support

    here = support.ROOT
    if target == "before":  # the server's cwd: that tree's gateway
        assert BEFORE_TREE is not None
        support.ROOT = Path(BEFORE_TREE).resolve()
    try:
        srv = Server(tmp, env={"CONVERGER_SECRET_KEY": SECRET, "CONVERGER_LOG_LEVEL": "WARNING",
                               "CONVERGER_WS_IDLE_TIMEOUT": "600",
                               "CONVERGER_WORKERS": str(workers)}).start(60)
    finally:
        support.ROOT = here
    try:
        world = asyncio.run(_setup(srv.url, conversations))
    except BaseException:
        srv.stop()
        raise
    return srv.url, srv.ws_url, world, srv.stop, srv.pids


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def run_case(name: str, target: str, sockets: int, conversations: int, rate: float,
             seconds: float, receivers: int, workers: int = 1) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    if TRACE_DIR is not None:  # every process of this run traces into a directory of its own
        tdir = Path(TRACE_DIR) / f"{name}-{target}-{time.strftime('%H%M%S')}"
        tdir.mkdir(parents=True)
        os.environ[TRACE_ENV] = str(tdir)
        here = str(Path(__file__).resolve().parent / "trace")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [here, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                     if p and p != here]])
    with tempfile.TemporaryDirectory() as tmp:
        url, ws_url, world, stop_server, pids = _start(target, Path(tmp), conversations,
                                                       1 if target == "baseline" else workers)
        pid_list = pids() if callable(pids) else pids
        try:
            time.sleep(2.0)  # let start-up settle before the memory reading
            rss_before = _rss_kib(pid_list)
            joins = [(world["tokens"][i % conversations], world["conversations"][i % conversations])
                     for i in range(sockets)]
            ready = [ctx.Event() for _ in range(receivers)]
            stop, results = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=receiver, args=(ws_url, joins[k::receivers], ready[k],
                                                        stop, results, f"receiver{k}"))
                     for k in range(receivers)]
            for p in procs:
                p.start()
            for e in ready:
                if not e.wait(120 + sockets / 20):
                    raise RuntimeError("receivers did not get ready")
            time.sleep(2.0)  # every join answered: let the server settle, then read its memory
            rss_after = _rss_kib(pid_list)
            cpu_before = tree_cpu_seconds(pid_list[0])  # the server's whole process tree
            post_q = ctx.Queue()
            post_proc = ctx.Process(target=poster, args=(url, world["api_key"],
                                                         world["conversations"], rate, seconds,
                                                         post_q))
            post_proc.start()
            posted = post_q.get(timeout=seconds * 5 + 60)
            post_proc.join()
            expected = posted["posted"] * sockets // conversations
            # Let the last pushes land (bounded wait), then collect.
            time.sleep(2.0)
            stop.set()
            latencies: list[float] = []
            for _ in procs:
                latencies.extend(results.get(timeout=120))
            for p in procs:
                p.join(30)
            server_cpu = tree_cpu_seconds(pid_list[0]) - cpu_before
            if TRACE_DIR is not None and target != "baseline" and workers > 1:
                # The workers' census of what their collector has not freed (cyclic garbage,
                # frozen or not): tests/bench/trace/sitecustomize.py, SIGUSR2.
                import signal

                for pid in pid_list[1:]:
                    os.kill(pid, signal.SIGUSR2)
                time.sleep(2.0)
        finally:
            stop_server()
    window = posted["elapsed"]
    if TRACE_DIR is not None:
        from tests.bench.trace.report import report

        del os.environ[TRACE_ENV]
        report(tdir)
    return {
        "case": name, "target": target, "workers": 1 if target == "baseline" else workers,
        "rss_before_mib": round(rss_before / 1024, 1), "rss_after_mib": round(rss_after / 1024, 1),
        "kib_per_socket": round((rss_after - rss_before) / sockets, 1),
        "sockets": sockets, "conversations": conversations, "rate": rate,
        "seconds": seconds, "posted": posted["posted"], "post_failures": posted["failed"],
        "pushes_expected": expected, "pushes_received": len(latencies),
        "pushes_per_s": round(len(latencies) / window, 1),
        "latency_p50_ms": round(_pct(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(_pct(latencies, 99) * 1000, 1),
        "latency_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "post_p50_ms": round(_pct(posted["post_latencies"], 50) * 1000, 1),
        "post_p99_ms": round(_pct(posted["post_latencies"], 99) * 1000, 1),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        # Server CPU (every process) from the first POST until the pushes were collected, per
        # push received: the figure that moves least with the machine's load.
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_push": (round(server_cpu / len(latencies) * 1e6, 1)
                                   if latencies else None),
    }


CASES = {
    "a": dict(sockets=1000, conversations=1000, rate=500.0),
    "b": dict(sockets=500, conversations=1, rate=20.0),
    "c": dict(sockets=10_000, conversations=1000, rate=1000.0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all",
                        help="all: (a) and (b); (c), the 10,000 sockets, runs only when named")
    parser.add_argument("--workers", type=int, default=1, help="converger serve --workers N")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--target", choices=("both", "gateway", "baseline"), default="both",
                        help="both: the bare Sanic broadcast baseline, then the gateway")
    parser.add_argument("--before", metavar="TREE",
                        help="also run the gateway of this source tree (e.g. `git worktree add "
                             "/tmp/before main`), between the baseline and this tree's: "
                             "before/after in one run")
    parser.add_argument("--client-gc", choices=("freeze", "default"), default="freeze",
                        help="freeze: the socket clients and the poster freeze their heap "
                             "(gc.freeze) once set up, so their own full collections do not "
                             "pause the measurement; default: leave their collector alone")
    parser.add_argument("--trace", metavar="DIR",
                        help="trace every process (tests/bench/trace: garbage collections, "
                             "event-loop lags, publish ages, each push's receive time) into "
                             "DIR and print where the slow pushes fall")
    args = parser.parse_args(argv)
    os.environ[CLIENT_GC_ENV] = args.client_gc  # read by the spawned client processes
    if args.trace:
        global TRACE_DIR
        TRACE_DIR = args.trace
    names = ["a", "b"] if args.case == "all" else [args.case]
    targets = ["baseline", "gateway"] if args.target == "both" else [args.target]
    if args.before:
        global BEFORE_TREE
        BEFORE_TREE = args.before
        targets.insert(targets.index("gateway") if "gateway" in targets else len(targets),
                       "before")
    summary: list[str] = []
    failed = False
    for name in names:
        runs: dict[str, dict[str, Any]] = {}
        for target in targets:
            runs[target] = run_case(name, target, seconds=args.seconds, receivers=args.receivers,
                                    workers=args.workers, **CASES[name])
            runs[target]["loadavg"] = Path("/proc/loadavg").read_text().split()[0]
            print(json.dumps(runs[target]), flush=True)
            failed |= runs[target]["pushes_received"] < runs[target]["pushes_expected"]
        line = f"case ({name})"
        for target, r in runs.items():
            line += (f"  {target}: p50 {r['latency_p50_ms']} / p99 {r['latency_p99_ms']} ms,"
                     f" {r['pushes_per_s']:,.0f} pushes/s, {r['kib_per_socket']} KiB/socket,"
                     f" {r['server_cpu_us_per_push']} us server CPU/push")
        if "gateway" in runs and "baseline" in runs:
            g, b = runs["gateway"], runs["baseline"]
            line += (f"  ratio p99 gateway/baseline {g['latency_p99_ms'] / b['latency_p99_ms']:.2f},"
                     f" pushes/s gateway/baseline {g['pushes_per_s'] / b['pushes_per_s']:.2f}")
        if "gateway" in runs and "before" in runs:
            g, b = runs["gateway"], runs["before"]
            line += (f"  this tree / before: p99 {g['latency_p99_ms']} / {b['latency_p99_ms']} ms,"
                     f" KiB/socket {b['kib_per_socket']} -> {g['kib_per_socket']}")
        if "gateway" in runs:
            line += f"  target p99 < {TARGET_P99_MS} ms " + (
                "OK" if runs["gateway"]["latency_p99_ms"] < TARGET_P99_MS else "MISSED")
        summary.append(line)
    print(f"\nmachine: nproc={os.cpu_count()}  loadavg={Path('/proc/loadavg').read_text().strip()}")
    print("\n".join(summary))
    if failed:
        print("some pushes were not received (see pushes_expected / pushes_received)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

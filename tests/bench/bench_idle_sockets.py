"""Memory per idle socket, with the sockets spread over the worker processes (not collected by
pytest).

    PYTHONPATH=. python -m tests.bench.bench_idle_sockets [--sockets 2000] [--workers 2]

Starts ``converger serve --workers N``, opens ``--sockets`` WebSockets (each joined to one of
``sockets / 10`` conversations, so ten sockets per conversation) from one client process, waits
until ``/readyz`` counts them all, and reports the server's resident memory (the supervisor and
every worker, summed from /proc) before and after: the difference ÷ sockets is the gateway's
memory per idle socket. Also reports how the sockets spread over the processes and the idle CPU
of the whole process tree while they stay open. Figures: docs/performance.md.

``--tracemalloc`` also runs every server process under ``tracemalloc`` (a ``sitecustomize`` on
the server's ``PYTHONPATH`` dumps a snapshot on ``SIGUSR2``; nothing in the gateway changes)
and prints the Python memory per socket and the lines that allocated most of it, as a diff of
snapshots taken before and after the sockets opened.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.baseline import tree_cpu_seconds  # noqa: E402
from tests.integration.realtime.conftest import user_token  # noqa: E402
from tests.integration.realtime.phx import Phx  # noqa: E402
from tests.support.api import Api  # noqa: E402
from tests.support.server import Server  # noqa: E402


def tree_rss_kib(server: Server) -> int:
    total = 0
    for pid in server.pids():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


SITECUSTOMIZE = """
import os, pickle, signal, tracemalloc
def _dump(signum, frame):
    # The first signal starts tracing (at start-up it would slow the imports to a crawl);
    # the next ones dump what was allocated since and is still alive.
    path = os.path.join(os.environ["BENCH_TRACE_DIR"], f"{os.getpid()}-{_dump.n}.pickle")
    _dump.n += 1
    if not tracemalloc.is_tracing():
        tracemalloc.start(4)
        snap = None
    else:
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
    with open(path + ".tmp", "wb") as f:
        pickle.dump(snap, f)
    os.rename(path + ".tmp", path)
_dump.n = 0
signal.signal(signal.SIGUSR2, _dump)
"""


async def _snapshots(srv: Server, trace_dir: Path, n: int) -> dict[int, tracemalloc.Snapshot]:
    """Signal ``n`` to every worker process (the supervisor holds no sockets): 0 starts
    tracing, 1 takes the snapshot."""
    pids = [w["pid"] for w in srv.workers()] or [srv.proc.pid]  # type: ignore[union-attr]
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    out = {}
    deadline = time.monotonic() + 120
    for pid in pids:
        path = trace_dir / f"{pid}-{n}.pickle"
        while not path.exists():
            assert time.monotonic() < deadline, f"no snapshot from {pid}"
            await asyncio.sleep(0.2)
        out[pid] = pickle.loads(path.read_bytes())
    return out


def _report(after: dict[int, tracemalloc.Snapshot], sockets: int) -> None:
    total = 0
    lines: dict[str, int] = {}
    for snap in after.values():
        for stat in snap.statistics("lineno"):
            total += stat.size
            key = str(stat.traceback[0])
            lines[key] = lines.get(key, 0) + stat.size
    print(f"tracemalloc: {total / 1024 / sockets:.2f} KiB of Python objects per socket "
          f"(allocated while the sockets opened and still alive; all processes)")
    for key, size in sorted(lines.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {size / sockets:8.0f} B/socket  {key}")
    stacks: dict[tuple[str, ...], int] = {}
    for snap in after.values():
        for stat in snap.statistics("traceback"):
            frames = tuple(str(f) for f in stat.traceback)
            stacks[frames] = stacks.get(frames, 0) + stat.size
    print("where the largest come from (innermost last):")
    for frames, size in sorted(stacks.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {size / sockets:8.0f} B/socket  " + " <- ".join(
            f.replace(str(ROOT) + "/", "").split("site-packages/")[-1] for f in frames))


async def run(sockets: int, workers: int, trace: bool = False, tree: str | None = None) -> None:
    label = f"[{tree}] " if tree else "[this tree] "
    print(label, flush=True)
    with tempfile.TemporaryDirectory(prefix="converger-idle-") as tmp:
        env = {"CONVERGER_WORKERS": str(workers), "CONVERGER_LOG_LEVEL": "WARNING",
               "CONVERGER_WS_IDLE_TIMEOUT": "600"}
        trace_dir = Path(tmp) / "trace"
        if trace:
            trace_dir.mkdir()
            (trace_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
            env.update(BENCH_TRACE_DIR=str(trace_dir), PYTHONPATH=os.pathsep.join(
                [str(trace_dir), str(Path(tree).resolve() if tree else ROOT),
                 os.environ.get("PYTHONPATH", "")]))
        import tests.support.server as support

        here = support.ROOT
        if tree:
            support.ROOT = Path(tree).resolve()  # the server's cwd: that tree's gateway
        try:
            srv = Server(Path(tmp) / "data", env=env).start(90)
        finally:
            support.ROOT = here
        try:
            conn = aiohttp.TCPConnector(limit=0, force_close=True)
            async with aiohttp.ClientSession(connector=conn) as session:
                api = Api(session, srv.url)
                w = await api.setup("idle")
                convs = []
                for _ in range(max(1, sockets // 10)):
                    c = await api.conversation(w["channel_token"])
                    convs.append((c["id"], await user_token(api, w["channel_token"], c["id"])))
                await asyncio.sleep(3)
                if trace:
                    await _snapshots(srv, trace_dir, 0)
                before = tree_rss_kib(srv)
                opened = []
                for i in range(sockets):
                    cid, tok = convs[i % len(convs)]
                    s = await Phx.connect(session, srv.ws_url, "/socket/websocket", tok)
                    await s.join(f"conversation:{cid}")
                    opened.append(s)
                deadline = time.monotonic() + 60
                while True:
                    spread = {x["pid"]: x["sockets"] for x in srv.workers()}
                    if workers == 1 or sum(spread.values()) >= sockets or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(3)
                after = tree_rss_kib(srv)
                if trace:
                    _report(await _snapshots(srv, trace_dir, 1), sockets)
                assert srv.proc is not None
                c0, t0 = tree_cpu_seconds(srv.proc.pid), time.time()
                await asyncio.sleep(10)
                idle = (tree_cpu_seconds(srv.proc.pid) - c0) / (time.time() - t0)
                print(f"workers={workers} sockets={sockets} conversations={len(convs)} "
                      f"spread={sorted(spread.values())}")
                print(f"server RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: "
                      f"{(after - before) / sockets:.1f} KiB per idle socket; idle CPU with them "
                      f"open {100 * idle:.2f}% of one core")
                print(f"machine: nproc={os.cpu_count()}  loadavg={Path('/proc/loadavg').read_text().strip()}")
                for s in opened:
                    await s.close()
        finally:
            srv.stop(60)


def main() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the client holds every socket
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tracemalloc", action="store_true",
                   help="also diff tracemalloc snapshots of the server processes (slower)")
    p.add_argument("--before", metavar="TREE",
                   help="first the same run with the gateway of this source tree (e.g. `git "
                        "worktree add /tmp/before <commit>`): before/after in one run")
    args = p.parse_args()
    for tree in ([args.before] if args.before else []) + [None]:
        asyncio.run(run(args.sockets, args.workers, args.tracemalloc, tree))


if __name__ == "__main__":
    main()

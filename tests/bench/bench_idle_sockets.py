"""Memory per idle socket, with the sockets spread over the worker processes (not collected by
pytest).

    PYTHONPATH=. python -m tests.bench.bench_idle_sockets [--sockets 2000] [--workers 2]

Starts ``converger serve --workers N``, opens ``--sockets`` WebSockets (each joined to one of
``sockets / 10`` conversations, so ten sockets per conversation) from one client process, waits
until ``/readyz`` counts them all, and reports the server's resident memory (the supervisor and
every worker, summed from /proc) before and after: the difference ÷ sockets is the gateway's
memory per idle socket. Also reports how the sockets spread over the processes and the idle CPU
of the whole process tree while they stay open. Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
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


async def run(sockets: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="converger-idle-") as tmp:
        srv = Server(Path(tmp) / "data", env={"CONVERGER_WORKERS": str(workers),
                                              "CONVERGER_LOG_LEVEL": "WARNING",
                                              "CONVERGER_WS_IDLE_TIMEOUT": "600"}).start(90)
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
    args = p.parse_args()
    asyncio.run(run(args.sockets, args.workers))


if __name__ == "__main__":
    main()

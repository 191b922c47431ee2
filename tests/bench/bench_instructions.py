"""Instructions per activity create, counted by valgrind's callgrind (not part of the test suite).

    python -m tests.bench.bench_instructions [--requests 3000] [--before TREE]

CPU time per request moves by ±20% on this shared machine (docs/performance.md §1); the number
of instructions a request executes hardly moves with the neighbours' load, so a change of a few
percent shows. The real gateway (one worker, a websocket channel, as ``bench_activity``) runs
under ``valgrind --tool=callgrind --separate-threads=yes``, twice: answering ``BASE`` POSTs and
``BASE + N``; the difference, divided by N, is the instructions per request of each thread (the
event loop, the writer, the read pool), start-up and shutdown cancelled out. The bare Sanic echo
app (tests/bench/baseline.py) is counted the same way. ``--before TREE`` counts another source
tree's gateway as well (``git worktree add /tmp/before <commit>``). Every run is under valgrind
at once, in parallel: a few minutes for N = 3,000 on two cores.

What it does not count: the kernel (the socket writes and reads, ~20% of the echo app's CPU
time), and an instruction is not a fixed time (SQLite's C runs more of them per microsecond
than the interpreter). Work that runs on a timer (the analytics job's counting, the feed pruner)
is counted per request too, and weighs more than on a real run: the server is ~50 times slower
under valgrind, so more timer periods pass per request. The same for both trees, so before and
after compare; against the echo app it is an upper bound. Requires valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_activity import BODY, converger_setup  # noqa: E402
from tests.support.server import free_port  # noqa: E402

_TREE = threading.Lock()
BASE = 100  # requests of the shorter run (warms the caches the longer one also has)
CONNECTIONS = 50


def _valgrind(out: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}.%p"]


def _post(url: str, headers: dict[str, str], n: int) -> int:
    """``n`` POSTs of the benchmark body from CONNECTIONS connections; the non-2xx count."""
    import aiohttp

    async def run() -> int:
        body = json.dumps(BODY).encode()
        left, bad = [n], [0]
        hdrs = {"content-type": "application/json", **headers}
        async with aiohttp.ClientSession() as session:
            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    async with session.post(url, data=body, headers=hdrs) as r:
                        await r.read()
                        bad[0] += r.status >= 300
            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return bad[0]

    return asyncio.run(run())


def _threads(out: str) -> dict[str, int]:
    """Instructions per thread ("1" is the main thread) from callgrind's files (``out.PID-NN``,
    one per thread), which are then removed."""
    counts: dict[str, int] = {}
    for path in glob.glob(out + ".*"):
        match = re.search(r"\.\d+-(\d+)$", path)
        total = 0
        with open(path) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
        if match:
            thread = str(int(match.group(1)))
            counts[thread] = counts.get(thread, 0) + total
        os.unlink(path)
    return counts


def run_gateway(tree: Path, n: int, tmp: Path) -> dict[str, int]:
    """The gateway of ``tree`` under callgrind (tests/support/server.py's server, started from
    that tree as ``bench_activity --before`` does), answering ``n`` POSTs."""
    import tests.support.server as support

    out = str(tmp / f"gw_{tree.name}_{n}")
    with _TREE:  # Server runs `python -m gateway` in support.ROOT
        here, support.ROOT = support.ROOT, tree
        try:
            server = support.Server(tmp / f"data_{tree.name}_{n}", env={
                "CONVERGER_LOG_LEVEL": "WARNING", "CONVERGER_WORKERS": "1"})
            server.prefix = _valgrind(out)
            server.spawn()
        finally:
            support.ROOT = here
    try:
        server.wait_live(600)
        setup = converger_setup(server.url, "websocket")
        bad = _post(f"{server.url}/api/v1/conversations/{setup['conversation_id']}/activities",
                    {"x-api-key": setup["api_key"]}, n)
        if bad:
            raise RuntimeError(f"{bad} answers were not 2xx")
    finally:
        server.stop(600)
    return _threads(out)


def run_echo(n: int, tmp: Path) -> dict[str, int]:
    out = str(tmp / f"echo_{n}")
    port = free_port()
    proc = subprocess.Popen([*_valgrind(out), sys.executable, str(ROOT / "tests/bench/baseline.py"),
                             str(port), "echo"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _live(url, proc)
        if _post(url + "/echo", {}, n):
            raise RuntimeError("the echo app answered non-2xx")
    finally:
        proc.terminate()
        proc.wait(600)
    return _threads(out)


def _live(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited under valgrind")
        try:
            with urllib.request.urlopen(url + "/livez", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up under valgrind")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000, help="N: the runs differ by this many POSTs")
    p.add_argument("--before", metavar="TREE", help="also count this source tree's gateway")
    args = p.parse_args()
    n = args.requests
    trees = {"activity": ROOT} | ({"before": Path(args.before).resolve()} if args.before else {})
    with tempfile.TemporaryDirectory(prefix="converger-callgrind-") as tmpdir:
        tmp = Path(tmpdir)
        jobs: dict[tuple[str, int], Any] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=2 * (len(trees) + 1)) as pool:
            for count in (BASE, BASE + n):
                jobs[("echo", count)] = pool.submit(run_echo, count, tmp)
                for name, tree in trees.items():
                    jobs[(name, count)] = pool.submit(run_gateway, tree, count, tmp)
            results = {key: job.result() for key, job in jobs.items()}
    per: dict[str, dict[str, float]] = {}
    for name in ("echo", *trees):
        short, long = results[(name, BASE)], results[(name, BASE + n)]
        per[name] = {t: (long.get(t, 0) - short.get(t, 0)) / n for t in long}
    print(f"instructions per request (callgrind, {n} requests, {CONNECTIONS} connections; "
          f"load average {os.getloadavg()[0]:.1f}):")
    for name, threads in per.items():
        total = sum(threads.values())
        parts = ", ".join(f"thread {t}: {v / 1000:,.0f}k" for t, v in sorted(threads.items(),
                                                                             key=lambda kv: int(kv[0])))
        print(f"  {name:8} {total / 1000:8,.0f}k  ({parts})")
    echo = sum(per["echo"].values())
    for name in trees:
        print(f"echo / {name}: {echo / sum(per[name].values()):.2f}")
    if args.before:
        a, b = sum(per["activity"].values()), sum(per["before"].values())
        print(f"activity / before: {a / b:.3f} ({(a - b) / 1000:+,.0f}k per request)")
    print("thread 1 is the event loop; for the gateway, 2 the writer and 3+ the read pool")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

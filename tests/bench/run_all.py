"""Every benchmark, one after another, with short default durations (``make bench``).

    python -m tests.bench.run_all [--quick]

Each benchmark is its own module (run them alone for longer runs and their own options); this
runs them as subprocesses so each starts from a clean interpreter, prints their output as it comes
and a one-line status per benchmark at the end. Figures and how to read them: docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

BENCHES: dict[str, tuple[list[str], list[str]]] = {
    # name: (default arguments, --quick arguments)
    "bench_activity": (["--duration", "10", "--rounds", "3"], ["--duration", "3", "--rounds", "1"]),
    "bench_delivery": ([], ["--n", "1000", "--overhead-n", "4000"]),
    "bench_realtime": (["--seconds", "10"], ["--seconds", "3"]),
    "bench_replication": (["--seconds", "20"], ["--seconds", "5"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds each (a smoke run)")
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    args = parser.parse_args()
    results: list[tuple[str, int, float, str]] = []
    print(f"machine: nproc={os.cpu_count()}  loadavg at start: {_loadavg()}", flush=True)
    for name, (normal, quick) in BENCHES.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"tests.bench.{name}",
                                *(quick if args.quick else normal)])
        results.append((name, code, time.monotonic() - start, _loadavg()))
    print(f"\n== summary (nproc={os.cpu_count()}; load average 1/5/15 min when each finished)")
    for name, code, seconds, load in results:
        print(f"{name:20} {'ok' if code == 0 else f'FAILED ({code})':12} {seconds:6.1f}s  load {load}")
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())

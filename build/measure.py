"""Measure the binary against ``converger serve`` from a virtual environment.

    python build/measure.py [--binary dist/converger] [--venv .venv] [--runs 5]

For each: size on disk, start to the first successful ``GET /livez`` on an empty data directory
(median of N fresh processes; the figure includes creating the database and running migrations),
and idle RSS (sum over the process tree — the one-file bootloader plus the Python process —
a second after /livez answered). Prints a Markdown table. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    """RSS of ``pid`` and all its descendants, in KiB (Linux /proc)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo.extend(int(k) for k in kids)
    return total


def one_run(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Start ``cmd`` in an empty directory; return (seconds to /livez, idle RSS KiB)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="converger-measure-") as tmp:
        full_env = {**env, "CONVERGER_DATA_DIR": str(Path(tmp) / "data"), "PORT": str(port)}
        url = f"http://127.0.0.1:{port}/livez"
        t0 = time.perf_counter()
        proc = subprocess.Popen([*cmd, "--port", str(port)], cwd=tmp, env=full_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = t0 + 30
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"measure: {cmd[0]} exited with {proc.returncode}")
                try:
                    with urllib.request.urlopen(url, timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.perf_counter() > deadline:
                    raise SystemExit(f"measure: {cmd[0]} did not answer /livez in 30 s")
                time.sleep(0.01)
            elapsed = time.perf_counter() - t0
            time.sleep(1.0)  # let it settle: the figure is the idle footprint
            rss = rss_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return elapsed, rss


def measure(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    results = [one_run(cmd, env) for _ in range(runs)]
    return (statistics.median(r[0] for r in results),
            statistics.median(r[1] for r in results) / 1024)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "dist" / "converger"))
    ap.add_argument("--venv", default=str(ROOT / ".venv"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERGER_")}
    env.pop("PYTHONPATH", None)

    binary = Path(args.binary).resolve()
    b_start, b_rss = measure([str(binary), "serve"], args.runs, env)
    b_size = binary.stat().st_size

    venv = Path(args.venv)
    v_env = {**env, "PYTHONPATH": str(ROOT)}  # this checkout's code, as the binary has it
    v_start, v_rss = measure([str(venv / "bin" / "python"), "-m", "gateway", "serve"],
                             args.runs, v_env)
    v_size = dir_size(venv)

    print("| figure | `dist/converger` | `converger serve` (venv) |")
    print("|---|---|---|")
    print(f"| size on disk | {b_size / 2**20:.1f} MiB (one file) | "
          f"{v_size / 2**20:.0f} MiB (the whole venv) |")
    print(f"| start to first /livez (median of {args.runs}) | {b_start:.2f} s | {v_start:.2f} s |")
    print(f"| idle RSS | {b_rss:.1f} MiB | {v_rss:.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the suite's CPU goes, per test module (opt-in: ``CONVERGER_TEST_CPU_LOG=FILE``).

After each module's last test (its module-scoped servers stopped), one line is appended to FILE:
``module  self  children  postgres  wall  servers`` — seconds of CPU of the pytest process, of
the processes it started and waited for (servers, CLI runs, brokers; a session-scoped server or
browser counts where the session ends), of this worker's throwaway PostgreSQL cluster (its
postmaster and every backend: a daemon, so in no one's rusage), the module's wall time, and the
servers it started. ``python -m tests.support.cpulog FILE`` sums it up by module and directory.
docs/performance.md §9 has what it showed."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
starts = 0  # servers spawned (tests/support/server.py counts them)


def _proc_cpu(pid: int, with_children: bool) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def cluster_cpu(pid_file: Path) -> float:
    """CPU of a PostgreSQL cluster so far: its postmaster, what it reaped, its live children."""
    try:
        postmaster = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = _proc_cpu(postmaster, True)
    try:
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(_proc_cpu(int(c), False) for c in children)


class Recorder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.module: str | None = None
        self.mark = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float, float, int]:
        from tests.support import postgres

        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime, postgres.cpu(),
                time.monotonic(), starts)

    def flush(self) -> None:
        if self.module is None:
            return
        now = self._now()
        d = [b - a for a, b in zip(self.mark, now, strict=True)]
        with open(self.path, "a") as f:
            f.write(f"{self.module}\t{d[0]:.2f}\t{d[1]:.2f}\t{d[2]:.2f}\t{d[3]:.2f}\t{d[4]}\n")
        self.mark = now

    def item_done(self, module: str, next_module: str | None) -> None:
        self.module = module
        if next_module != module:
            self.flush()
            self.module = None


def summary(path: str, top: int = 40) -> None:
    rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
    mods: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    dirs: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    for name, *vals in rows:
        for key, table in ((name, mods), (str(Path(name).parent), dirs)):
            for i, v in enumerate(vals):
                table[key][i] += float(v)
    total = [sum(v[i] for v in mods.values()) for i in range(5)]
    print(f"total: self {total[0]:.0f} s, children {total[1]:.0f} s, postgres {total[2]:.0f} s "
          f"(CPU {sum(total[:3]):.0f} s), wall {total[3]:.0f} s, {total[4]:.0f} servers")
    for title, table in (("directories", dirs), ("modules", mods)):
        print(f"\n{title} by CPU (self + children + postgres; wall; servers):")
        for key, v in sorted(table.items(), key=lambda kv: -sum(kv[1][:3]))[:top]:
            print(f"{sum(v[:3]):8.1f}  {v[0]:7.1f} {v[1]:7.1f} {v[2]:7.1f}  {v[3]:7.1f}  "
                  f"{int(v[4]):4d}  {key}")


if __name__ == "__main__":
    summary(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40)

"""Where a bench run's latency tail comes from: reads the ``--trace`` directory of one run
(tests/bench/trace/sitecustomize.py's files and the bench's own push/post records) and prints

- per process: its CPU and how long it waited for a CPU (``/proc/self/schedstat``: a loaded
  machine shows here), its garbage collections (all of them; those of 1 ms or more during the
  load, with their wall and CPU time) and its event-loop lags; in a gateway worker the age of
  each activity when the hub published it (POST start → publish) and its feed reads;
- the slow pushes (over ``max(p99, slow_ms)``): how many were in flight while each process
  collected garbage (5 ms of CPU or more) or its event loop lagged (20 ms or more);
- the slowest 100 ms windows (by receive time) with what each process did in them.

    python -m tests.bench.trace.report DIR [DIR ...]
"""

from __future__ import annotations

import bisect
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _load(d: Path) -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(d.glob("*.jsonl")):
        files[f.stem] = [json.loads(line) for line in f.read_text().splitlines() if line]
    return files


def _pct(v: list[float], p: float) -> float:
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


class _Intervals:
    """Sorted, possibly overlapping [start, end) intervals; does any overlap [a, b)?"""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        self.spans = sorted(spans)
        self.starts = [s for s, _ in self.spans]
        self.longest = max((e - s for s, e in self.spans), default=0.0)

    def overlaps(self, a: float, b: float) -> bool:
        i = bisect.bisect_left(self.starts, b)  # spans starting before b
        j = bisect.bisect_left(self.starts, a - self.longest)
        return any(self.spans[k][1] > a for k in range(j, i))


def report(d: Path, slow_ms: float = 100.0, out: Any = sys.stdout) -> None:
    files = _load(d)
    pushes = {k.split("-")[1]: rs for k, rs in files.items() if k.startswith("pushes-")}
    allp = [r for rs in pushes.values() for r in rs]
    posts = [r for k, rs in files.items() if k.startswith("posts-") for r in rs]
    procs = {k: rs for k, rs in files.items()
             if not k.startswith(("pushes-", "posts-", "census-"))}
    if not allp:
        print(f"{d}: no pushes traced", file=out)
        return
    t0 = min(r["t"] - r["d"] for r in allp)
    t1 = max(r["t"] for r in allp)
    lat = [r["d"] * 1000 for r in allp]
    print(f"{d.name}: {len(allp)} pushes, p50 {_pct(lat, 50):.1f} p99 {_pct(lat, 99):.1f} "
          f"max {max(lat):.1f} ms", file=out)
    if posts:
        late = [r["late"] * 1000 for r in posts]
        print(f"  poster: POSTs started late by p50 {_pct(late, 50):.1f} p99 "
              f"{_pct(late, 99):.1f} max {max(late):.1f} ms", file=out)
    gcs_of: dict[str, _Intervals] = {}
    lags_of: dict[str, _Intervals] = {}
    for name, rs in procs.items():
        tot = [r for r in rs if r["k"] == "gctotal"]
        gcs = [r for r in rs if r["k"] == "gc" and t0 <= r["t"] <= t1]
        lags = [r for r in rs if r["k"] == "lag" and t0 <= r["t"] <= t1]
        pubs = [r["d"] * 1000 for r in rs if r["k"] == "pub" and r["t"] >= t0]
        feeds = [r for r in rs if r["k"] == "feed" and r["t"] >= t0]
        gcs_of[name] = _Intervals([(r["t"], r["t"] + r["d"]) for r in gcs
                                   if r.get("cpu", r["d"]) >= 0.005])
        lags_of[name] = _Intervals([(r["t"], r["t"] + r["d"]) for r in lags if r["d"] >= 0.02])
        line = f"  {name:18}"
        before = [r for r in tot if r["t"] < t0 and r.get("sched")]
        after = [r for r in tot if r["t"] >= t1 and r.get("sched")] or \
            [r for r in tot if r.get("sched")]
        if before and after:
            a, b = before[-1]["sched"], after[0]["sched"]
            span = after[0]["t"] - before[-1]["t"]
            line += f" cpu {(b[0] - a[0]) / 1e9 / span:.2f} of a core, waited for one " \
                    f"{(b[1] - a[1]) / 1e9 / span * 100:.0f}% ({span:.0f} s) |"
        if tot:
            last = tot[-1]
            line += " gc (whole run) " + ", ".join(
                f"gen{g} {last[f'g{g}']['n']}x {last[f'g{g}']['s'] * 1000:.0f} ms"
                for g in range(3))
        g2 = [f"{r['d'] * 1000:.0f}/{r.get('cpu', 0) * 1000:.0f}" for r in gcs if r["g"] == 2]
        big = [r for r in gcs if r.get("cpu", r["d"]) >= 0.005]
        line += f" | during load: gen2 {len(g2)}x (wall/cpu ms: {' '.join(g2) or '-'}), " \
                f"gc >= 5 ms cpu {len(big)}x (max cpu " \
                f"{max((r.get('cpu', 0) for r in big), default=0) * 1000:.0f} ms)"
        lg = [r["d"] * 1000 for r in lags]
        line += f" | loop lags >= 20 ms {sum(1 for x in lg if x >= 20)}x, max " \
                f"{max(lg, default=0):.0f} ms"
        if pubs:
            line += f" | publish age p50 {_pct(pubs, 50):.1f} p99 {_pct(pubs, 99):.1f} max " \
                    f"{max(pubs):.1f} ms"
        locks = [r for r in rs if r["k"] == "lock" and t0 <= r["t"] <= t1]
        if locks:
            lw = [r["wait"] * 1000 for r in locks]
            lh = [r["hold"] * 1000 for r in locks]
            line += f" | write lock {len(locks)}x: waited p99 {_pct(lw, 99):.1f} max " \
                    f"{max(lw):.1f}, held p99 {_pct(lh, 99):.1f} max {max(lh):.1f} ms"
        if feeds:
            fd = [r["d"] * 1000 for r in feeds]
            line += f" | feed reads {len(feeds)} ({sum(r['n'] for r in feeds) / len(feeds):.1f}" \
                    f" events each, p99 {_pct(fd, 99):.1f} max {max(fd):.1f} ms)"
        print(line, file=out)
    # The slow pushes: which process was collecting or lagging while each was in flight.
    cut = max(_pct(lat, 99), slow_ms) / 1000
    slow = [(pid, r) for pid, rs in pushes.items() for r in rs if r["d"] >= cut]
    if slow:
        parts = []
        for name in procs:
            pid = name.rsplit("-", 1)[-1]
            mine = [r for p, r in slow if p == pid] if name.startswith("receiver") else \
                [r for _, r in slow]
            if not mine:
                continue
            ng = sum(1 for r in mine if gcs_of[name].overlaps(r["t"] - r["d"], r["t"]))
            nl = sum(1 for r in mine if lags_of[name].overlaps(r["t"] - r["d"], r["t"]))
            if ng or nl:
                parts.append(f"{name.split('-')[0]} gc {100 * ng / len(mine):.0f}% "
                             f"lag {100 * nl / len(mine):.0f}%")
        print(f"  {len(slow)} pushes >= {cut * 1000:.0f} ms; in flight during a gc (>= 5 ms cpu) /"
              f" a loop lag (>= 20 ms) of: {'; '.join(parts) or 'none'}", file=out)
    for k, rs in files.items():  # SIGUSR2 after the run: the garbage the collector had left
        if k.startswith("census-"):
            for r in rs:
                if r["kind"] == "collect":
                    print(f"  {k}: after the run {r['unreachable']} unreachable objects "
                          f"({r['was_frozen']} frozen, {r['tracked']} left): "
                          f"{', '.join(f'{n} {c}' for n, c in r['types'][:8])}", file=out)
    # The slowest windows of 100 ms by receive time, with what each process did then.
    win: dict[int, list[float]] = defaultdict(list)
    for r in allp:
        win[int((r["t"] - t0) * 10)].append(r["d"] * 1000)
    events: dict[int, list[str]] = defaultdict(list)
    for name, rs in procs.items():
        short = name.split("-")[0]
        for r in rs:
            if r["t"] < t0 - 1:
                continue
            if r["k"] == "gc" and r.get("cpu", r["d"]) >= 0.005:
                events[int((r["t"] - t0) * 10)].append(
                    f"{short}:gen{r['g']} {r['d'] * 1000:.0f}/{r.get('cpu', 0) * 1000:.0f}")
            elif r["k"] == "lock" and r["hold"] + r["wait"] >= 0.02:
                events[int((r["t"] - t0) * 10)].append(
                    f"{short}:lock wait {r['wait'] * 1000:.0f} held {r['hold'] * 1000:.0f}")
            elif r["k"] == "lag" and r["d"] >= 0.02:
                events[int((r["t"] - t0) * 10)].append(f"{short}:lag {r['d'] * 1000:.0f}")
    worst = sorted(win, key=lambda w: max(win[w]), reverse=True)[:8]
    print("  slowest 100 ms windows (s after the first POST: pushes, max ms; gc wall/cpu ms, "
          "loop lags ms, in that window and the two before):", file=out)
    for w in sorted(worst):
        ev = [e for x in (w - 2, w - 1, w) for e in events.get(x, [])]
        print(f"   {w / 10:5.1f} s: {len(win[w]):4} pushes, max {max(win[w]):6.1f}   "
              f"{'  '.join(ev)}", file=out)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        report(Path(arg))

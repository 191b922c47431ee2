"""The rate-limit table shared by worker processes: the same GCRA decisions as the in-process
limiter, one state for every process that maps the file."""

from __future__ import annotations

import math
import multiprocessing
import time
from pathlib import Path

from gateway.ratelimit import DeliveryLimiter, Limiter
from gateway.sharedlimit import SharedTable


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_shared_limiter_decides_like_the_in_process_one(tmp_path: Path) -> None:
    clock = Clock()
    mem, shared = Limiter(clock), Limiter(clock, table=SharedTable(tmp_path / "rl", clock=clock))
    for step in range(300):
        clock.t += 0.13 if step % 7 else 0.0
        a, b = mem.hit("tenant:t1", 100, 60.0), shared.hit("tenant:t1", 100, 60.0)
        assert (a.allowed, a.remaining) == (b.allowed, b.remaining)


def test_two_tables_on_one_file_share_the_state(tmp_path: Path) -> None:
    clock = Clock()
    one = Limiter(clock, table=SharedTable(tmp_path / "rl", clock=clock))
    two = Limiter(clock, table=SharedTable(tmp_path / "rl", clock=clock))
    allowed = sum(1 for i in range(100) if (one if i % 2 else two).hit("k", 10, 60.0).allowed)
    assert allowed == 10
    assert not one.hit("k", 10, 60.0).allowed and two.hit("other", 10, 60.0).allowed


def test_a_full_probe_takes_the_slot_that_frees_first(tmp_path: Path) -> None:
    clock = Clock()
    lim = Limiter(clock, table=SharedTable(tmp_path / "rl", slots=4, clock=clock))
    for i in range(50):  # more keys than slots: every hit is still answered
        assert lim.hit(f"k{i}", 1, 60.0).allowed


def test_shared_delivery_pacing(tmp_path: Path) -> None:
    clock = Clock()
    table = SharedTable(tmp_path / "rl", clock=clock)
    a, b = DeliveryLimiter(5, clock, table=table), DeliveryLimiter(5, clock, table=table)
    delays = [(a if i % 2 else b).acquire("c1") for i in range(10)]
    mem = DeliveryLimiter(5, clock)
    assert delays == [mem.acquire("c1") for _ in range(10)]
    assert delays[-1] > 0.9  # two processes pace one channel at 5/s, not 10/s


def _hammer(path: str, n: int, out: multiprocessing.Queue[tuple[int, float, float]]) -> None:
    lim = Limiter(table=SharedTable(Path(path)))
    first = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    allowed = sum(1 for _ in range(n) if lim.hit("tenant:shared", 100, 60.0).allowed)
    out.put((allowed, first, time.monotonic()))


def test_processes_hitting_one_key_get_the_limit_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[tuple[int, float, float]] = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path / "rl"), 200, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    total = sum(allowed for allowed, _, _ in results)
    # The burst, plus what 100/60 s frees while they run (a loaded machine runs them longer);
    # three separate limiters would allow 300.
    span = max(last for _, _, last in results) - min(first for _, first, _ in results)
    assert 100 <= total <= 100 + math.ceil(span * 100 / 60) + 1, (total, span)


def test_shared_counts_sum_every_workers_region(tmp_path: Path) -> None:
    from gateway.sharedlimit import SharedCounts

    zero, one = SharedCounts(tmp_path / "s", 0, 2), SharedCounts(tmp_path / "s", 1, 2)
    zero.add("tok", 1)
    one.add("tok", 1)
    one.add("tok", 1)
    assert zero.total("tok") == one.total("tok") == 3
    assert zero.total("other") == 0
    one.add("tok", -1)
    zero.add("other", -1)  # never counted: nothing to take away
    assert zero.total("tok") == 2 and one.total("other") == 0
    # Slot 1 restarted: its predecessor's sockets died with it.
    assert SharedCounts(tmp_path / "s", 1, 2).total("tok") == 1


def test_shared_counts_reuse_slots_and_stay_lenient_when_full(tmp_path: Path) -> None:
    from gateway.sharedlimit import SharedCounts

    counts = SharedCounts(tmp_path / "s", 0, 1, slots=8)
    for i in range(8):
        counts.add(f"k{i}", 1)
    counts.add("k8", 1)  # no room: not counted, never refused
    assert [counts.total(f"k{i}") for i in range(9)] == [1] * 8 + [0]
    counts.add("k3", -1)
    counts.add("k8", 1)  # takes the freed slot
    counts.add("k3", 1)  # no room again
    assert counts.total("k8") == 1 and counts.total("k3") == 0
    for i in range(9):
        counts.add(f"k{i}", -1)
    assert all(counts.total(f"k{i}") == 0 for i in range(9))

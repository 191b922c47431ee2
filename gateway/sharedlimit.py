"""Rate-limit state shared by the worker processes of one gateway: a fixed table of
``(key hash, arrival time)`` slots in a memory-mapped file in the supervisor's run directory,
changed under an exclusive ``flock``.

Each limiter (GCRA, :mod:`gateway.ratelimit`) keeps one number per key, so one table serves
them all: a hit locks the file, reads the key's slot, lets the limiter decide, writes the new
value and unlocks — about two system calls and no database write. ``time.monotonic`` is the
machine's monotonic clock (the same in every process on Linux), so arrival times compare
across processes. Keys are hashed (BLAKE2b, 8 bytes) into ``SLOTS`` slots with linear probing;
a slot whose time has passed holds nothing worth keeping and is reused, and when a probe finds
no such slot the one that frees soonest is taken (its key then starts afresh: a limit can only
become more lenient under a flood of distinct keys, never refuse more).

:class:`SharedCounts` (the open sockets per token, ``CONVERGER_MAX_SOCKETS_PER_TOKEN``) is the
same idea for counters: one region per worker slot, each process counting only in its own and
reading the sum of all; a worker clears its region when it starts, so the sockets of a process
that died (and took its sockets with it) stop counting as soon as its replacement runs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
SLOT = struct.Struct("<Qd")
SLOTS = 1 << 16  # 1 MiB
PROBE = 16

Step = Callable[[float | None, float], tuple[T, float | None]]


@contextlib.contextmanager
def _exclusive(fd: int) -> Iterator[None]:
    """The file's exclusive ``flock`` for the block (the other processes wait in the kernel)."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class SharedTable:
    """``update(key, step)``: ``step(value or None, now) -> (result, new value or None)``,
    atomically across the processes that map the same file."""

    def __init__(self, path: Path, slots: int = SLOTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = slots
        self.clock = clock
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = slots * SLOT.size
        with _exclusive(self._fd):
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    def update(self, key: str, step: Step[Any]) -> Any:
        h = _hash(key)
        first = h % self.slots
        with _exclusive(self._fd):
            now = self.clock()
            spot, value = -1, None
            soonest, soonest_at = first, float("inf")
            for i in range(PROBE):
                idx = (first + i) % self.slots
                k, v = SLOT.unpack_from(self._map, idx * SLOT.size)
                if k == h:
                    spot, value = idx, v
                    break
                if spot < 0 and (k == 0 or v <= now):
                    spot = idx  # free (or expired): ours unless the key sits further on
                if v < soonest_at:
                    soonest, soonest_at = idx, v
            if spot < 0:
                spot = soonest
            result, new = step(value if value is not None and value > now else None, now)
            if new is not None:
                SLOT.pack_into(self._map, spot * SLOT.size, h, new)
            return result


COUNT = struct.Struct("<Qq")
COUNT_SLOTS = 1 << 15  # per worker: 512 KiB
COUNT_PROBE = 32


class SharedCounts:
    """``total(key)`` over every worker's region, ``add(key, delta)`` in this worker's own
    (``slot`` of ``size``), under the file's ``flock``. A key's counter lives in the first slot
    of its probe window that holds its hash; a counter back at 0 keeps its hash (probing goes
    on past it) and its slot may be taken by another key. When a window is full the key is not
    counted (more lenient, never stricter)."""

    def __init__(self, path: Path, slot: int, size: int, slots: int = COUNT_SLOTS) -> None:
        self.slot, self.size, self.slots = slot, size, slots
        self._region = slots * COUNT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        total = size * self._region
        with _exclusive(self._fd):
            if os.fstat(self._fd).st_size < total:
                os.ftruncate(self._fd, total)
            self._map = mmap.mmap(self._fd, total)
            start = slot * self._region  # a new process of this slot: its predecessor's are gone
            self._map[start:start + self._region] = bytes(self._region)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    def _window(self, region: int, h: int) -> list[tuple[int, int, int]]:
        """``(offset, hash, count)`` of the key's probe window in ``region``, up to the first
        never-used slot."""
        base, first, out = region * self._region, h % self.slots, []
        for i in range(min(COUNT_PROBE, self.slots)):
            off = base + ((first + i) % self.slots) * COUNT.size
            k, c = COUNT.unpack_from(self._map, off)
            if k == 0:
                out.append((off, 0, 0))
                break
            out.append((off, k, c))
        return out

    def total(self, key: str) -> int:
        h = _hash(key)
        with _exclusive(self._fd):
            return self._total(h)

    def reserve(self, key: str, cap: int) -> bool:
        """Count one more for ``key`` here unless every region together already holds ``cap``."""
        h = _hash(key)
        with _exclusive(self._fd):
            if self._total(h) >= cap:
                return False
            self._add(h, 1)
            return True

    def add(self, key: str, delta: int) -> None:
        h = _hash(key)
        with _exclusive(self._fd):
            self._add(h, delta)

    def _total(self, h: int) -> int:
        return sum(c for r in range(self.size)
                   for _, k, c in self._window(r, h) if k == h and c > 0)

    def _add(self, h: int, delta: int) -> None:
        window = self._window(self.slot, h)
        spot = next((w for w in window if w[1] == h), None)
        if spot is None:
            if delta <= 0:
                return  # never counted (its window was full)
            spot = next((w for w in window if w[1] == 0 or w[2] <= 0), None)
            if spot is None:
                return  # window full: not counted
        off, k, count = spot
        COUNT.pack_into(self._map, off, h, max(0, (count if k == h else 0) + delta))


class LocalCounts:
    """Open sockets per token in a one-process gateway (:class:`SharedCounts` with workers)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def total(self, key: str) -> int:
        return self.counts.get(key, 0)

    def reserve(self, key: str, cap: int) -> bool:
        if self.counts.get(key, 0) >= cap:
            return False
        self.counts[key] = self.counts.get(key, 0) + 1
        return True

    def add(self, key: str, delta: int) -> None:
        if (left := self.counts.get(key, 0) + delta) > 0:
            self.counts[key] = left
        else:
            self.counts.pop(key, None)

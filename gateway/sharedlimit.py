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
become more lenient under a flood of distinct keys, never refuse more)."""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
SLOT = struct.Struct("<Qd")
SLOTS = 1 << 16  # 1 MiB
PROBE = 16

Step = Callable[[float | None, float], tuple[T, float | None]]


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
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, size)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    def update(self, key: str, step: Step[Any]) -> Any:
        h = _hash(key)
        first = h % self.slots
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
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
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

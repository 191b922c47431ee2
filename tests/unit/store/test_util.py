"""Ids and timestamps: the formats the compatible API promises."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

from store.util import iso, new_id, random_bytes

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_new_id_is_a_canonical_time_ordered_uuid() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for i in ids[:200]:
        u = uuid.UUID(i)
        assert UUID_RE.fullmatch(i) and str(u) == i
        assert u.version == 7 and u.variant == uuid.RFC_4122
    # The leading 48 bits are Unix milliseconds: ids sort by creation time across milliseconds.
    ms = [int(i.replace("-", "")[:12], 16) for i in ids]
    assert ms == sorted(ms)
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert abs(ms[-1] - now_ms) < 60_000


def test_random_bytes_are_fresh_per_call_and_after_fork() -> None:
    chunks = [random_bytes(16) for _ in range(1000)]  # crosses several 4 KiB refills
    assert len(set(chunks)) == 1000 and all(len(c) == 16 for c in chunks)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not replay the parent's buffer
        os.write(w, random_bytes(16))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 16)
    os.close(r)
    os.close(w)
    assert child != random_bytes(16)


def test_iso_format() -> None:
    dt = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert iso(dt) == "2026-01-02T01:04:05.000006Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"

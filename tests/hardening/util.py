"""Small helpers for the hardening tests and the soak script."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.api import Api


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def deliveries(api: Api, **filters: str) -> list[dict[str, Any]]:
    """Delivery rows from the management API (up to 500)."""
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return (await api.ok("GET", f"/api/admin/deliveries?limit=500&{query}", headers=api.admin))["data"]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    """Open file descriptors of a process, from /proc."""
    return len(os.listdir(f"/proc/{pid}/fd"))

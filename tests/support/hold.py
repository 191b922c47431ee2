"""Requests held in flight by a test's receiver, whatever the machine's speed.

A crash test must kill a process while it has deliveries in flight. A receiver that merely
answers slowly makes that a race the machine's speed decides (on a fast machine the sends may
all be done before the kill). :class:`Hold` makes it a fact the test waits for: the receiver
answers the first ``after`` requests and leaves every later one unanswered until
:meth:`Hold.release`; ``held`` counts those waiting now, so the test polls ``held > 0`` and
then kills."""

from __future__ import annotations

import asyncio


class Hold:
    def __init__(self, after: int | None = None) -> None:
        self.after = after  # None: hold nothing
        self.held = 0  # requests waiting on the hold now
        self._released = asyncio.Event()

    async def gate(self, seen: int) -> None:
        """Called by the receiver's handler with how many requests it has seen (this one
        included): returns at once up to ``after``, else when released."""
        if self.after is None or seen <= self.after or self._released.is_set():
            return
        self.held += 1
        try:
            await self._released.wait()
        finally:
            self.held -= 1

    def release(self) -> None:
        """Answer the held requests and every later one."""
        self._released.set()

"""Long-lived objects and CPython's cyclic garbage collector (issue 14: 10,000 sockets, p99).

A full (generation 2) collection walks every tracked object of the process, and the event loop
stands still meanwhile. A worker holding 5,000 sockets tracks ~200,000 objects (~90,000 of them
the app itself: modules, functions, types; ~20 per socket): measured with
``tests/bench/bench_realtime.py --trace``, a full collection then took 160–210 ms of CPU, and
Python ran one about every ten seconds under 1,000 posts/s — during which ~1,000 pushes waited.

So, with ``CONVERGER_GC_FULL_EVERY`` (seconds, default 600; 0 leaves Python's schedule alone):

- after start-up: one collection, then ``gc.freeze()`` — everything alive moves to the
  collector's permanent generation, which its collections skip;
- every ``SETTLE_EVERY`` seconds, when ``SETTLE_AFTER`` sockets or more opened since the last
  freeze: the young generations are collected (a few ms) and the survivors frozen — the
  sockets' objects among them. Python's own collections then only walk what is younger: a
  few milliseconds;
- every ``CONVERGER_GC_FULL_EVERY`` seconds: ``gc.unfreeze()``, one full collection, freeze
  again. That is the one long pause left, at a known rate — or sooner, once as many sockets
  have closed since the last one as are open (and ``FULL_AFTER_CLOSED`` at least), which bounds
  what closed sockets leave frozen (below) by the size of the live ones.

Frozen objects are still freed by reference counting when they die; only *cyclic* garbage
among them waits for the next full collection: memory. Our part of a socket forms no cycle once
it is closed (``gateway/wire.py`` ends the protocol's parser, ``gateway/realtime/connection.py``
lets go of its tenant watch), so it is freed at once; Sanic's part of a closed connection (its
protocol, ``Http`` and request objects hold bound methods of themselves: ~13 objects) waits,
as do HTTP requests that were in flight at a freeze. docs/architecture.md ("Real-time sockets")
describes the trade-off, docs/performance.md §6 the measurements.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from contextvars import Context

log = logging.getLogger("converger.heap")

SETTLE_EVERY = 5.0  # seconds between looks for new long-lived objects (sockets)
SETTLE_AFTER = 100  # sockets opened since the last freeze before the next one
FULL_AFTER_CLOSED = 1000  # closed sockets (at least as many as are open) for an early full one


class Heap:
    """This process's collector schedule (one per event loop; ``ctx.heap``)."""

    def __init__(self, full_every: float) -> None:
        self.full_every = full_every
        self.opened = 0  # sockets opened since the last freeze
        self.open = 0  # sockets open now
        self.closed = 0  # sockets closed since the last full collection
        self.freezes = 0
        self.full_collections = 0
        self._last_full = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def enabled(self) -> bool:
        return self.full_every > 0

    def start(self) -> None:
        """After start-up: collect once and freeze what the app holds."""
        if not self.enabled:
            return
        self._loop = asyncio.get_running_loop()
        self._full()
        self._handle = self._loop.call_later(SETTLE_EVERY, self._tick, context=Context())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.enabled:
            gc.unfreeze()  # (shutdown: let the collector see everything again)

    def socket_opened(self) -> None:
        self.opened += 1
        self.open += 1

    def socket_closed(self) -> None:
        self.open -= 1
        self.closed += 1

    def _full(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.full_collections += 1
        self._last_full = time.monotonic()
        self.opened = self.closed = 0
        log.debug("full collection in %.1f ms; %d objects frozen",
                  (time.perf_counter() - started) * 1000, gc.get_freeze_count())

    def _tick(self) -> None:
        assert self._loop is not None
        try:
            if (time.monotonic() - self._last_full >= self.full_every
                    or self.closed >= max(FULL_AFTER_CLOSED, self.open)):
                self._full()
            elif self.opened >= SETTLE_AFTER:
                self.opened = 0
                gc.collect(1)  # the young generations: what dies young is not frozen
                gc.freeze()
                self.freezes += 1
        finally:
            self._handle = self._loop.call_later(SETTLE_EVERY, self._tick, context=Context())

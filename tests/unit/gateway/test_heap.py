"""The collector's schedule for long-lived objects (gateway/heap.py), and a closed socket's
objects freed by reference counting alone — what lets sockets be frozen out of the collector's
walks without their memory waiting for the next full collection (docs/architecture.md)."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.server import ServerProtocol

from gateway import heap as heap_mod
from gateway.heap import Heap
from gateway.hub import Hub
from gateway.realtime.connection import Connection, Router
from gateway.wire import WireSocket, handshake


def _alive(cls: type) -> int:
    """Objects of ``cls`` the collector tracks (freed or not by reference counting)."""
    return sum(1 for o in gc.get_objects() if type(o) is cls)


@contextmanager
def _no_cyclic_collector() -> Iterator[None]:
    """Only reference counting frees objects meanwhile."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Transport:
    """A stand-in for the connection's transport: what the socket writes, and its state."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


_UPGRADE = {"Host": "localhost", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}


class _Handler:
    def on_message(self, data: str | bytes) -> None:
        pass

    def on_writable(self) -> None:
        pass

    def on_closed(self) -> None:
        pass


async def test_a_closed_websocket_is_freed_by_reference_counting() -> None:
    # The library's parser is a generator holding its protocol: unless the socket ends it when
    # the connection is lost, the two form a cycle only the collector can free.
    gc.collect()
    before = _alive(WireSocket), _alive(ServerProtocol)
    proto, _ = handshake("/socket/websocket", _UPGRADE, None)
    wire = WireSocket(asyncio.get_running_loop(), _Transport(), proto)  # type: ignore[arg-type]
    wire.adopt(_Handler())
    await asyncio.sleep(0)  # (adopt starts reading on the loop's next turn)
    with _no_cyclic_collector():
        wire.close(1000, "bye")
        wire.connection_lost()
        ref = weakref.ref(proto)
        del wire, proto
        assert ref() is None
        assert (_alive(WireSocket), _alive(ServerProtocol)) == before


def _app() -> Any:
    settings = SimpleNamespace(ws_idle_timeout=60, ws_send_queue=10)
    return SimpleNamespace(ctx=SimpleNamespace(settings=settings, hub=Hub(), heap=Heap(0.0)))


async def test_a_closed_connection_is_freed_by_reference_counting() -> None:
    # The connection's tenant watch points back at it: the watch lets go when the socket is
    # gone, so the two are freed without the collector.
    gc.collect()
    before = _alive(Connection)
    app = _app()
    conn = Connection(app, Router(), {"tenant_id": "t1"}, "2.0.0")
    conn.watch_tenant()
    assert app.ctx.hub.subscribers("tenant:t1") == 1
    with _no_cyclic_collector():
        conn.on_closed()
        assert app.ctx.hub.subscribers("tenant:t1") == 0
        del conn
        assert _alive(Connection) == before


@pytest.fixture
def heap() -> Iterator[Heap]:
    h = Heap(600.0)
    try:
        yield h
    finally:
        h.stop()  # unfreezes: the rest of the test run sees its objects again
        gc.unfreeze()


async def test_start_up_is_frozen_and_sockets_are_frozen_once_enough_opened(heap: Heap) -> None:
    gc.unfreeze()
    heap.start()
    assert heap.full_collections == 1
    frozen = gc.get_freeze_count()
    assert frozen > 0
    for _ in range(heap_mod.SETTLE_AFTER - 1):
        heap.socket_opened()
    heap._tick()
    assert heap.freezes == 0  # too few new sockets: not worth a freeze yet
    heap.socket_opened()
    alive = [[i] for i in range(1000)]  # tracked objects that live on
    heap._tick()
    assert heap.freezes == 1 and heap.opened == 0
    assert gc.get_freeze_count() >= frozen + len(alive)


async def test_a_full_collection_comes_once_its_period_has_passed(heap: Heap) -> None:
    heap.start()
    probe = _Cycle()
    probe.me = probe
    gone = weakref.ref(probe)
    gc.freeze()  # frozen, as a socket's objects are once settled
    del probe  # now cyclic garbage among the frozen
    gc.collect()
    assert gone() is not None  # the collector does not walk the frozen
    heap._tick()  # the period has not passed
    assert heap.full_collections == 1 and gone() is not None
    heap._last_full = time.monotonic() - heap.full_every
    heap._tick()
    assert heap.full_collections == 2 and gone() is None


async def test_a_full_collection_comes_early_once_as_many_sockets_closed_as_are_open(
        heap: Heap) -> None:
    # Closed sockets leave Sanic's part of them to the full collection: it comes early once
    # the sockets closed since the last one outnumber those open.
    heap.start()
    for _ in range(heap_mod.FULL_AFTER_CLOSED + 10):
        heap.socket_opened()
    for _ in range(heap_mod.FULL_AFTER_CLOSED):
        heap.socket_closed()
    heap._tick()
    assert heap.full_collections == 2 and heap.closed == 0 and heap.open == 10
    heap._tick()
    assert heap.full_collections == 2


class _Cycle:
    me: Any = None


async def test_the_schedule_is_off_with_zero() -> None:
    gc.unfreeze()
    heap = Heap(0.0)
    heap.start()
    for _ in range(heap_mod.SETTLE_AFTER * 2):
        heap.socket_opened()
    assert gc.get_freeze_count() == 0 and heap.full_collections == 0
    heap.stop()

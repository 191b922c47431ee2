"""Wake-ups between worker processes: one byte per kind to each sibling, coalesced; a corrupt
datagram is logged and wakes everything; a missing sibling is no error."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from gateway.cluster import Cluster, Notifier, notify_path, pid_alive


async def _until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def test_a_tell_wakes_the_siblings_once_per_turn(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    a, b, c = (Notifier(tmp_path, i, 4) for i in range(3))  # slot 3 never started
    got: list[tuple[str, str]] = []
    for name, n in (("a", a), ("b", b), ("c", c)):
        n.start(loop)
        for kind in (b"F", b"Q"):
            n.on(kind, lambda name=name, kind=kind: got.append((name, kind.decode())))
    try:
        for _ in range(50):
            a.tell(b"F")
        a.tell(b"Q")
        await _until(lambda: len(got) >= 4)
        await asyncio.sleep(0.05)
        assert sorted(got) == [("b", "F"), ("b", "Q"), ("c", "F"), ("c", "Q")]
        assert a.sent == 2  # one datagram per sibling for the whole turn; none to itself
    finally:
        for n in (a, b, c):
            n.close()


async def test_tells_closer_than_the_gap_share_one_datagram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a process commits hundreds of times a second: after a datagram, the tells of
    the next TELL_GAP seconds (over many loop turns) go out together, once."""
    import gateway.cluster as cluster

    monkeypatch.setattr(cluster, "TELL_GAP", 0.3)
    loop = asyncio.get_running_loop()
    a, b = (Notifier(tmp_path, i, 2) for i in range(2))
    got: list[str] = []
    for n in (a, b):
        n.start(loop)
    for kind in (b"F", b"Q"):
        b.on(kind, lambda kind=kind: got.append(kind.decode()))
    try:
        a.tell(b"F")  # the first after a quiet spell goes at the loop's next turn
        await _until(lambda: got == ["F"])
        for i in range(20):  # twenty loop turns, well within the gap
            a.tell(b"F" if i % 2 else b"Q")
            await asyncio.sleep(0)
        assert a.sent == 1
        await _until(lambda: len(got) == 3)
        assert sorted(got[1:]) == ["F", "Q"] and a.sent == 2
    finally:
        for n in (a, b):
            n.close()


async def test_a_corrupt_datagram_is_logged_and_wakes_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = Notifier(tmp_path, 0, 2)
    n.start(asyncio.get_running_loop())
    woken: set[str] = set()
    for kind in (b"F", b"Q", b"A", b"L"):
        n.on(kind, lambda kind=kind: woken.add(kind.decode()))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, caplog.at_level(logging.WARNING):
            s.sendto(b"\x00garbage", str(notify_path(tmp_path, 0)))
            await _until(lambda: len(woken) == 4)
        assert n.corrupt == 1
        assert "corrupt wake-up datagram" in caplog.text
    finally:
        n.close()


def test_an_owner_is_dead_only_when_its_pid_is_gone_on_this_host(tmp_path: Path) -> None:
    c = Cluster(0, 2, tmp_path)
    assert not c.owner_dead(c.owner)
    assert c.owner_dead(f"{c.host}:999999999:1")
    assert not c.owner_dead("another-host:999999999:1")  # elsewhere: only its lease's expiry
    assert pid_alive(c.pid) and not pid_alive(999999999)

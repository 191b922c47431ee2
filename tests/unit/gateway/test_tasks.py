"""Stopping tasks for sure (gateway/tasks.py): a task whose first cancellation is swallowed —
as library code on a connection's path can do — is cancelled again until it ends, and named."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from gateway.tasks import cancel_and_wait


async def _stubborn(swallowed: list[bool]) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        swallowed.append(True)  # swallowed: the task carries on ...
    await asyncio.Event().wait()  # ... to wait for work that never comes


async def test_a_swallowed_cancel_is_repeated(caplog: pytest.LogCaptureFixture) -> None:
    swallowed: list[bool] = []
    stubborn = asyncio.create_task(_stubborn(swallowed), name="stubborn")
    plain = asyncio.create_task(asyncio.sleep(3600), name="plain")
    await asyncio.sleep(0)

    # What a single cancel does: the stubborn task is still running afterwards.
    stubborn.cancel()
    done, pending = await asyncio.wait({stubborn}, timeout=0.2)
    assert swallowed == [True] and pending == {stubborn}

    log = logging.getLogger("test.tasks")
    with caplog.at_level(logging.WARNING, "test.tasks"):
        await asyncio.wait_for(cancel_and_wait([stubborn, plain], log, "stopping"), 5)
    assert stubborn.cancelled() and plain.cancelled()
    assert caplog.records == []  # the second round's cancel landed at once: nothing to report


async def test_tasks_that_keep_swallowing_are_named(caplog: pytest.LogCaptureFixture) -> None:
    deafness = [True]

    async def deaf() -> None:
        while deafness[0]:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(deaf(), name="deaf-worker")
    await asyncio.sleep(0)
    log = logging.getLogger("test.tasks")
    with caplog.at_level(logging.WARNING, "test.tasks"):
        await cancel_and_wait([task], log, "stopping", rounds=3)
    assert not task.done()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("stopping: 1 task(s) still running after a cancel") and "deaf-worker" in messages[0]
    assert messages[-1] == "stopping: 1 task(s) would not stop: deaf-worker"
    deafness[0] = False
    task.cancel()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)


async def test_wait_event_keeps_a_cancellation_that_races_the_event() -> None:
    """The event is set and the waiter cancelled in the same loop iteration: the waiter must end
    cancelled. (``asyncio.wait_for`` on Python 3.11 returns instead — the hang this prevents.)"""
    from gateway.tasks import wait_event

    async def waiter(use_wait_for: bool, event: asyncio.Event) -> str:
        if use_wait_for:
            await asyncio.wait_for(event.wait(), 10)
        else:
            await wait_event(event, 10)
        return "carried on"

    results = {}
    for use_wait_for in (True, False):
        event = asyncio.Event()
        task = asyncio.create_task(waiter(use_wait_for, event))
        await asyncio.sleep(0)  # the task is waiting now
        event.set()
        task.cancel()
        results[use_wait_for] = (await asyncio.gather(task, return_exceptions=True))[0]
    assert isinstance(results[False], asyncio.CancelledError)
    if sys.version_info < (3, 12):  # the interpreter bug itself, as it shows on 3.11
        assert results[True] == "carried on"


async def test_wait_event_times_out_and_reports_a_set_event() -> None:
    from gateway.tasks import wait_event

    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 10) is True

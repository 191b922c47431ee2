"""Waiting and stopping in background loops, safe against swallowed cancellations.

On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` *swallows* a cancellation that arrives
just as the event is set (it returns the result instead of raising; fixed in 3.12). A worker
loop cancelled at that moment carries on to its next ``await`` — for the delivery dispatcher,
waiting for workers that are already gone — and a shutdown awaiting it waits forever. Seen
here: a stop that hung until SIGKILL in a CI run, and the dispatcher named by
:func:`cancel_and_wait` in a later run. So loops wait with :func:`wait_event` (built on
``asyncio.timeout``, which does not lose a cancellation), and stops use
:func:`cancel_and_wait`, which cancels again until every task has finished and says which
ones needed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

ROUND = 0.5  # seconds between two rounds of cancellation


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set (True) or ``timeout`` seconds pass (False)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], log: Any, what: str,
                          rounds: int = 20) -> None:
    """Cancel ``tasks`` and wait until all are done, cancelling again every ``ROUND`` seconds
    (at most ``rounds`` times; the ones still running after that are left and named in the log)."""
    pending = {t for t in tasks if not t.done()}
    for n in range(rounds):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=ROUND)
        if pending and n == 0:
            log.warning("%s: %d task(s) still running after a cancel, cancelling again: %s",
                        what, len(pending), ", ".join(sorted(t.get_name() for t in pending)))
    if pending:
        log.error("%s: %d task(s) would not stop: %s", what, len(pending),
                  ", ".join(sorted(t.get_name() for t in pending)))

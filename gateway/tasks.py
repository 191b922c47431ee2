"""Stopping background tasks for sure.

``task.cancel()`` asks once; library code on a task's path can swallow the ``CancelledError``
(a connection attempt being torn down just then, for instance) and the task then carries on to
its next ``await`` — for a worker, waiting for work that will never come — and a shutdown that
awaits it waits forever. :func:`cancel_and_wait` asks again until every task has finished, and
says which ones needed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

ROUND = 0.5  # seconds between two rounds of cancellation


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

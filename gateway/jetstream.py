"""Connecting to NATS JetStream (nats-py), shared by the event stream (gateway/events.py) and the
broker pipeline (gateway/workers/broker.py): one connection attempt, the stream created when
missing, a connection error that names the cause."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any


async def connect(url: str, *, name: str, stream: str, subjects: list[str], timeout: float,
                  log: logging.Logger, work_queue: bool = False,
                  on_lost: Callable[[], Awaitable[None]] | None = None) -> tuple[Any, Any]:
    """A nats-py client connected to ``url`` and its JetStream context, with the stream
    ``stream`` (file storage; a work queue if ``work_queue``) created when missing — an existing
    one is used as it is configured. ``ConnectionError`` when no server answers. nats-py's own
    error callbacks go to ``log`` at debug level (the callers log what matters themselves);
    ``on_lost`` is called when the connection drops or closes."""
    from nats.aio.client import Client
    from nats.errors import NoServersError
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    seen: list[Exception] = []

    async def _quiet(exc: Exception) -> None:
        seen.append(exc)
        log.debug("%s: nats: %s", name, exc)

    callbacks: dict[str, Any] = {}
    if on_lost is not None:
        callbacks = {"disconnected_cb": on_lost, "closed_cb": on_lost}
    nc = Client()
    try:
        # One attempt: nats-py retries a refused first connection max_reconnect_attempts times
        # (~10 s); the callers have their own backoff.
        await nc.connect(servers=[url], connect_timeout=max(1, int(timeout)),
                         allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
                         error_cb=_quiet, name=f"converger-{name}", **callbacks)
    except NoServersError:
        raise ConnectionError(f"cannot connect: {seen[-1] if seen else 'no server'}") from None
    try:
        js = nc.jetstream(timeout=timeout)
        try:
            await js.stream_info(stream)
        except NotFoundError:
            config = StreamConfig(name=stream, subjects=subjects, storage=StorageType.FILE)
            if work_queue:
                config.retention = RetentionPolicy.WORK_QUEUE
            await js.add_stream(config)
    except BaseException:
        await nc.close()
        raise
    return nc, js

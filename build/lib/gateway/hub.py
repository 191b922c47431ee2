"""In-process pub/sub: one fan-out from a committed event to every subscriber of its
conversation, in commit order. Subscribers are bounded queues; a subscriber whose queue is full
is dropped (its socket closes), so a slow reader never delays the others."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any


class Subscriber:
    """One receiver of a topic. ``deliver`` must not block; returns False when it is full."""

    def __init__(self, deliver: Callable[[str, Any], bool], on_drop: Callable[[], None] | None = None):
        self.deliver = deliver
        self.on_drop = on_drop


class Hub:
    def __init__(self) -> None:
        self._topics: dict[str, set[Subscriber]] = defaultdict(set)
        self.published = 0
        self.dropped = 0

    def subscribe(self, topic: str, sub: Subscriber) -> None:
        self._topics[topic].add(sub)

    def unsubscribe(self, topic: str, sub: Subscriber) -> None:
        subs = self._topics.get(topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._topics[topic]

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def publish(self, topic: str, event: str, payload: Any) -> None:
        """Deliver to every subscriber now, in a plain loop (no gather: measured faster)."""
        self.published += 1
        subs = self._topics.get(topic)
        if not subs:
            return
        for sub in list(subs):
            if not sub.deliver(event, payload):
                self.dropped += 1
                self.unsubscribe(topic, sub)
                if sub.on_drop is not None:
                    sub.on_drop()

"""In-process pub/sub: one fan-out from a committed event to every subscriber of its
conversation, in commit order. Subscribers are bounded queues; a subscriber whose queue is full
is dropped (its socket closes), so a slow reader never delays the others.

Topics are ``conversation:<id>``; events ``new_activity`` (payload: the committed
:class:`store.models.Activity`) and ``delivery_status`` (payload: a dict, published by the
delivery side with ``hub.publish("conversation:<id>", "delivery_status", payload)``). A change
of a channel's health is ``health_changed`` (payload: a dict) on two topics: ``HEALTH``, every
channel's (the admin dashboard), and ``tenant_health(tenant_id)``, one tenant's (its portal
dashboard and the sockets of that tenant that joined it).

A subscriber may name an ``encoder`` ``(topic, event, payload) -> frame``: the hub calls each
encoder once per publish and hands the same frame to every subscriber that shares it, so 500
sockets on one conversation cost one JSON encoding per serializer, not 500.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("converger.hub")

Encoder = Callable[[str, str, Any], Any]
HEALTH = "channel_health"


def tenant_health(tenant_id: str) -> str:
    """The topic of one tenant's channel health changes."""
    return f"{HEALTH}:{tenant_id}"
_MISSING = object()


class Subscriber:
    """One receiver of a topic. ``offer`` must not block; it returns False when the
    subscriber cannot keep up, and the hub then drops it and calls ``dropped``."""

    encoder: Encoder | None = None

    def __init__(
        self,
        deliver: Callable[[str, Any], bool] | None = None,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.deliver = deliver
        self.on_drop = on_drop

    def offer(self, event: str, payload: Any, frame: Any) -> bool:
        """Take one event (``frame`` is the encoder's output, or None without an encoder)."""
        return self.deliver(event, payload) if self.deliver is not None else True

    def dropped(self) -> None:
        if self.on_drop is not None:
            self.on_drop()


class Hub:
    def __init__(self) -> None:
        self._topics: dict[str, dict[Subscriber, None]] = defaultdict(dict)
        self.published = 0
        self.dropped = 0
        # With several worker processes every event reaches the hub through the feed
        # (gateway/feed.py), in commit order, in every process: announcing it here is then
        # left to the feed reader.
        self.shared = False

    def announce(self, topic: str, event: str, payload: Any) -> None:
        """Publish an event committed by this process: now, or (``shared``) when the feed
        reader reads it back from the store."""
        if not self.shared:
            self.publish(topic, event, payload)

    def publish_health(self, payload: dict[str, Any]) -> None:
        """``health_changed`` to every channel's topic and to its tenant's."""
        self.publish(HEALTH, "health_changed", payload)
        self.publish(tenant_health(payload["tenant_id"]), "health_changed", payload)

    def announce_health(self, payload: dict[str, Any]) -> None:
        """``publish_health`` for a change committed by this process (see ``announce``)."""
        if not self.shared:
            self.publish_health(payload)

    def drop_all(self) -> int:
        """Drop every subscriber (their sockets close; clients resume from the store)."""
        n = 0
        for topic in list(self._topics):
            for sub in list(self._topics.get(topic, ())):
                self.unsubscribe(topic, sub)
                n += 1
                try:
                    sub.dropped()
                except Exception:
                    log.exception("subscriber drop hook failed")
        return n

    def subscribe(self, topic: str, sub: Subscriber) -> None:
        # A dict keeps subscription order (sets do not): earlier subscribers are served first.
        self._topics[topic][sub] = None

    def unsubscribe(self, topic: str, sub: Subscriber) -> None:
        subs = self._topics.get(topic)
        if subs is not None:
            subs.pop(sub, None)
            if not subs:
                del self._topics[topic]

    def topics(self) -> list[str]:
        """The topics with at least one subscriber."""
        return list(self._topics)

    def has_subscribers(self) -> bool:
        return bool(self._topics)

    def conversations(self) -> _Conversations:
        """A live view: ``conversation_id in hub.conversations()`` while it has a subscriber."""
        return _Conversations(self._topics)

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def connections(self) -> int:
        return sum(len(s) for s in self._topics.values())

    def publish(self, topic: str, event: str, payload: Any) -> None:
        """Deliver to every subscriber now, in a plain loop (no gather: measured faster).

        Never raises: a failing subscriber is dropped, the others still get the event.
        """
        self.published += 1
        subs = self._topics.get(topic)
        if not subs:
            return
        frames: dict[Encoder, Any] = {}
        for sub in list(subs):
            try:
                encoder = sub.encoder
                frame = None
                if encoder is not None:
                    frame = frames.get(encoder, _MISSING)
                    if frame is _MISSING:
                        frame = frames[encoder] = encoder(topic, event, payload)
                ok = sub.offer(event, payload, frame)
            except Exception:
                log.exception("subscriber failed on %s %s; dropping it", topic, event)
                ok = False
            if not ok:
                self.dropped += 1
                self.unsubscribe(topic, sub)
                try:
                    sub.dropped()
                except Exception:
                    log.exception("subscriber drop hook failed")

    def activity_hook(self, activity: Any) -> None:
        """``ctx.on_activity`` callback: broadcast a newly committed activity, once."""
        self.announce(f"conversation:{activity.conversation_id}", "new_activity", activity)


class _Conversations:
    """The conversations with subscribers, as a container (see :meth:`Hub.conversations`)."""

    __slots__ = ("_topics",)

    def __init__(self, topics: Any) -> None:
        self._topics = topics

    def __contains__(self, conversation_id: object) -> bool:
        return f"conversation:{conversation_id}" in self._topics

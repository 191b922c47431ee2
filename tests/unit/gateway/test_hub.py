"""The hub in-process: one encoding per serializer per publish, subscription order, a failing
or full subscriber dropped without disturbing the others, and the two sockets' encoders."""

from __future__ import annotations

import json
from typing import Any

from gateway.hub import Hub, Subscriber
from gateway.realtime.converger_socket import ConvergerRouter
from gateway.realtime.legacy_socket import LegacyRouter
from store.models import Activity


def _activity(seq: int) -> Activity:
    return Activity(id=f"00000000-0000-4000-8000-{seq:012d}", tenant_id="t", conversation_id="c",
                    seq=seq, type="message", sender="s", text=f"t{seq}", attachments=[],
                    metadata={"k": seq}, idempotency_key=None, source_channel_id=None,
                    external_id=None, inserted_at="2026-01-01T00:00:00.000000Z",
                    updated_at="2026-01-01T00:00:00.000000Z")


class Recorder(Subscriber):
    def __init__(self, encoder: Any, ok: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.frames: list[Any] = []
        self.ok = ok
        self.was_dropped = False

    def offer(self, event: str, payload: Any, frame: Any) -> bool:
        self.frames.append(frame)
        return self.ok

    def dropped(self) -> None:
        self.was_dropped = True


def test_frames_are_encoded_once_per_encoder_and_shared() -> None:
    hub = Hub()
    calls: list[str] = []

    def enc(topic: str, event: str, payload: Any) -> str:
        calls.append(event)
        return f"{topic}/{event}"

    subs = [Recorder(enc) for _ in range(50)]
    for s in subs:
        hub.subscribe("conversation:c", s)
    hub.publish("conversation:c", "new_activity", _activity(1))
    assert calls == ["new_activity"]
    assert all(s.frames == ["conversation:c/new_activity"] for s in subs)
    assert all(s.frames[0] is subs[0].frames[0] for s in subs)


def test_full_or_failing_subscribers_are_dropped_others_served() -> None:
    hub = Hub()
    good, full = Recorder(None), Recorder(None, ok=False)

    class Broken(Subscriber):
        def offer(self, event: str, payload: Any, frame: Any) -> bool:
            raise RuntimeError("boom")

    hub.subscribe("conversation:c", full)
    hub.subscribe("conversation:c", Broken())
    hub.subscribe("conversation:c", good)
    hub.publish("conversation:c", "new_activity", _activity(1))
    hub.publish("conversation:c", "new_activity", _activity(2))
    assert len(good.frames) == 2 and full.was_dropped and hub.dropped == 2
    assert hub.subscribers("conversation:c") == 1


def test_callback_subscribers_still_work() -> None:
    hub = Hub()
    got: list[tuple[str, Any]] = []
    hub.subscribe("conversation:c", Subscriber(lambda e, p: got.append((e, p)) or True))
    hub.publish("conversation:c", "delivery_status", {"status": "sent"})
    assert got == [("delivery_status", {"status": "sent"})]


def test_socket_encoders() -> None:
    legacy = LegacyRouter().encoder("2.0.0")
    cg = ConvergerRouter().encoder("1.0.0")
    a = _activity(7)
    assert json.loads(legacy("conversation:c", "new_activity", a)) == [
        None, None, "conversation:c", "new_activity",
        {"id": a.id, "text": "t7", "sender": "s", "inserted_at": a.inserted_at, "seq": 7}]
    status = {"delivery_id": "d", "activity_id": a.id, "status": "sent"}
    assert json.loads(legacy("conversation:c", "delivery_status", status))[4] == status
    frame = json.loads(cg("conversation:c", "new_activity", a))
    assert frame["topic"] == "converger:conversation:c" and frame["event"] == "activitySet"
    assert frame["payload"]["activities"][0]["channelData"] == {"k": 7}
    # The Converger socket forwards delivery and attachment statuses verbatim (the original
    # dropped delivery_status), and nothing it does not know.
    for event in ("delivery_status", "attachment_status"):
        frame = json.loads(cg("conversation:c", event, status))
        assert (frame["topic"], frame["event"], frame["payload"]) == (
            "converger:conversation:c", event, status)
    assert cg("conversation:c", "health_changed", status) is None

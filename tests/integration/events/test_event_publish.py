"""The JetStream publisher's round (gateway/events.py ``NatsPublisher``) against a real
``nats-server -js``: a round asks an ack for its first and last messages only, and is confirmed
only when they are new messages ``n - 1`` sequence numbers apart; any gap — a repeat of a stored
id, a message the stream did not take — makes it publish the round again with an ack per
message, so nothing is lost without an error and nothing is stored twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import events
from tests.support.brokers import Nats


def _msg(i: int, subject: str = "converger.t.c.activity.created") -> events.Message:
    return events.Message(subject, f"msg_{i}", b'{"n": %d}' % i)


async def _stored(pub: events.NatsPublisher) -> list[tuple[str, str]]:
    """(subject, Nats-Msg-Id) of every message in the stream, in stream order."""
    info = await pub.js.stream_info(events.STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        m = await pub.js.get_msg(events.STREAM, seq)
        out.append((m.subject, (m.headers or {}).get("Nats-Msg-Id", "")))
    return out


@pytest.fixture
def nats_url(tmp_path: Path) -> str:
    if not Nats.available():
        pytest.fail("nats-server is missing: run tests/setup.sh")
    broker = Nats(tmp_path / "nats").start()
    yield broker.url  # type: ignore[misc]
    broker.stop()


async def test_a_round_is_confirmed_by_its_first_and_last_acks(nats_url: str) -> None:
    pub = await events.NatsPublisher.connect(nats_url)
    try:
        assert pub.fast  # the round written to nats-py's buffer, not through publish()
        await pub.publish_many([_msg(i) for i in range(50)])
        await pub.publish_many([_msg(i) for i in range(50, 53)])
        assert pub.resent == 0
        assert [i for _, i in await _stored(pub)] == [f"msg_{i}" for i in range(53)]
    finally:
        await pub.close()


async def test_a_repeat_in_the_middle_of_a_round_is_caught_and_the_round_acked_one_by_one(
        nats_url: str) -> None:
    pub = await events.NatsPublisher.connect(nats_url)
    try:
        await pub.publish_many([_msg(1)])
        # msg_1 again (what a relay that crashed before storing its cursor sends): JetStream
        # drops it by id, so the first and last acks are one apart instead of two.
        await pub.publish_many([_msg(0), _msg(1), _msg(2)])
        assert pub.resent == 1
        assert [i for _, i in await _stored(pub)] == ["msg_1", "msg_0", "msg_2"]  # once each
    finally:
        await pub.close()


async def test_a_message_the_stream_did_not_take_fails_the_round(nats_url: str) -> None:
    pub = await events.NatsPublisher.connect(nats_url)
    try:
        # The middle message's subject is outside the stream: without an ack of its own it
        # would vanish; the gap between the acks sends the round again, one ack each, and the
        # stream's "no responders" answer for it fails the round (the relay retries it).
        with pytest.raises(ConnectionError, match="JetStream refused a publish"):
            await pub.publish_many([_msg(0), _msg(1, "elsewhere.x"), _msg(2)])
        assert pub.resent == 1
    finally:
        await pub.close()


async def test_a_round_larger_than_the_clients_pending_buffer_is_stored_whole(
        nats_url: str) -> None:
    pub = await events.NatsPublisher.connect(nats_url)
    try:
        # 600 messages of 5 KB: over nats-py's 2 MiB pending buffer, so the round is flushed
        # part way (as publish() does) before its last message is queued.
        body = b"x" * 5000
        assert 600 * len(body) > pub.nc._max_pending_size
        await pub.publish_many([events.Message("converger.t.c.activity.created", f"msg_{i}",
                                               body) for i in range(600)])
        assert pub.resent == 0
        assert [i for _, i in await _stored(pub)] == [f"msg_{i}" for i in range(600)]
    finally:
        await pub.close()

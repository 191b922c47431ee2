"""The event stream's messages (gateway/events.py): valid against docs/events.schema.json,
subjects carry tenant, channel and type (with unsafe characters replaced), stable ids, an
oversized event goes out without its data; CONVERGER_EVENTS_URL is checked at start-up."""

from __future__ import annotations

import json

import jsonschema
import msgspec
import pytest

from gateway import config, events
from store.models import Activity
from store.relay import RawActivity, Row
from tests.support.server import ROOT

SCHEMA = json.loads((ROOT / "docs" / "events.schema.json").read_text())


def _activity(text: str = "hi", seq: int = 1) -> Activity:
    return Activity(id="act_1", tenant_id="ten_1", conversation_id="conv_1", seq=seq,
                    type="message", sender="user", text=text, attachments=[], metadata={},
                    idempotency_key=None, source_channel_id="ch_1", external_id=None,
                    inserted_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z")


def _raw(act: Activity) -> RawActivity:
    """The activity as store.relay.read gives it: the JSON columns as their stored text."""
    values = msgspec.structs.asdict(act)
    for name in ("attachments", "metadata", "extra"):
        values[name] = msgspec.Raw(msgspec.json.encode(values[name]))
    return RawActivity(**values)


def _a(position: int, act: Activity | None, where: tuple[str, str] | None = ("ten_1", "ch_1"),
       topic: str = "conv_1") -> Row:
    """A feed row of a new activity (None: deleted since) in a conversation (None: gone)."""
    tenant, channel = where or (None, None)
    return Row(position, "a", topic, None, tenant, channel, _raw(act) if act else None)


def _c(position: int, data: dict[str, object]) -> Row:
    return Row(position, "c", "conv_1", msgspec.json.encode(data).decode())


def test_messages_follow_the_schema_with_subjects_and_stable_ids() -> None:
    status = {"delivery_id": "del_1", "activity_id": "act_1", "channel_id": "ch.2",
              "status": "sent", "sent_at": "2026-01-01T00:00:01Z", "delivered_at": None,
              "read_at": None}
    feed_rows = [_a(7, _activity()),
                 Row(8, "d", "conv_1", msgspec.json.encode(status).decode(), "ten_1", "ch_1"),
                 _a(9, None),  # deleted since
                 Row(10, "h", "channel_health", "{}"),  # not an event-stream kind
                 _a(11, _activity(), None, "conv_gone")]  # its conversation was deleted
    out = events.build(feed_rows, "2026-01-01T00:00:02Z")
    assert [m.subject for m in out] == ["converger.ten_1.ch_1.activity.created",
                                        "converger.ten_1.ch_2.delivery.status"]
    assert [m.id for m in out] == ["msg_act_1", "msg_d8"]
    docs = [json.loads(m.body) for m in out]
    for doc in docs:
        jsonschema.validate(doc, SCHEMA)
    assert docs[0]["seq"] == 1 and docs[0]["data"]["text"] == "hi"
    assert docs[1]["channel_id"] == "ch.2" and docs[1]["data"] == status
    # The same feed events build the same messages (what a re-publication after a crash sends).
    again = events.build(feed_rows[:1], "2026-02-02T00:00:00Z")
    assert again[0] == out[0]
    # A wrong message fails the schema (the test can fail).
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**docs[0], "seq": None}, SCHEMA)


def test_subject_tokens_never_carry_wildcards_or_dots() -> None:
    assert events.subject("a.b", "c*d >e", "activity.created") == \
        "converger.a_b.c_d__e.activity.created"
    assert events.subject("t", None, "delivery.status") == "converger.t._.delivery.status"


def test_an_oversized_event_goes_out_without_its_data(caplog: pytest.LogCaptureFixture) -> None:
    big = _activity(text="x" * (events.MAX_BYTES + 10))
    out = events.build([_a(3, big)], "2026-01-01T00:00:00Z")
    doc = msgspec.json.decode(out[0].body)
    assert doc["truncated"] is True and doc["data"] is None and doc["seq"] == 1
    assert len(out[0].body) < 2000
    jsonschema.validate(doc, SCHEMA)
    assert "published without its data" in caplog.text


@pytest.mark.parametrize(("url", "expect"), [
    ("nats://127.0.0.1:4222", None),
    ("amqp://guest:guest@127.0.0.1:5672/", None),
    ("amqps://u:p@broker.example/vhost", None),
    ("kafka://127.0.0.1:9092", "not supported yet"),
    ("redis://127.0.0.1", "must be nats://"),
    ("nats://", "names no host"),
    ("nats://127.0.0.1:notaport", "malformed"),
])
def test_the_events_url_is_checked_at_start_up(url: str, expect: str | None) -> None:
    problem = config.events_url_problem(url)
    assert (problem is None) if expect is None else (expect in (problem or ""))
    if expect is not None:
        with pytest.raises(config.ConfigError, match="CONVERGER_EVENTS_URL"):
            config.load(env={"CONVERGER_EVENTS_URL": url})
    assert events.redact("amqp://user:secret@h:5672/v") == "amqp://h:5672/v"


def _conversation(change: str, previous: str | None, status: str,
                  metadata: dict[str, str] | None = None) -> dict[str, object]:
    return {"change": change, "id": "conv_1", "tenant_id": "ten_1", "channel_id": "ch_1",
            "status": status, "previous_status": previous, "metadata": metadata or {},
            "inserted_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:05Z"}


def test_conversation_changes_are_events_with_their_own_types_and_stable_ids() -> None:
    """The feed's ``c`` rows (m0025) become conversation.created / closed / reopened / updated,
    in feed order, with the conversation after the change; they carry their own tenant and
    channel, so they need no look-up (and go out even if the conversation was deleted since)."""
    feed_rows = [_c(20, _conversation("created", None, "active")),
                 _a(21, _activity()),
                 _c(22, _conversation("updated", "active", "closed")),
                 _c(23, _conversation("updated", "closed", "active")),
                 _c(24, _conversation("updated", "active", "active", {"topic": "sales"}))]
    out = events.build(feed_rows, "2026-02-02T00:00:00Z")
    docs = [json.loads(m.body) for m in out]
    assert [d["type"] for d in docs] == ["conversation.created", "activity.created",
                                         "conversation.closed", "conversation.reopened",
                                         "conversation.updated"]
    assert [m.id for m in out] == ["msg_c20", "msg_act_1", "msg_c22", "msg_c23", "msg_c24"]
    assert out[2].subject == "converger.ten_1.ch_1.conversation.closed"
    for doc in docs:
        jsonschema.validate(doc, SCHEMA)
    closed = docs[2]
    assert (closed["seq"], closed["occurred_at"], closed["conversation_id"]) == (
        None, "2026-01-01T00:00:05Z", "conv_1")
    assert "change" not in closed["data"] and closed["data"]["previous_status"] == "active"
    assert docs[4]["data"]["metadata"] == {"topic": "sales"}
    # Without the conversation in the look-up (deleted since) the change still goes out.
    alone = events.build(feed_rows[:1], "2026-03-03T00:00:00Z")
    assert alone == out[:1]
    with pytest.raises(jsonschema.ValidationError):  # a conversation event with a seq fails
        jsonschema.validate({**closed, "seq": 3}, SCHEMA)


IDS = ["msg_01a25244-6bb6-77e8-a2c7-199c7393b29c", "msg_d7", "msg_c123456789", "msg_x" * 40]


async def test_a_nats_round_is_the_bytes_nats_py_publish_writes() -> None:
    """NatsPublisher writes a round's HPUB commands itself (hpub_cmd and the client's pending
    buffer): they must be what nats-py's own publish queues for the same message, the reply
    subject on the first and last messages only (or on all, for a round acked one by one)."""
    from nats.aio.client import Client

    msgs = [events.Message(f"converger.ten_1.ch_{i}.activity.created", id_, b'{"n": %d}' % i)
            for i, id_ in enumerate(IDS)]
    for every in (False, True):
        client = Client()  # not connected: publish's internals only queue the command
        for i, m in enumerate(msgs):
            reply = "_INBOX.x.1" if every or i in (0, len(msgs) - 1) else ""
            await client._send_publish(m.subject, reply, m.body, len(m.body),
                                       {"Nats-Msg-Id": m.id})
        assert events.NatsPublisher.commands(msgs, "_INBOX.x.1", every) == client._pending
    assert events.NatsPublisher(Client(), None).fast  # the internals it uses are there


def test_amqp_properties_are_the_bytes_pamqp_marshals() -> None:
    """AmqpPublisher marshals a message's properties from a prefix pamqp made once and the id:
    the content header frames must be pamqp's own, byte for byte."""
    from pamqp.commands import Basic
    from pamqp.frame import marshal
    from pamqp.header import ContentHeader

    props = events._Properties()
    for size, id_ in enumerate(IDS):
        props.message_id = id_
        ours = marshal(ContentHeader(body_size=size * 1000, properties=props), 3)  # type: ignore[arg-type]
        theirs = marshal(ContentHeader(body_size=size * 1000, properties=Basic.Properties(
            content_type="application/json", delivery_mode=2, message_id=id_)), 3)
        assert ours == theirs

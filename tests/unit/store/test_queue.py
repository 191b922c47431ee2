"""The deliveries table as a queue: claims, leases, transitions, backoff, rescue, receipts.

Real database files; ``now`` is passed in, so nothing sleeps."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import activities, channels, conversations, migrations, queue, tenants
from store.connect import connect
from store.models import Activity

T0 = "2026-01-01T00:00:00.000000Z"


def at(seconds: float) -> str:
    return queue._shift(T0, seconds)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "q.db")
    migrations.apply(c)
    yield c
    c.close()


def _setup(conn: sqlite3.Connection, n: int = 1) -> tuple[str, list[Activity]]:
    t = tenants.create(conn, name="t", api_key_hash="h", api_key_hint="x", now=T0)
    ch = channels.create(conn, tenant_id=t.id, name="hook", type="webhook", mode="duplex",
                         config={"url": "http://x"}, transformations=[], secret_hash="s",
                         secret_enc="e", now=T0)
    conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=T0)
    acts = [activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u", now=T0,
                              text=f"m{i}") for i in range(n)]
    for a in acts:
        queue.enqueue(conn, a, [ch.id], T0)
    return ch.id, acts


def test_backoff_is_pure_and_follows_the_schedule() -> None:
    assert [queue.backoff(n) for n in (1, 2, 3, 4)] == [30, 90, 270, 810]


def test_claim_is_atomic_leased_and_batched(conn: sqlite3.Connection) -> None:
    _setup(conn, 5)
    first = queue.claim(conn, T0, 60, limit=3)
    assert len(first) == 3
    assert len({d.claim_token for d in first}) == 3
    assert all(d.leased_until == at(60) for d in first)
    second = queue.claim(conn, T0, 60, limit=10)
    assert len(second) == 2
    assert not {d.id for d in first} & {d.id for d in second}
    assert queue.claim(conn, T0, 60, limit=10) == []


def test_not_due_rows_are_not_claimed(conn: sqlite3.Connection) -> None:
    _setup(conn)
    assert queue.claim(conn, at(-1), 60, limit=10) == []
    assert queue.next_due_at(conn) == T0


def test_complete_needs_the_claim_token(conn: sqlite3.Connection) -> None:
    _setup(conn)
    (d,) = queue.claim(conn, T0, 60, 10)
    assert queue.complete(conn, d.id, "not-the-token", at(1)) is None
    done = queue.complete(conn, d.id, d.claim_token, at(1), "pm-1", {"k": "v"})
    assert done is not None
    assert (done.status, done.attempts, done.sent_at, done.provider_message_id) == ("sent", 1, at(1), "pm-1")
    assert done.metadata == {"k": "v"} and done.claim_token is None
    assert queue.next_due_at(conn) is None


def test_failures_back_off_then_fail_after_five(conn: sqlite3.Connection) -> None:
    _setup(conn)
    now = T0
    waits = []
    for attempt in range(1, 6):
        (d,) = queue.claim(conn, now, 60, 10)
        assert queue.fail(conn, d.id, "wrong", now, "boom") is None
        d2 = queue.fail(conn, d.id, d.claim_token, now, "boom")
        assert d2 is not None and d2.attempts == attempt and d2.last_error == "boom"
        if attempt < 5:
            assert d2.status == "pending"
            waits.append((queue.parse_iso(d2.next_attempt_at) - queue.parse_iso(now)).total_seconds())
            assert queue.claim(conn, queue._shift(d2.next_attempt_at, -0.001), 60, 10) == []
            now = d2.next_attempt_at
        else:
            assert d2.status == "failed" and d2.next_attempt_at is None
    assert waits == [30, 90, 270, 810]
    assert queue.claim(conn, at(10**6), 60, 10) == []


def test_retry_after_is_honoured_only_when_longer(conn: sqlite3.Connection) -> None:
    _setup(conn, 2)
    a, b = queue.claim(conn, T0, 60, 10)
    longer = queue.fail(conn, a.id, a.claim_token, T0, "503", retry_after=120)
    shorter = queue.fail(conn, b.id, b.claim_token, T0, "503", retry_after=5)
    assert longer.next_attempt_at == at(120)
    assert shorter.next_attempt_at == at(30)


def test_scale_shrinks_the_wait(conn: sqlite3.Connection) -> None:
    _setup(conn)
    (d,) = queue.claim(conn, T0, 60, 10)
    assert queue.fail(conn, d.id, d.claim_token, T0, "x", scale=0.01).next_attempt_at == at(0.3)


def test_non_retryable_fails_at_once(conn: sqlite3.Connection) -> None:
    _setup(conn)
    (d,) = queue.claim(conn, T0, 60, 10)
    d2 = queue.fail(conn, d.id, d.claim_token, T0, "webhook returned status 410: gone", retryable=False)
    assert (d2.status, d2.attempts) == ("failed", 1)


def test_release_gives_rows_back_without_an_attempt(conn: sqlite3.Connection) -> None:
    _setup(conn, 3)
    claimed = queue.claim(conn, T0, 60, 10)
    assert queue.release(conn, [d.claim_token for d in claimed[:2]]) == 2
    again = queue.claim(conn, T0, 60, 10)
    assert len(again) == 2 and all(d.attempts == 0 for d in again)


def test_rescue_reclaims_only_expired_leases(conn: sqlite3.Connection) -> None:
    _setup(conn, 2)
    a, b = queue.claim(conn, T0, 60, 1) + queue.claim(conn, at(30), 60, 1)
    assert queue.rescue_expired(conn, at(59)) == 0
    assert queue.rescue_expired(conn, at(61)) == 1  # a's lease ended at 60, b's runs to 90
    (again,) = queue.claim(conn, at(61), 60, 10)
    assert again.id == a.id and again.claim_token != a.claim_token
    # The old worker finishing late cannot overwrite the new claim.
    assert queue.complete(conn, a.id, a.claim_token, at(62)) is None
    assert queue.rescue_all(conn, at(62)) == 2


def test_retry_now_revives_a_failed_delivery(conn: sqlite3.Connection) -> None:
    _setup(conn)
    (d,) = queue.claim(conn, T0, 60, 10)
    queue.fail(conn, d.id, d.claim_token, T0, "x", retryable=False)
    revived = queue.retry_now(conn, d.id, at(5))
    assert (revived.status, revived.attempts, revived.next_attempt_at) == ("pending", 0, at(5))
    assert [x.id for x in queue.claim(conn, at(5), 60, 10)] == [d.id]


@pytest.mark.parametrize(
    ("current", "new", "applies"),
    [
        ("pending", "sent", True), ("sent", "delivered", True), ("delivered", "read", True),
        ("sent", "read", True), ("read", "delivered", False), ("delivered", "sent", False),
        ("read", "failed", False), ("sent", "failed", True), ("delivered", "failed", True),
        ("pending", "failed", True), ("failed", "read", False), ("failed", "delivered", False),
        ("failed", "failed", True), ("sent", "bogus", False), ("sent", "sent", False),
    ],
)
def test_receipts_are_monotonic(current: str, new: str, applies: bool) -> None:
    assert queue.receipt_applies(current, new) is applies


def test_apply_receipt_sets_the_timestamp_and_is_channel_scoped(conn: sqlite3.Connection) -> None:
    channel_id, _ = _setup(conn)
    (d,) = queue.claim(conn, T0, 60, 10)
    d = queue.complete(conn, d.id, d.claim_token, at(1), "wamid.1")
    assert queue.find_for_receipt(conn, "other-channel", "wamid.1", None) is None
    assert queue.find_for_receipt(conn, "other-channel", None, d.id) is None
    found = queue.find_for_receipt(conn, channel_id, "wamid.1", None)
    read = queue.apply_receipt(conn, found, "read", at(9), None, at(10))
    assert (read.status, read.read_at) == ("read", at(9))
    assert queue.apply_receipt(conn, read, "delivered", at(8), None, at(10)) is None
    assert queue.apply_receipt(conn, read, "failed", at(8), "x", at(10)) is None
    assert queue.get(conn, d.id).status == "read"


def test_receipt_failed_records_the_error(conn: sqlite3.Connection) -> None:
    channel_id, _ = _setup(conn)
    (d,) = queue.claim(conn, T0, 60, 10)
    d = queue.complete(conn, d.id, d.claim_token, at(1))
    failed = queue.apply_receipt(conn, d, "failed", at(2), "undeliverable", at(2))
    assert (failed.status, failed.last_error) == ("failed", "undeliverable")


def test_receipt_time_parsing() -> None:
    now = T0
    assert queue.receipt_time(None, now) == now
    assert queue.receipt_time(1700000000, now) == "2023-11-14T22:13:20.000000Z"
    assert queue.receipt_time("1700000000", now) == "2023-11-14T22:13:20.000000Z"
    assert queue.receipt_time("2024-05-01T10:00:00Z", now) == "2024-05-01T10:00:00.000000Z"
    assert queue.receipt_time("nonsense", now) == now
    assert queue.receipt_time({"x": 1}, now) == now


def test_thread_senders_only_for_the_conversations_own_channel(conn: sqlite3.Connection) -> None:
    channel_id, (a,) = _setup(conn)
    t = conn.execute("SELECT tenant_id FROM channels WHERE id = ?", (channel_id,)).fetchone()[0]
    other = channels.create(conn, tenant_id=t, name="other", type="webhook", mode="duplex",
                            config={}, transformations=[], secret_hash="s2", secret_enc="e", now=T0)
    thread = conversations.create(conn, tenant_id=t, channel_id=channel_id, now=T0, sender_key="+31")
    b = activities.insert(conn, tenant_id=t, conversation_id=thread.id, sender="+31", now=T0)
    queue.enqueue(conn, b, [channel_id, other.id], T0)
    claimed = queue.claim(conn, T0, 60, 10)
    senders = queue.thread_senders(conn, claimed)
    by_channel = {d.channel_id: senders.get(d.id) for d in claimed if d.activity_id == b.id}
    assert by_channel == {channel_id: "+31", other.id: None}
    assert set(queue.activities_for(conn, claimed)) == {a.id, b.id}

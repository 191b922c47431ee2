"""The feed carries conversation changes (kind ``c``, issue 16's event stream): a conversation
created, its status changed (closed, reopened — by the API, the panel or the idle expiry job) or
its metadata changed. Written by triggers, like new activities (m0009), so that no write path can
forget them; ``data`` is the conversation as it is after the change, with ``change`` (``created``
or ``updated``) and ``previous_status``. An activity's insert (which updates ``last_seq``) writes
no such event: the update triggers fire only when ``status`` or ``metadata`` changed.

``event_relay`` counts the events too large for the broker (published without their data, or
skipped) and names the last one, for ``/readyz``.

Widening the feed's CHECK changes no stored row: done in place (``widen_check``), as m0017 does.
PostgreSQL gets its own trigger functions (``json_build_object``, ``IS DISTINCT FROM``)."""

from __future__ import annotations

from typing import Any

from .. import dialect
from . import execute_all, widen_check

OLD = "CHECK (kind IN ('a', 'd', 'h', 'i', 'm'))"
NEW = "CHECK (kind IN ('a', 'd', 'h', 'i', 'm', 'c'))"

_SQLITE_DATA = """json_object('change', {change}, 'id', NEW.id, 'tenant_id', NEW.tenant_id,
    'channel_id', NEW.channel_id, 'status', NEW.status, 'previous_status', {previous},
    'metadata', json(NEW.metadata), 'inserted_at', NEW.inserted_at,
    'updated_at', NEW.updated_at)"""

SQLITE_STATEMENTS = [
    f"""
    CREATE TRIGGER feed_conversation_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO feed (kind, topic, ref, data)
        VALUES ('c', NEW.id, NEW.id, {_SQLITE_DATA.format(change="'created'", previous="NULL")});
    END
    """,
    f"""
    CREATE TRIGGER feed_conversation_update AFTER UPDATE OF status, metadata ON conversations
    WHEN NEW.status IS NOT OLD.status OR NEW.metadata IS NOT OLD.metadata BEGIN
        INSERT INTO feed (kind, topic, ref, data)
        VALUES ('c', NEW.id, NEW.id,
                {_SQLITE_DATA.format(change="'updated'", previous="OLD.status")});
    END
    """,
]

_PG_DATA = """json_build_object('change', {change}, 'id', NEW.id, 'tenant_id', NEW.tenant_id,
    'channel_id', NEW.channel_id, 'status', NEW.status, 'previous_status', {previous},
    'metadata', NEW.metadata::json, 'inserted_at', NEW.inserted_at,
    'updated_at', NEW.updated_at)::text"""

PG_STATEMENTS = [
    f"""CREATE FUNCTION feed_conversation_insert_fn() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        INSERT INTO feed (kind, topic, ref, data)
        VALUES ('c', NEW.id, NEW.id, {_PG_DATA.format(change="'created'", previous="NULL")});
        RETURN NULL;
    END $fn$""",
    """CREATE TRIGGER feed_conversation_insert AFTER INSERT ON conversations
        FOR EACH ROW EXECUTE FUNCTION feed_conversation_insert_fn()""",
    f"""CREATE FUNCTION feed_conversation_update_fn() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        INSERT INTO feed (kind, topic, ref, data)
        VALUES ('c', NEW.id, NEW.id,
                {_PG_DATA.format(change="'updated'", previous="OLD.status")});
        RETURN NULL;
    END $fn$""",
    """CREATE TRIGGER feed_conversation_update AFTER UPDATE OF status, metadata ON conversations
        FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status
                           OR NEW.metadata IS DISTINCT FROM OLD.metadata)
        EXECUTE FUNCTION feed_conversation_update_fn()""",
]


COLUMNS = [
    "ALTER TABLE event_relay ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE event_relay ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE event_relay ADD COLUMN last_oversized TEXT",
]


def up(db: Any) -> None:
    widen_check(db, "feed", OLD, NEW)
    for sql in COLUMNS:
        db.conn.execute(sql)
    if dialect.of(db.conn) == dialect.POSTGRESQL:
        for sql in PG_STATEMENTS:
            db.conn.raw.execute(sql)  # PostgreSQL's own DDL: not translated
    else:
        execute_all(db, SQLITE_STATEMENTS)

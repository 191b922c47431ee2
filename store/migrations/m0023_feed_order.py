"""The feed's ids in commit order across several nodes on PostgreSQL (gateway/nodes.py).

SQLite has one writer at a time, so an AUTOINCREMENT id is handed out in commit order and a
rolled-back transaction leaves no gap. PostgreSQL's sequences give neither with several writers
(a later id may commit first, and a reader that saw it would skip the earlier one). There, a
``BEFORE INSERT`` trigger takes the id from the one row of ``feed_counter``, which stays locked
until the inserting transaction ends: ids are gap-free and in commit order, as on SQLite. A
statement-level trigger sends ``NOTIFY converger_feed`` (delivered at commit) so that the other
nodes look at once. Nothing changes on SQLite."""

from __future__ import annotations

from typing import Any

from .. import dialect

PG_STATEMENTS = [
    """CREATE TABLE feed_counter (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        n BIGINT NOT NULL)""",
    "INSERT INTO feed_counter (one, n) SELECT 1, coalesce(max(id), 0) FROM feed",
    """CREATE FUNCTION feed_next_id() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        UPDATE feed_counter SET n = n + 1 WHERE one = 1 RETURNING n INTO NEW.id;
        RETURN NEW;
    END $fn$""",
    """CREATE TRIGGER feed_next_id BEFORE INSERT ON feed
        FOR EACH ROW EXECUTE FUNCTION feed_next_id()""",
    """CREATE FUNCTION feed_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM pg_notify('converger_feed', '');
        RETURN NULL;
    END $fn$""",
    """CREATE TRIGGER feed_notify AFTER INSERT ON feed
        FOR EACH STATEMENT EXECUTE FUNCTION feed_notify()""",
]


def up(db: Any) -> None:
    if dialect.of(db.conn) == dialect.POSTGRESQL:
        for sql in PG_STATEMENTS:
            db.conn.raw.execute(sql)  # PostgreSQL's own DDL: not translated

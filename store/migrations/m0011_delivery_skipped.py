"""Deliveries may be ``skipped``: an activity of a type the channel's adapter does not carry (a
``typing`` indicator to WhatsApp, say) gets a row that records why, instead of an attempt that
would send an empty message and count as a failure.

Widening a CHECK changes no stored row, so it takes SQLite's documented in-place procedure
(sqlite.org/lang_altertable.html, "Making other kinds of table schema changes"), as
m0005_channel_types does: a copy-and-rename rebuild of ``deliveries`` is not needed. The
schema version is bumped in the same transaction, so every open connection re-reads it."""

from __future__ import annotations

from sqlite_utils import Database

OLD = "CHECK (status IN ('pending','sent','delivered','read','failed'))"
NEW = "CHECK (status IN ('pending','sent','delivered','read','failed','skipped'))"


def up(db: Database) -> None:
    conn = db.conn
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'").fetchone()
    if OLD not in sql:  # already widened (or made by a later initial schema)
        return
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'deliveries'",
                     (sql.replace(OLD, NEW),))
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    (ok,) = conn.execute("PRAGMA quick_check").fetchone()
    if ok != "ok":
        raise RuntimeError(f"deliveries status CHECK migration left the schema damaged: {ok}")

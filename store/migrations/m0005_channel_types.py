"""Channel types: the ``channels.type`` CHECK widened to every channel type name fixed in
advance (``telegram``, ``slack``, and the SMS and e-mail types still to come), so adding one of them
needs no further table rebuild.

Widening a CHECK changes no stored row, so it takes SQLite's documented in-place procedure
(sqlite.org/lang_altertable.html, "Making other kinds of table schema changes", the simpler
procedure for removing or changing CHECK constraints) rather than the copy-and-rename
rebuild: with foreign keys on, dropping the old ``channels`` would cascade-delete every
conversation, delivery and alert of every channel. The schema version is bumped in the same
transaction, so every open connection re-reads the schema."""

from __future__ import annotations

from sqlite_utils import Database

OLD = "CHECK (type IN ('echo','webhook','websocket','whatsapp_meta','whatsapp_infobip'))"
TYPES = ("echo", "webhook", "websocket", "whatsapp_meta", "whatsapp_infobip", "telegram", "slack",
         "sms_twilio", "sms_vonage", "email_smtp", "email_sendgrid")
NEW = "CHECK (type IN (" + ",".join(f"'{t}'" for t in TYPES) + "))"


def up(db: Database) -> None:
    conn = db.conn
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'channels'").fetchone()
    if OLD not in sql:  # already widened (or made by a later initial schema)
        return
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'channels'",
                     (sql.replace(OLD, NEW),))
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    (ok,) = conn.execute("PRAGMA quick_check").fetchone()
    if ok != "ok":
        raise RuntimeError(f"channels type CHECK migration left the schema damaged: {ok}")

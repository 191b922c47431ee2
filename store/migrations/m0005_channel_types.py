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

from . import widen_check

OLD = "CHECK (type IN ('echo','webhook','websocket','whatsapp_meta','whatsapp_infobip'))"
TYPES = ("echo", "webhook", "websocket", "whatsapp_meta", "whatsapp_infobip", "telegram", "slack",
         "sms_twilio", "sms_vonage", "email_smtp", "email_sendgrid")
NEW = "CHECK (type IN (" + ",".join(f"'{t}'" for t in TYPES) + "))"


def up(db: Database) -> None:
    widen_check(db, 'channels', OLD, NEW)

"""Deliveries may be ``skipped``: an activity of a type the channel's adapter does not carry (a
``typing`` indicator to WhatsApp, say) gets a row that records why, instead of an attempt that
would send an empty message and count as a failure.

Widening a CHECK changes no stored row, so it takes SQLite's documented in-place procedure
(sqlite.org/lang_altertable.html, "Making other kinds of table schema changes"), as
m0005_channel_types does: a copy-and-rename rebuild of ``deliveries`` is not needed. The
schema version is bumped in the same transaction, so every open connection re-reads it."""

from __future__ import annotations

from sqlite_utils import Database

from . import widen_check

OLD = "CHECK (status IN ('pending','sent','delivered','read','failed'))"
NEW = "CHECK (status IN ('pending','sent','delivered','read','failed','skipped'))"


def up(db: Database) -> None:
    widen_check(db, 'deliveries', OLD, NEW)

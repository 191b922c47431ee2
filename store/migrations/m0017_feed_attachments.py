"""The feed carries ``attachment_status`` events (kind ``m``): an inbound file's background
download changing state (``pending`` with the last error, ``stored``, ``failed``) reaches the
conversation's sockets in every worker process, as ``delivery_status`` does (kind ``d``).

Widening a CHECK changes no stored row: done in place (``widen_check``), as m0011 does."""

from __future__ import annotations

from sqlite_utils import Database

from . import widen_check

OLD = "CHECK (kind IN ('a', 'd', 'h', 'i'))"
NEW = "CHECK (kind IN ('a', 'd', 'h', 'i', 'm'))"


def up(db: Database) -> None:
    widen_check(db, "feed", OLD, NEW)

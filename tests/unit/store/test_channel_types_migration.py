"""m0005 widens the channels.type CHECK in place: the new types are accepted, unknown ones
still refused, and no row of a database made before it is lost (a copy-and-rename rebuild
with foreign keys on would have cascade-deleted every conversation)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from store import migrations
from store.connect import connect
from store.migrations import m0005_channel_types

# Every migration that sorts before this one (other m0005 ones included).
BEFORE = [n for n in migrations._modules() if n < "m0005_channel_types"]


def _row(conn: sqlite3.Connection, table: str, **values: object) -> None:
    cols = ", ".join(values)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(values))})",
                 tuple(values.values()))


def test_widened_in_place_keeping_every_row(tmp_path: Path) -> None:
    conn = connect(tmp_path / "old.db")
    conn.execute("PRAGMA foreign_keys = ON")
    mset = migrations.migrations()
    db = sqlite_utils.Database(conn)
    mset.apply(db, stop_before="m0005_channel_types")
    assert migrations.applied(conn) == BEFORE
    now = "2026-12-07T09:00:00.000000Z"
    _row(conn, "tenants", id="t1", name="acme", api_key_hash="h", api_key_hint="h",
         inserted_at=now, updated_at=now)
    _row(conn, "channels", id="c1", tenant_id="t1", name="wa", secret_hash="h", secret_enc="e",
         type="whatsapp_meta", inserted_at=now, updated_at=now)
    _row(conn, "conversations", id="v1", tenant_id="t1", channel_id="c1", inserted_at=now,
         updated_at=now)
    with pytest.raises(sqlite3.IntegrityError):
        _row(conn, "channels", id="c2", tenant_id="t1", name="tg", secret_hash="h",
             secret_enc="e", type="telegram", inserted_at=now, updated_at=now)
    assert migrations.apply(conn)[0] == "m0005_channel_types"
    assert conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 1
    for i, kind in enumerate(m0005_channel_types.TYPES):
        _row(conn, "channels", id=f"n{i}", tenant_id="t1", name=kind, secret_hash="h",
             secret_enc="e", type=kind, inserted_at=now, updated_at=now)
    with pytest.raises(sqlite3.IntegrityError):
        _row(conn, "channels", id="bad", tenant_id="t1", name="bad", secret_hash="h",
             secret_enc="e", type="carrier_pigeon", inserted_at=now, updated_at=now)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    again = connect(tmp_path / "old.db")  # a new connection reads the widened schema
    assert migrations.apply(again) == []
    assert again.execute("SELECT type FROM channels WHERE id = 'n5'").fetchone()[0] == "telegram"
    again.close()

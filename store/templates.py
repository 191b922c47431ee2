"""WhatsApp message templates synced from a channel's provider (m0014): what a template activity
is checked against before it is queued."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec


class Template(msgspec.Struct, kw_only=True):
    channel_id: str
    name: str
    language: str
    status: str
    category: str | None
    components: list[dict[str, Any]]
    synced_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "language": self.language, "status": self.status,
                "category": self.category, "components": self.components}


_COLS = "channel_id, name, language, status, category, components, synced_at"


def _row(r: Any) -> Template:
    return Template(channel_id=r[0], name=r[1], language=r[2], status=r[3], category=r[4],
                    components=msgspec.json.decode(r[5]), synced_at=r[6])


def replace(conn: sqlite3.Connection, channel_id: str, tenant_id: str,
            items: list[dict[str, Any]], now: str) -> int:
    """The channel's templates become ``items`` (name, language, status, category,
    components); the number kept."""
    conn.execute("DELETE FROM whatsapp_templates WHERE channel_id = ?", (channel_id,))
    kept = 0
    for t in items:
        conn.execute(
            f"INSERT INTO whatsapp_templates ({_COLS}, tenant_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id, name, language) DO UPDATE "
            "SET status = excluded.status, category = excluded.category, "
            "components = excluded.components, synced_at = excluded.synced_at, "
            "tenant_id = excluded.tenant_id",
            (channel_id, t["name"], t["language"], t["status"], t.get("category"),
             msgspec.json.encode(t.get("components") or []).decode(), now, tenant_id))
        kept += 1
    return kept


def for_channel(conn: sqlite3.Connection, channel_id: str) -> list[Template]:
    rows = conn.execute(f"SELECT {_COLS} FROM whatsapp_templates WHERE channel_id = ? "
                        "ORDER BY name, language", (channel_id,)).fetchall()
    return [_row(r) for r in rows]


def get(conn: sqlite3.Connection, channel_id: str, name: str, language: str) -> Template | None:
    r = conn.execute(f"SELECT {_COLS} FROM whatsapp_templates WHERE channel_id = ? AND name = ? "
                     "AND language = ?", (channel_id, name, language)).fetchone()
    return None if r is None else _row(r)


def last_inbound_at(conn: sqlite3.Connection, conversation_id: str, channel_id: str) -> str | None:
    """When the customer last wrote in ``conversation_id`` through ``channel_id``."""
    (when,) = conn.execute(
        "SELECT max(inserted_at) FROM activities WHERE conversation_id = ? "
        "AND source_channel_id = ?", (conversation_id, channel_id)).fetchone()
    return str(when) if when is not None else None

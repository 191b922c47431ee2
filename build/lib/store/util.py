"""Small helpers shared by the store modules: ids, timestamps, JSON columns, cursors."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def new_id() -> str:
    """A random UUIDv4 string (the original's id format)."""
    return str(uuid.uuid4())


def iso(dt: datetime) -> str:
    """ISO-8601 UTC with 6 fractional digits and ``Z``: ``2026-02-28T12:34:56.123456Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dumps(value: Any) -> str:
    return _encode(value).decode()


def loads(text: str | bytes | None, default: Any = None) -> Any:
    if text is None:
        return default
    return _decode(text)


def encode_cursor(*parts: str) -> str:
    raw = "\x1f".join(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str] | None:
    """Decode a cursor made by :func:`encode_cursor`; ``None`` when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    parts = raw.split("\x1f")
    return parts if len(parts) == n else None


def page(
    conn: Any,
    sql: str,
    params: list[Any],
    *,
    limit: int,
    cursor: str | None,
    order_col: str = "inserted_at",
) -> tuple[list[Any], str | None]:
    """Keyset pagination, newest first, over ``sql`` (a SELECT with a ``WHERE`` clause).

    Returns the rows and the cursor of the next page (``None`` on the last page).
    """
    params = list(params)
    if cursor:
        parts = decode_cursor(cursor, 2)
        if parts is None:
            raise ValueError("invalid cursor")
        sql += f" AND ({order_col} < ? OR ({order_col} = ? AND id < ?))"
        params += [parts[0], parts[0], parts[1]]
    sql += f" ORDER BY {order_col} DESC, id DESC LIMIT ?"
    params.append(limit + 1)
    rows = conn.execute(sql, params).fetchall()
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        nxt = encode_cursor(last[order_col], last["id"])
    return rows, nxt

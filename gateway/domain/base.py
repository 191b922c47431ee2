"""What every aggregate shares: who acts, and the audit entry that goes with each change."""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

import msgspec

from store import audit


class Actor(NamedTuple):
    """Who makes a change, as the audit log records it: ``("admin_token", id)``,
    ``("admin", email)``, ``("tenant_user", email)``, ``("system", "cli")``…"""

    type: str
    id: str


SYSTEM = Actor("system", "cli")


def snap(value: Any) -> dict[str, Any]:
    """A row as the audit log keeps it (``audit.record`` drops password hashes)."""
    return msgspec.to_builtins(value)


def record(conn: sqlite3.Connection, actor: tuple[str, str], action: str, resource_type: str,
           resource_id: str, now: str, *, tenant_id: str | None = None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """The audit entry of one change, written in the change's own transaction."""
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action=action,
                 resource_type=resource_type, resource_id=resource_id, tenant_id=tenant_id,
                 now=now, before=before, after=after)

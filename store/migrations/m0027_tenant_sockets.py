"""Open sockets per tenant across the processes and nodes of a gateway (issue 21: a tier's
``max_connections``, gateway/tiersockets.py, docs/admin.md#sla-tiers).

``socket_holders``: one row per process that holds counted sockets (a random id made at its
start), ``seen_at`` refreshed every few seconds while it holds any; a process that died stops
refreshing and its sockets stop counting. ``tenant_sockets``: how many sockets of a tenant each
holder has open; the ``''`` holder's row of a tenant is the lock a socket's admission takes
first, so two admissions of one tenant never both see room for one."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """CREATE TABLE socket_holders (
        holder TEXT PRIMARY KEY,
        seen_at REAL NOT NULL)""",
    """CREATE TABLE tenant_sockets (
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        holder TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, holder))""",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)

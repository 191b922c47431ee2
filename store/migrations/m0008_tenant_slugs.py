"""Tenant slugs: a unique, URL-safe form of each tenant's name, what its users type to sign in
to the portal. Two tenants may share a name, and the portal used to sign in by name only, so
the users of the second one could never sign in.

Existing tenants get theirs in the order they were created (the older of two ``Acme`` keeps
``acme``, the newer gets ``acme-2``); a unique index keeps them apart from then on."""

from sqlite_utils import Database

from ..tenants import unique_slug


def up(db: Database) -> None:
    conn = db.conn
    conn.execute("ALTER TABLE tenants ADD COLUMN slug TEXT")
    for tenant_id, name in conn.execute(
            "SELECT id, name FROM tenants ORDER BY inserted_at, id").fetchall():
        conn.execute("UPDATE tenants SET slug = ? WHERE id = ?", (unique_slug(conn, name), tenant_id))
    conn.execute("CREATE UNIQUE INDEX tenants_slug ON tenants(slug)")

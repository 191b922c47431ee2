"""The feed's tenant events name the tenant and its state (``ref``: the tenant id; ``data``:
``{"status": …}`` or ``{"deleted": 1}``), so that every worker process can both drop its
API-key cache and close the sockets of a tenant that was disabled or deleted (m0009 wrote only
"the tenants changed")."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    "DROP TRIGGER IF EXISTS feed_tenant_update",
    "DROP TRIGGER IF EXISTS feed_tenant_delete",
    """
    CREATE TRIGGER feed_tenant_update AFTER UPDATE ON tenants BEGIN
        INSERT INTO feed (kind, topic, ref, data)
        VALUES ('i', 'tenants', NEW.id, json_object('status', NEW.status));
    END
    """,
    """
    CREATE TRIGGER feed_tenant_delete AFTER DELETE ON tenants BEGIN
        INSERT INTO feed (kind, topic, ref, data)
        VALUES ('i', 'tenants', OLD.id, json_object('deleted', 1));
    END
    """,
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)

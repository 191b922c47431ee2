"""Access control (issue 25): custom roles (named sets of permissions), a tenant scope on admin
users and admin API tokens, a channel scope and an expiry on tokens. The role columns keep a
role's name: one of the built-in roles or a custom role's, so their CHECK widens to any name."""

from sqlite_utils import Database

from . import execute_all, widen_check

BUILTIN_CHECK = "CHECK (role IN ('super_admin','admin','viewer'))"
ANY_NAME = "CHECK (role <> '')"

STATEMENTS = [
    """
    CREATE TABLE roles (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        permissions TEXT NOT NULL,
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    "ALTER TABLE admin_users ADD COLUMN tenant_scope TEXT",
    # a user made at single sign-on: the identity provider's issuer and subject
    "ALTER TABLE admin_users ADD COLUMN sso_subject TEXT",
    "ALTER TABLE admin_tokens ADD COLUMN tenant_scope TEXT",
    "ALTER TABLE admin_tokens ADD COLUMN channel_scope TEXT",
    "ALTER TABLE admin_tokens ADD COLUMN expires_at TEXT",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
    for table in ("admin_users", "admin_tokens"):
        widen_check(db, table, BUILTIN_CHECK, ANY_NAME)

"""What ``converger serve`` checks about the database and HTTPS before it starts, and
``converger backup``: each failure is one line for the operator (docs/deploy.md).

- an existing database of a newer schema is refused, unchanged; an older one is migrated here,
  after ``store.migrations.apply`` has snapshotted it beside itself;
- with HTTPS on, the HTTPS port must be free and given certificate files must match.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from .config import Settings


def prepare_database(settings: Settings) -> str | None:
    """None when the database is ready to serve (upgraded if it was older), else why not."""
    from store import migrations, upgrade

    from .app import open_database

    path = settings.db_path
    if settings.postgresql or not path.exists():
        return None  # PostgreSQL (preflight checked it), or a new file: nothing to upgrade
    try:
        done = upgrade.inspect_file(path, migrations.MIGRATION_SET)
        upgrade.refuse_newer(done, migrations.known(), f"the database {path}")
    except upgrade.SchemaTooNew as exc:
        return str(exc)
    except sqlite3.Error as exc:
        return f"the database {path} cannot be read: {exc}"
    pending = [m for m in migrations.known() if m not in done]
    if not pending or not done:
        return None
    try:
        db, _ = open_database(settings)
        db.close()
    except (OSError, sqlite3.Error) as exc:
        return (f"the database {path} could not be snapshotted and upgraded ({exc}); "
                "it was not changed")
    snaps = sorted(path.parent.glob(f"{path.name}.*.before-{pending[0]}.bak*"))
    print(f"converger: upgraded the database ({', '.join(pending)}); the snapshot from before "
          f"is {snaps[-1] if snaps else '(none)'}", file=sys.stderr)
    return None


def tls_preflight(settings: Settings) -> str | None:
    """None when HTTPS can be served (or is off); a taken HTTP port only warns."""
    if not settings.tls:
        return None
    from .tls_serve import preflight

    error, warning = preflight(settings)
    if warning:
        print(f"converger: warning: {warning}", file=sys.stderr)
    return error


def backup(settings: Settings, file: str) -> str | None:
    """``converger backup FILE``: a consistent snapshot (VACUUM INTO), also of a running
    gateway. None when done (and said so), else why not."""
    from store import upgrade

    if settings.postgresql:
        return ("the store is PostgreSQL (CONVERGER_DATABASE_URL): back it up with pg_dump, or "
                "PostgreSQL's base backups and WAL archiving (docs/scaling.md)")
    target = Path(file)
    if target.exists():
        return f"{target} exists; choose a new file name"
    try:
        upgrade.backup(settings.db_path, target)
    except (OSError, sqlite3.Error) as exc:
        return f"backup failed: {exc}"
    print(f"backed up {settings.db_path} → {target} ({target.stat().st_size} bytes). Keep the "
          f"secret key with it (CONVERGER_SECRET_KEY or {Path(settings.data_dir) / 'secret_key'}):"
          " stored channel secrets need it.")
    return None

"""Analytics rollups clustered by what the reports read (issue 21, docs/analytics.md): the three
bucket tables become ``WITHOUT ROWID`` tables keyed ``(kind, bucket, tenant_id, channel_id,
key)``, so a report's range of one kind is one sequential read of the table itself (m0016's rowid
tables went through an index and a lookup per row: 250 ms for a gateway-wide 30-day report in the
bench, docs/performance.md). Rows are copied over."""

from sqlite_utils import Database

from . import execute_all

TABLES = ("analytics_minute", "analytics_hour", "analytics_day")

STATEMENTS = [
    stmt
    for name in TABLES
    for stmt in (
        f"""CREATE TABLE {name}_new (
                kind TEXT NOT NULL,
                bucket INTEGER NOT NULL,
                tenant_id TEXT NOT NULL,
                channel_id TEXT NOT NULL,
                key TEXT NOT NULL,
                n INTEGER NOT NULL,
                PRIMARY KEY (kind, bucket, tenant_id, channel_id, key)
            ) WITHOUT ROWID""",
        f"""INSERT INTO {name}_new (kind, bucket, tenant_id, channel_id, key, n)
            SELECT kind, bucket, tenant_id, channel_id, key, n FROM {name}""",
        f"DROP TABLE {name}",
        f"ALTER TABLE {name}_new RENAME TO {name}",
    )
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)

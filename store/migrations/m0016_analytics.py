"""Analytics rollups (issue 21, docs/analytics.md): counters per tenant, channel and time bucket,
so a chart over 30 days reads a few thousand rows instead of scanning the activity table.

Three tables of the same shape, one per bucket size: ``analytics_minute`` (activity and
delivery counts, written on the write path), ``analytics_hour`` (latency histograms and failure
reasons written on the write path; counts folded in from the minutes by the rollup job) and
``analytics_day`` (busiest conversations written on the write path; the rest folded in from the
hours). ``bucket`` is the bucket's start in Unix seconds (UTC); ``kind``/``key`` name the
figure (``count``/``in``, ``latency``/``sent:7``, ``failure``/<reason>, ``conversation``/<id>).
``analytics_state`` holds the rollup job's watermarks."""

from sqlite_utils import Database

from . import execute_all

TABLE = """
    CREATE TABLE {name} (
        tenant_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, bucket, channel_id, kind, key)
    )
"""

STATEMENTS = [
    *(TABLE.format(name=name) for name in ("analytics_minute", "analytics_hour", "analytics_day")),
    "CREATE INDEX analytics_minute_bucket ON analytics_minute (bucket, kind)",
    "CREATE INDEX analytics_hour_bucket ON analytics_hour (bucket, kind)",
    "CREATE INDEX analytics_day_bucket ON analytics_day (bucket, kind)",
    "CREATE TABLE analytics_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)

"""Analytics: activities counted by the rollup job from the feed, and aggregate levels (issue 21,
docs/analytics.md, docs/performance.md §7).

* ``analytics_state`` ``activities_cursor``: the last feed id whose activity is counted. Until
  now the write path counted each activity; from here the job counts the feed's events after
  the cursor, so it starts at the feed's end (what is before was counted already).
* The tenant-wide (``<tenant>``/``*``) and gateway-wide (``*``/``*``) rows of the hours and
  days already folded, and each day's gateway-wide busiest conversations (``top``), which the
  job keeps from now on: a 30-day report of a tenant or of the gateway reads those."""

from __future__ import annotations

from typing import Any

from .. import dialect

ALL = "*"
KINDS = "('count', 'latency', 'failure')"

STATEMENTS = [
    stmt
    for table in ("analytics_hour", "analytics_day")
    for stmt in (
        f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
            SELECT tenant_id, '{ALL}', bucket, kind, key, sum(n) FROM {table}
             WHERE kind IN {KINDS} AND channel_id <> '{ALL}'
             GROUP BY tenant_id, bucket, kind, key""",
        f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
            SELECT '{ALL}', '{ALL}', bucket, kind, key, sum(n) FROM {table}
             WHERE kind IN {KINDS} AND tenant_id <> '{ALL}' AND channel_id = '{ALL}'
             GROUP BY bucket, kind, key""",
    )
] + [
    f"""INSERT INTO analytics_day (kind, bucket, tenant_id, channel_id, key, n)
        SELECT 'top', bucket, '{ALL}', '{ALL}', key, n FROM (
            SELECT bucket, key, n,
                   row_number() OVER (PARTITION BY bucket ORDER BY n DESC, key) AS place
              FROM analytics_day WHERE kind = 'top' AND tenant_id <> '{ALL}') ranked
         WHERE place <= 10""",
]


def up(db: Any) -> None:
    for sql in STATEMENTS:
        db.execute(sql)
    row = db.execute(dialect.LAST_FEED_ID[dialect.of(db.conn)]).fetchone()
    db.execute("""INSERT INTO analytics_state (name, value) VALUES ('activities_cursor', ?)
                  ON CONFLICT (name) DO UPDATE SET value = excluded.value""",
               (int(row[0]) if row and row[0] is not None else 0,))

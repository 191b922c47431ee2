"""Analytics rollups (docs/analytics.md): counters per tenant, channel and time bucket, kept up
to date by the rollup job and on the delivery path, read by the analytics API and pages.

Activities cost their write path nothing: the rollup job counts them from the change feed
(:func:`count_activities`: the feed's ``a`` events after the job's cursor, joined to their
activities and grouped in SQL, in batches) — ``count``/``in`` or ``count``/``out`` in the
activity's channel's minute, and one more for its conversation in the day
(``conversation``/<id>, the busiest conversations). The cursor moves in the transaction that
adds the counts (compare-and-set: two runs at once cannot both count a batch), and the feed's
ids are handed out in commit order on SQLite and PostgreSQL (m0023), so every committed
activity is counted exactly once whichever process wrote it. The feed pruner keeps the events
the job has not counted yet. What the job has not counted yet (one run's worth) is counted at
read time from the same feed rows (:func:`pending`), so the figures are exact at every moment.

On the delivery path (in the same transaction as the change, so a rolled-back write counts
nothing and a committed one counts once):

* a delivery's outcome: ``count``/``sent|delivered|read|failed|skipped`` in the minute; the
  time it took from the previous step in a latency histogram of the hour
  (``latency``/``<stage>:<bucket index>``); every failed attempt's reason in the hour
  (``failure``/<reason>).

The rollup job (:func:`fold`, run by the scheduler, which only one process of a gateway runs)
sums the minutes of finished hours into hours and the hours of finished days into days. It
recomputes (never adds), so running it twice, or again over a bucket it already folded, gives
the same rows. It also drops minutes after two days and hours after two weeks (once folded).

Folded hours and days also hold two aggregate **levels** (tenant_id/channel_id ``*``): each
tenant's figures over all its channels (``<tenant>``/``*``) and the gateway's
(``*``/``*``), and each folded day the gateway's busiest conversations (``top``, ``*``/``*``).
A tenant-wide or gateway-wide report over 30 days thus reads a few hundred rows, whatever the
number of tenants and channels; and every read names its buckets (``bucket IN (…)``), so the
primary key ``(kind, bucket, tenant_id, …)`` seeks straight to the rows of one tenant.

All SQL here is plain (``INSERT … ON CONFLICT … DO UPDATE``, integer arithmetic) so that
PostgreSQL runs it as it is."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from . import dialect

MINUTE, HOUR, DAY = 60, 3600, 86400
TABLES = {MINUTE: "analytics_minute", HOUR: "analytics_hour", DAY: "analytics_day"}
KEEP = {MINUTE: 2 * DAY, HOUR: 14 * DAY, DAY: 400 * DAY}
SETTLE = 300  # seconds after a bucket ends before it is folded (late writes of slow requests)

COUNTS = ("in", "out", "sent", "delivered", "read", "failed", "skipped")
STAGES = ("sent", "delivered", "read")  # accepted → sent, sent → delivered, delivered → read
# Upper bounds (milliseconds) of the latency histogram's buckets; the last one is open.
LATENCY_BOUNDS = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
                  900_000, 3_600_000, 21_600_000, 86_400_000)
REASON_MAX = 120
TOP = 10  # conversations kept per channel and day once the day is folded

# The bench turns the write-path part off to measure what it costs (tests/bench/).
ENABLED = True

ALL = "*"  # tenant_id / channel_id of the aggregate levels' rows
CURSOR = "activities_cursor"  # the last feed id whose activity is counted (m0026)
BATCH = 20_000  # feed ids per counting statement
RUN_MAX = 400_000  # feed ids one run of the job counts at most (it continues on the next)
PENDING_MAX = 100_000  # feed ids a read counts itself at most (beyond: the job is behind)
IN_MAX = 800  # buckets named one by one at most (beyond, a range)


def epoch(text: str) -> int:
    """Unix seconds of an ISO-8601 timestamp as the store writes them."""
    return int(datetime.fromisoformat(text).timestamp())


def _bump(conn: sqlite3.Connection, span: int, tenant_id: str, channel_id: str, at: int,
          kind: str, key: str, n: int = 1) -> None:
    table = TABLES[span]
    conn.execute(
        f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (kind, bucket, tenant_id, channel_id, key)
            DO UPDATE SET n = {table}.n + excluded.n""",
        (tenant_id, channel_id, at - at % span, kind, key, n))


# -- activities, counted from the feed --------------------------------------------------------
def _minute(text: str) -> int:
    return int(datetime.fromisoformat(text + ":00+00:00").timestamp())


def _day(text: str) -> int:
    return int(datetime.fromisoformat(text + "T00:00:00+00:00").timestamp())


def _activity_counts(conn: sqlite3.Connection, lo: int, hi: int
                     ) -> tuple[list[tuple[str, str, int, str, int]],
                                list[tuple[str, str, int, str, int]]]:
    """The activities of the feed events ``lo < id <= hi`` (deleted ones are not counted),
    grouped: ``(tenant, channel, minute, in|out, n)`` and ``(tenant, conversation's channel,
    day, conversation, n)``. Timestamps are ISO-8601 UTC text, so a minute is the first 16
    characters (the same in SQLite and PostgreSQL). Nothing but the feed's id range selects
    (a tenant's filter would let the planner walk that tenant's every activity instead)."""
    params = [lo, hi]
    source = """FROM feed f JOIN activities a ON a.id = f.ref
                 JOIN conversations c ON c.id = a.conversation_id
                WHERE f.id > ? AND f.id <= ? AND f.kind = 'a'"""
    chan = "coalesce(a.source_channel_id, c.channel_id, '')"
    way = "CASE WHEN a.source_channel_id IS NULL THEN 'out' ELSE 'in' END"
    minutes = {}
    counts = []
    for tenant, channel, minute, key, n in conn.execute(
            f"""SELECT a.tenant_id, {chan}, substr(a.inserted_at, 1, 16), {way}, count(*)
                {source} GROUP BY a.tenant_id, {chan}, substr(a.inserted_at, 1, 16), {way}""",
            params):
        if minute not in minutes:
            minutes[minute] = _minute(minute)
        counts.append((tenant, channel, minutes[minute], key, int(n)))
    days = {}
    convs = []
    for tenant, channel, day, conv, n in conn.execute(
            f"""SELECT a.tenant_id, coalesce(c.channel_id, ''), substr(a.inserted_at, 1, 10),
                       a.conversation_id, count(*)
                {source} GROUP BY a.tenant_id, coalesce(c.channel_id, ''),
                                  substr(a.inserted_at, 1, 10), a.conversation_id""", params):
        if day not in days:
            days[day] = _day(day)
        convs.append((tenant, channel, days[day], conv, int(n)))
    return counts, convs


def _feed_end(conn: sqlite3.Connection) -> int:
    row = conn.execute(dialect.LAST_FEED_ID[dialect.of(conn)]).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def cursor(conn: sqlite3.Connection) -> int:
    """The last feed id whose activity the job has counted (the feed pruner keeps the rest)."""
    return _state(conn, CURSOR) or 0


def count_activities(conn: sqlite3.Connection, limit: int = RUN_MAX) -> tuple[int, bool]:
    """Count the activities of the feed events after the cursor (at most ``limit`` ids), in the
    caller's write transaction; returns how many feed ids were read and whether that was all of
    them. The cursor moves only if no other run moved it meanwhile (else ``RuntimeError``: the
    transaction must roll back)."""
    start = _state(conn, CURSOR)
    was = start or 0
    end = min(_feed_end(conn), was + limit)
    if end <= was:
        return 0, True
    for lo in range(was, end, BATCH):
        counts, convs = _activity_counts(conn, lo, min(lo + BATCH, end))
        _bump_many(conn, MINUTE, [(t, c, b, "count", k, n) for t, c, b, k, n in counts])
        _bump_many(conn, DAY, [(t, c, b, "conversation", k, n) for t, c, b, k, n in convs])
    if start is None:
        moved = conn.execute("INSERT INTO analytics_state (name, value) VALUES (?, ?) "
                             "ON CONFLICT (name) DO NOTHING", (CURSOR, end)).rowcount
    else:
        moved = conn.execute("UPDATE analytics_state SET value = ? WHERE name = ? AND value = ?",
                             (end, CURSOR, was)).rowcount
    if moved != 1:
        raise RuntimeError("analytics: another run moved the activity cursor")
    return end - was, end >= _feed_end(conn)


class Pending:
    """The activities the job has not counted yet, as a read sees them (:func:`pending`)."""

    def __init__(self, counts: list[tuple[str, str, int, str, int]],
                 convs: list[tuple[str, str, int, str, int]]) -> None:
        self.counts = counts
        self.convs = convs

    def of(self, tenant_id: str | None, channel_id: str | None
           ) -> tuple[list[tuple[str, str, int, str, int]], list[tuple[str, str, int, str, int]]]:
        def keep(row: tuple[str, str, int, str, int]) -> bool:
            return ((tenant_id is None or row[0] == tenant_id)
                    and (channel_id is None or row[1] == channel_id))
        return [r for r in self.counts if keep(r)], [r for r in self.convs if keep(r)]


def pending(conn: sqlite3.Connection) -> Pending:
    """What the job will count next (the feed events after its cursor, ``PENDING_MAX`` at
    most): at most one run's worth of activities when the job keeps up."""
    was = cursor(conn)
    end = min(_feed_end(conn), was + PENDING_MAX)
    if end <= was:
        return Pending([], [])
    return Pending(*_activity_counts(conn, was, end))


def _bump_many(conn: sqlite3.Connection, span: int,
               rows: list[tuple[str, str, int, str, str, int]]) -> None:
    if not rows:
        return
    table = TABLES[span]
    conn.executemany(
        f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (kind, bucket, tenant_id, channel_id, key)
            DO UPDATE SET n = {table}.n + excluded.n""",
        [(t, c, b - b % span, kind, k, n) for t, c, b, kind, k, n in rows])


def latency_index(ms: float) -> int:
    for i, bound in enumerate(LATENCY_BOUNDS):
        if ms <= bound:
            return i
    return len(LATENCY_BOUNDS)


def _ms(later: str | None, earlier: str | None) -> float | None:
    if not later or not earlier:
        return None
    try:
        delta = datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
    except ValueError:
        return None
    return max(0.0, delta.total_seconds() * 1000)


class Tally:
    """Outcome counts gathered over a batch of writes in one transaction (the delivery
    workers' outcomes), added by :meth:`flush` with one statement per table instead of two per
    outcome. Same rows, same transaction: a rolled-back batch counts nothing."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[int, str, str, int, str, str], int] = {}

    def add(self, span: int, tenant_id: str, channel_id: str, at: int, kind: str,
            key: str) -> None:
        k = (span, tenant_id, channel_id, at - at % span, kind, key)
        self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self, conn: sqlite3.Connection) -> None:
        by_span: dict[int, list[tuple[str, str, int, str, str, int]]] = {}
        for (span, tenant, channel, bucket, kind, key), n in self.counts.items():
            by_span.setdefault(span, []).append((tenant, channel, bucket, kind, key, n))
        for span, rows in by_span.items():
            _bump_many(conn, span, rows)
        self.counts.clear()


def outcome(conn: sqlite3.Connection, delivery: Any, status: str, now: str,
            tally: Tally | None = None) -> None:
    """A delivery reached ``status`` (``sent``, ``delivered``, ``read``, ``failed``,
    ``skipped``); for the first three, how long the step took goes in the hour's histogram.
    With ``tally`` the counts wait in it for its :meth:`Tally.flush` (same transaction)."""
    if not ENABLED:
        return
    at = epoch(now)
    tenant, channel = delivery.tenant_id, delivery.channel_id
    if tally is None:
        _bump(conn, MINUTE, tenant, channel, at, "count", status)
    else:
        tally.add(MINUTE, tenant, channel, at, "count", status)
    took = None
    if status == "sent":
        took = _ms(delivery.sent_at, delivery.inserted_at)
    elif status == "delivered":
        took = _ms(delivery.delivered_at, delivery.sent_at)
    elif status == "read":
        took = _ms(delivery.read_at, delivery.delivered_at or delivery.sent_at)
    if took is not None:
        key = f"{status}:{latency_index(took)}"
        if tally is None:
            _bump(conn, HOUR, tenant, channel, at, "latency", key)
        else:
            tally.add(HOUR, tenant, channel, at, "latency", key)


_NOISE = re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4,}){1,4}|\b[0-9a-fA-F]{16,}\b")


def reason_of(error: str | None) -> str:
    """A failure reason as ranked: ids and hashes masked, whitespace collapsed, cut short."""
    text = " ".join(_NOISE.sub("…", error or "unknown").split())
    return text[:REASON_MAX] or "unknown"


def failure(conn: sqlite3.Connection, delivery: Any, error: str | None, now: str) -> None:
    """A failed attempt (or a ``failed`` receipt), by reason, in the hour."""
    if not ENABLED:
        return
    _bump(conn, HOUR, delivery.tenant_id, delivery.channel_id, epoch(now), "failure",
          reason_of(error))


# -- the rollup job ---------------------------------------------------------------------------
def _state(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT value FROM analytics_state WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else None


def _set_state(conn: sqlite3.Connection, name: str, value: int) -> None:
    conn.execute("""INSERT INTO analytics_state (name, value) VALUES (?, ?)
                    ON CONFLICT (name) DO UPDATE SET value = excluded.value""", (name, value))


def watermarks(conn: sqlite3.Connection) -> dict[int, int]:
    """``span → t``: buckets of ``span`` before ``t`` are complete (folded); 0 when never."""
    return {span: _state(conn, f"folded:{span}") or 0 for span in (HOUR, DAY)}


def _levels(conn: sqlite3.Connection, table: str, start: int, end: int,
            kinds: tuple[str, ...]) -> None:
    """Recompute the tenant-wide (``<tenant>``/``*``) and gateway-wide (``*``/``*``) rows of
    ``kinds`` in ``[start, end)`` from the channels' rows."""
    marks = ", ".join("?" * len(kinds))
    conn.execute(f"""DELETE FROM {table} WHERE bucket >= ? AND bucket < ? AND kind IN ({marks})
                       AND channel_id = '{ALL}'""", (start, end, *kinds))
    conn.execute(
        f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
            SELECT tenant_id, '{ALL}', bucket, kind, key, sum(n) FROM {table}
             WHERE bucket >= ? AND bucket < ? AND kind IN ({marks}) AND channel_id <> '{ALL}'
             GROUP BY tenant_id, bucket, kind, key""", (start, end, *kinds))
    conn.execute(
        f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
            SELECT '{ALL}', '{ALL}', bucket, kind, key, sum(n) FROM {table}
             WHERE bucket >= ? AND bucket < ? AND kind IN ({marks}) AND tenant_id <> '{ALL}'
               AND channel_id = '{ALL}'
             GROUP BY bucket, kind, key""", (start, end, *kinds))


def _fold(conn: sqlite3.Connection, src: int, dst: int, kinds: tuple[str, ...],
          now: int) -> int:
    """Recompute the ``dst`` buckets that ended at least SETTLE ago from the ``src`` rows;
    returns the new watermark. Shortly after the watermark moved, from one bucket before it: a
    write that was late for that bucket (a request whose time was read before it waited for the
    write lock, seconds at most) is counted on the next run. Source rows are dropped only once
    folded. Hours get their levels here (from the channels' rows, the hours' own latency and
    failure rows included); days sum the hours' level rows like the others."""
    done = (now - SETTLE) // dst * dst
    mark = _state(conn, f"folded:{dst}")
    if mark is None:  # the first run: from the oldest row there is
        first = conn.execute(f"SELECT min(bucket) FROM {TABLES[src]}").fetchone()[0]
        start = int(first) if first is not None else done
    elif now - SETTLE - mark < SETTLE:
        start = mark - dst  # just after the last bucket was folded: refold it (late writes)
    else:
        start = mark
    start -= start % dst
    if start >= done:
        return mark or 0
    marks = ", ".join("?" * len(kinds))
    table = TABLES[dst]
    # Delete then insert: a bucket whose source rows all went (never happens but by hand) is
    # not left behind with old sums. ``WHERE true`` keeps SQLite's parser from reading ON
    # CONFLICT as a join.
    conn.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ? AND kind IN ({marks})",
                 (start, done, *kinds))
    conn.execute(
        f"""INSERT INTO {table} (tenant_id, channel_id, bucket, kind, key, n)
            SELECT tenant_id, channel_id, bucket - bucket % {dst}, kind, key, sum(n)
              FROM {TABLES[src]}
             WHERE bucket >= ? AND bucket < ? AND kind IN ({marks})
             GROUP BY tenant_id, channel_id, bucket - bucket % {dst}, kind, key""",
        (start, done, *kinds))
    if dst == HOUR:
        _levels(conn, table, start, done, LEVELED)
    _set_state(conn, f"folded:{dst}", done)
    return done


LEVELED = ("count", "latency", "failure")


def _top(conn: sqlite3.Connection, start: int, done: int) -> None:
    """Each channel's ``TOP`` busiest conversations of each day in ``[start, done)`` as
    ``top`` rows (recomputed), from the day's ``conversation`` rows — which then need not be
    kept: a 30-day ranking reads 20 rows per channel and day, not one per conversation — and
    the gateway's ``TOP`` of the day (``*``/``*``), which are among the channels' tops."""
    conn.execute("DELETE FROM analytics_day WHERE kind = 'top' AND bucket >= ? AND bucket < ?",
                 (start, done))
    conn.execute(
        f"""INSERT INTO analytics_day (kind, bucket, tenant_id, channel_id, key, n)
            SELECT 'top', bucket, tenant_id, channel_id, key, n FROM (
                SELECT bucket, tenant_id, channel_id, key, n,
                       row_number() OVER (PARTITION BY bucket, tenant_id, channel_id
                                          ORDER BY n DESC, key) AS place
                  FROM analytics_day
                 WHERE kind = 'conversation' AND bucket >= ? AND bucket < ?) ranked
             WHERE place <= {TOP}""", (start, done))
    top_levels(conn, start, done)


def top_levels(conn: sqlite3.Connection, start: int, done: int) -> None:
    """The gateway's busiest conversations of each day in ``[start, done)`` from the channels'
    ``top`` rows (recomputed)."""
    conn.execute(f"""DELETE FROM analytics_day WHERE kind = 'top' AND bucket >= ?
                       AND bucket < ? AND tenant_id = '{ALL}'""", (start, done))
    conn.execute(
        f"""INSERT INTO analytics_day (kind, bucket, tenant_id, channel_id, key, n)
            SELECT 'top', bucket, '{ALL}', '{ALL}', key, n FROM (
                SELECT bucket, key, n,
                       row_number() OVER (PARTITION BY bucket ORDER BY n DESC, key) AS place
                  FROM analytics_day
                 WHERE kind = 'top' AND bucket >= ? AND bucket < ? AND tenant_id <> '{ALL}'
            ) ranked
             WHERE place <= {TOP}""", (start, done))


def fold(conn: sqlite3.Connection, now: int) -> dict[str, int]:
    """One run of the rollup job at Unix time ``now`` (one transaction): the activities after
    the cursor counted, then — once they all are — minutes → hours, hours → days, each day's
    busiest conversations, then old buckets dropped. Idempotent."""
    counted, complete = count_activities(conn)
    if not complete:  # far behind: count on, fold on a later run
        marks = watermarks(conn)
        return {"counted": counted, "hours_until": marks[HOUR], "days_until": marks[DAY],
                "dropped": 0}
    hour = _fold(conn, MINUTE, HOUR, ("count",), now)
    # Days are folded only up to what the hours hold complete.
    mark = _state(conn, f"folded:{DAY}")
    day = _fold(conn, HOUR, DAY, LEVELED, min(now, hour + SETTLE))
    if day:
        _top(conn, (mark - DAY) if mark is not None else 0, day)
        # A day's own rows are kept while it may still be refolded (one day), then its top.
        conn.execute("DELETE FROM analytics_day WHERE kind = 'conversation' AND bucket < ?",
                     (min(day - DAY, now - 2 * DAY),))
    dropped = 0
    # A bucket goes when it is past its retention and folded into the next table up (with
    # one bucket's margin: the next run refolds the last one).
    for span, until in ((MINUTE, hour - HOUR), (HOUR, day - DAY), (DAY, now)):
        dropped += conn.execute(f"DELETE FROM {TABLES[span]} WHERE bucket < ?",
                                (min(now - KEEP[span], until),)).rowcount
    return {"counted": counted, "hours_until": hour, "days_until": day, "dropped": dropped}


# -- reading ----------------------------------------------------------------------------------
Part = tuple[int, int, int, bool]  # (span, from, to, with levels)


def _parts(conn: sqlite3.Connection, start: int, end: int, step: int) -> list[Part]:
    """``(span, from, to, leveled)`` of the tables that hold ``[start, end)`` at ``step``
    resolution: the coarsest folded table for what it holds complete (with its levels), finer
    ones for the rest."""
    marks = watermarks(conn)
    parts: list[Part] = []
    lo = start
    for span in (DAY, HOUR):
        if step >= span and lo < end:
            hi = min(end, marks[span])
            if hi > lo:
                parts.append((span, lo, hi, True))
                lo = hi
    if lo < end:
        parts.append((MINUTE, lo, end, False))
    return parts


def _buckets(span: int, lo: int, hi: int) -> tuple[str, list[Any]]:
    """``bucket`` in ``[lo, hi)``: the buckets by name when there are few (an index seek each,
    straight to one tenant's rows), else the range."""
    first = lo + (-lo) % span
    if (hi - first) // span <= IN_MAX:
        named = list(range(first, hi, span))
        if not named:
            return "bucket IN (NULL)", []
        return f"bucket IN ({', '.join('?' * len(named))})", named
    return "bucket >= ? AND bucket < ?", [lo, hi]


def _where(tenant_id: str | None, channel_id: str | None, leveled: bool = False,
           by_channel: bool = False) -> tuple[str, list[Any]]:
    """The rows of a scope: a channel's own; else, where the levels are (folded hours and
    days) and the figures are not wanted per channel, the tenant's or the gateway's level
    row; else the channels' rows (never the levels', which would count twice)."""
    if channel_id:
        if tenant_id:
            return " AND tenant_id = ? AND channel_id = ?", [tenant_id, channel_id]
        return " AND channel_id = ?", [channel_id]
    if leveled and not by_channel:
        return f" AND tenant_id = ? AND channel_id = '{ALL}'", [tenant_id or ALL]
    if tenant_id:
        return f" AND tenant_id = ? AND channel_id <> '{ALL}'", [tenant_id]
    return f" AND channel_id <> '{ALL}'", []


def sums(conn: sqlite3.Connection, kind: str, start: int, end: int, step: int, *,
         tenant_id: str | None = None, channel_id: str | None = None,
         spans: Iterable[Part] | None = None, by_channel: bool = False,
         extra: Pending | None = None) -> dict[tuple[Any, ...], int]:
    """``(bucket start, [channel,] key) → n`` of ``kind`` over ``[start, end)`` in buckets of
    ``step`` seconds (``step`` 0: one bucket, ``start``); with ``extra``, the activities the
    job has not counted yet are added."""
    out: dict[tuple[Any, ...], int] = {}
    select = f"bucket - bucket % {step}" if step else str(int(start))
    chan = "channel_id, " if by_channel else ""
    group = f"bucket - bucket % {step}, " if step else ""
    for span, lo, hi, leveled in spans if spans is not None else _parts(conn, start, end,
                                                                        step or DAY):
        where, params = _where(tenant_id, channel_id, leveled, by_channel)
        which, bparams = _buckets(span, lo, hi)
        rows = conn.execute(
            f"""SELECT {select}, {chan}key, sum(n) FROM {TABLES[span]}
                 WHERE kind = ? AND {which}{where}
                 GROUP BY {group}{chan}key""",
            (kind, *bparams, *params)).fetchall()
        for row in rows:
            k = tuple(row[:-1])
            out[k] = out.get(k, 0) + int(row[-1])
    if extra is not None and kind == "count":
        for _, chan_id, t, key, n in extra.of(tenant_id, channel_id)[0]:
            if start <= t < end:
                b = t - t % step if step else int(start)
                k = (b, chan_id, key) if by_channel else (b, key)
                out[k] = out.get(k, 0) + n
    return out


def _covering(start: int, end: int, span: int) -> tuple[int, int]:
    """The whole buckets of ``span`` that overlap ``[start, end)``."""
    return start - start % span, end if end % span == 0 else end - end % span + span


def percentiles(histogram: dict[int, int], qs: tuple[float, ...] = (0.5, 0.9, 0.99)
                ) -> dict[str, float | None]:
    """Percentiles (milliseconds, each the upper bound of the bucket it falls in) of a latency
    histogram ``{bucket index: n}``."""
    total = sum(histogram.values())
    out: dict[str, float | None] = {}
    for q in qs:
        name = f"p{round(q * 100):d}"
        if not total:
            out[name] = None
            continue
        need, seen = q * total, 0
        for i in sorted(histogram):
            seen += histogram[i]
            if seen >= need:
                out[name] = float(LATENCY_BOUNDS[min(i, len(LATENCY_BOUNDS) - 1)])
                break
    return out


def _busiest(conn: sqlite3.Connection, dlo: int, dhi: int, tenant_id: str | None,
             channel_id: str | None, top: int, extra: Pending) -> list[tuple[str, Any, Any, int]]:
    """``(conversation, channel, tenant, activities)`` of the ``top`` busiest conversations of
    the days ``[dlo, dhi)``: folded days by their ``top`` rows (the gateway's own level when the
    whole gateway is asked), the others by all their ``conversation`` rows, and what the job has
    not counted yet."""
    if top <= 0:
        return []
    split = max(dlo, min(dhi, watermarks(conn)[DAY]))
    _, convs = extra.of(tenant_id, channel_id)
    totals: dict[str, int] = {}
    where: dict[str, tuple[Any, Any]] = {}
    branches: list[str] = []
    params: list[Any] = []
    for kind, lo, hi in (("top", dlo, split), ("conversation", split, dhi)):
        if hi <= lo:
            continue
        which, bparams = _buckets(DAY, lo, hi)
        cparams: list[Any] = []
        if kind == "top" and not tenant_id and not channel_id:
            cols, cond = "NULL AS chan, NULL AS tenant", f" AND tenant_id = '{ALL}' AND channel_id = '{ALL}'"
        else:
            cols = "channel_id AS chan, tenant_id AS tenant"
            cond, cparams = _where(tenant_id, channel_id, False, True)
        branches.append(f"SELECT key, {cols}, n FROM analytics_day WHERE kind = ? AND {which}{cond}")
        params += [kind, *bparams, *cparams]
    if branches:
        union = " UNION ALL ".join(branches)
        for key, chan, tenant, n in conn.execute(
                f"""SELECT key, max(chan), max(tenant), sum(n) AS total
                      FROM ({union}) days
                     GROUP BY key ORDER BY total DESC, key LIMIT ?""",
                (*params, top + len({c[3] for c in convs}))):
            totals[key] = int(n)
            if chan is not None:
                where[key] = (chan, tenant)
    for tenant, chan, day, conv, n in convs:
        if dlo <= day < dhi:
            totals[conv] = totals.get(conv, 0) + n
            where[conv] = (chan, tenant)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    unknown = [k for k, _ in ranked if k not in where]
    if unknown:
        marks = ", ".join("?" * len(unknown))
        for cid, chan, tenant in conn.execute(
                f"SELECT id, channel_id, tenant_id FROM conversations WHERE id IN ({marks})",
                unknown):
            where[cid] = (chan or "", tenant)
    return [(k, *where.get(k, ("", None)), n) for k, n in ranked]


def report(conn: sqlite3.Connection, start: int, end: int, step: int, *,
           tenant_id: str | None = None, channel_id: str | None = None,
           top: int = 10) -> dict[str, Any]:
    """Everything the analytics API and pages show for ``[start, end)``: series in buckets of
    ``step`` seconds, latency percentiles, failure reasons and busiest conversations (over the
    whole hours, or days, that overlap the range), per-channel totals."""
    if channel_id and not tenant_id:
        row = conn.execute("SELECT tenant_id FROM channels WHERE id = ?", (channel_id,)).fetchone()
        tenant_id = row[0] if row else None
    extra = pending(conn)
    buckets = list(range(start - start % step, end, step))
    parts = _parts(conn, start, end, step)
    counts = sums(conn, "count", start, end, step, tenant_id=tenant_id, channel_id=channel_id,
                  spans=parts, extra=extra)
    per_channel = sums(conn, "count", start, end, 0, tenant_id=tenant_id,
                       channel_id=channel_id, by_channel=True, spans=parts, extra=extra)
    series = {key: [counts.get((b, key), 0) for b in buckets] for key in COUNTS}

    # Latency and failures are kept per hour (and day): the whole hours overlapping the range,
    # or the whole days beyond two days.
    unit = DAY if end - start > 2 * DAY else HOUR
    lo, hi = _covering(start, end, unit)
    coarse = [(span if span != MINUTE else HOUR, a, b, leveled)
              for span, a, b, leveled in _parts(conn, lo, hi, unit)]
    lat = sums(conn, "latency", lo, hi, 0, tenant_id=tenant_id, channel_id=channel_id,
               spans=coarse)
    hist: dict[str, dict[int, int]] = {s: {} for s in STAGES}
    for (_, key), n in lat.items():
        stage, _, idx = key.partition(":")
        if stage in hist and idx.isdigit():
            hist[stage][int(idx)] = hist[stage].get(int(idx), 0) + n
    latency = {s: {"count": sum(h.values()), **percentiles(h)} for s, h in hist.items()}
    fails = sums(conn, "failure", lo, hi, 0, tenant_id=tenant_id, channel_id=channel_id,
                 spans=coarse)
    failures = sorted(((k[1], n) for k, n in fails.items()), key=lambda x: (-x[1], x[0]))[:top]

    dlo, dhi = _covering(start, end, DAY)
    busiest = _busiest(conn, dlo, dhi, tenant_id, channel_id, top, extra)

    channels: dict[str, dict[str, int]] = {}
    for (_, chan, key), n in per_channel.items():
        if chan:
            row = channels.setdefault(chan, dict.fromkeys(COUNTS, 0))
            row[key] = row.get(key, 0) + n
    return {
        "buckets": buckets, "step": step,
        "activities": {"in": series["in"], "out": series["out"]},
        "deliveries": {k: series[k] for k in ("sent", "delivered", "read", "failed", "skipped")},
        "latency": latency,
        "failures": [{"reason": r, "count": n} for r, n in failures],
        "conversations": [{"conversation_id": r[0], "channel_id": r[1] or None,
                           "tenant_id": r[2], "activities": int(r[3])} for r in busiest],
        "channels": channels,
    }


def activity_minutes(conn: sqlite3.Connection, tenant_id: str, since: int) -> dict[int, int]:
    """The tenant's activities (in and out) per minute from ``since``, uncounted ones too."""
    rows = conn.execute(
        """SELECT bucket, sum(n) FROM analytics_minute
            WHERE tenant_id = ? AND bucket >= ? AND kind = 'count' AND key IN ('in', 'out')
            GROUP BY bucket""", (tenant_id, since)).fetchall()
    out = {int(r[0]): int(r[1]) for r in rows}
    for _, _, t, _, n in pending(conn).of(tenant_id, None)[0]:
        if t >= since:
            out[t - t % MINUTE] = out.get(t - t % MINUTE, 0) + n
    return out


def health(conn: sqlite3.Connection, start_iso: str, end_iso: str, *,
           tenant_id: str | None = None, channel_id: str | None = None,
           limit: int = 500) -> dict[str, list[dict[str, Any]]]:
    """Each external channel's health checks in the range (the health job's history), the
    latest ``limit`` per channel, oldest first."""
    sql = """SELECT h.channel_id, h.status, h.failure_rate, h.checked_at
               FROM channel_health_checks h JOIN channels c ON c.id = h.channel_id
              WHERE h.checked_at >= ? AND h.checked_at < ?"""
    params: list[Any] = [start_iso, end_iso]
    if tenant_id:
        sql += " AND c.tenant_id = ?"
        params.append(tenant_id)
    if channel_id:
        sql += " AND h.channel_id = ?"
        params.append(channel_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(sql + " ORDER BY h.checked_at", params):
        out.setdefault(row[0], []).append(
            {"at": row[3], "status": row[1], "failure_rate": row[2]})
    return {k: v[-limit:] for k, v in out.items()}


# -- SLA targets (docs/admin.md#sla-tiers) ----------------------------------------------------
MIN_DELIVERIES = 20  # an hour with fewer outcomes on a channel says nothing about its SLA


def breaches(conn: sqlite3.Connection, hour: int) -> list[dict[str, Any]]:
    """Each channel of a tenant on a tier with SLA targets that missed one in the hour starting
    at ``hour`` (delivery success rate below target, or p90 of accepted → sent above it), with
    at least ``MIN_DELIVERIES`` outcomes; read from the folded hour."""
    out: list[dict[str, Any]] = []
    tenants = conn.execute(
        """SELECT tt.tenant_id, t.name, t.target_success_rate, t.target_sent_p90_ms,
                  te.alert_webhook_url
             FROM tenant_tiers tt JOIN sla_tiers t ON t.id = tt.tier_id
             JOIN tenants te ON te.id = tt.tenant_id
            WHERE t.target_success_rate IS NOT NULL OR t.target_sent_p90_ms IS NOT NULL"""
    ).fetchall()
    for tenant_id, tier, rate_target, p90_target, url in tenants:
        counts = sums(conn, "count", hour, hour + HOUR, 0, tenant_id=tenant_id,
                      by_channel=True, spans=[(HOUR, hour, hour + HOUR, True)])
        lat = sums(conn, "latency", hour, hour + HOUR, 0, tenant_id=tenant_id,
                   by_channel=True, spans=[(HOUR, hour, hour + HOUR, True)])
        for chan in sorted({k[1] for k in counts}):
            sent = counts.get((hour, chan, "sent"), 0)
            failed = counts.get((hour, chan, "failed"), 0)
            if sent + failed < MIN_DELIVERIES:
                continue
            hist = {int(k[2].split(":")[1]): n for k, n in lat.items()
                    if k[1] == chan and k[2].startswith("sent:")}
            rate = sent / (sent + failed)
            p90 = percentiles(hist, (0.9,))["p90"]
            missed = []
            if rate_target is not None and rate < rate_target:
                missed.append("success_rate")
            if p90_target is not None and p90 is not None and p90 > p90_target:
                missed.append("sent_p90_ms")
            if missed:
                out.append({"tenant_id": tenant_id, "channel_id": chan, "tier": tier,
                            "url": url, "hour": hour, "deliveries": sent + failed,
                            "success_rate": round(rate, 4), "target_success_rate": rate_target,
                            "sent_p90_ms": p90, "target_sent_p90_ms": p90_target,
                            "missed": missed})
    return out


def unchecked_hours(conn: sqlite3.Connection, keep: int = 6) -> list[int]:
    """The folded hours not yet checked against the SLA targets (at most the last ``keep``),
    marked checked: call it in the transaction that raises their alerts."""
    until = watermarks(conn)[HOUR]
    last = _state(conn, "sla_checked")
    start = max(last if last is not None else until - HOUR, until - keep * HOUR)
    if until:
        _set_state(conn, "sla_checked", until)
    return list(range(start, until, HOUR)) if until else []

"""Analytics rollups (docs/analytics.md): counters per tenant, channel and time bucket, kept up
to date on the write path and by the rollup job, read by the analytics API and pages.

On the write path (in the same transaction as the change, so a rolled-back write counts
nothing and a committed one counts once):

* an activity: ``count``/``in`` or ``count``/``out`` in its channel's minute, and one more for
  its conversation in the day (``conversation``/<id>, the busiest conversations);
* a delivery's outcome: ``count``/``sent|delivered|read|failed|skipped`` in the minute; the
  time it took from the previous step in a latency histogram of the hour
  (``latency``/``<stage>:<bucket index>``); every failed attempt's reason in the hour
  (``failure``/<reason>).

The rollup job (:func:`fold`, run by the scheduler, which only one process of a gateway runs)
sums the minutes of finished hours into hours and the hours of finished days into days. It
recomputes (never adds), so running it twice, or again over a bucket it already folded, gives
the same rows. It also drops minutes after two days and hours after two weeks (once folded).

All SQL here is plain (``INSERT … ON CONFLICT … DO UPDATE``, integer arithmetic) so that
PostgreSQL runs it as it is."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

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


# -- the write path ---------------------------------------------------------------------------
def activity(conn: sqlite3.Connection, tenant_id: str, conversation_id: str,
             conversation_channel: str, source_channel: str | None, now: str) -> None:
    """An activity was stored: ``in`` on the channel it came in on, or ``out`` on its
    conversation's channel; and one more for the conversation (on the conversation's channel)."""
    if not ENABLED:
        return
    at = epoch(now)
    _bump(conn, MINUTE, tenant_id, source_channel or conversation_channel, at, "count",
          "in" if source_channel else "out")
    _bump(conn, DAY, tenant_id, conversation_channel, at, "conversation", conversation_id)


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


def outcome(conn: sqlite3.Connection, delivery: Any, status: str, now: str) -> None:
    """A delivery reached ``status`` (``sent``, ``delivered``, ``read``, ``failed``,
    ``skipped``); for the first three, how long the step took goes in the hour's histogram."""
    if not ENABLED:
        return
    at = epoch(now)
    tenant, channel = delivery.tenant_id, delivery.channel_id
    _bump(conn, MINUTE, tenant, channel, at, "count", status)
    took = None
    if status == "sent":
        took = _ms(delivery.sent_at, delivery.inserted_at)
    elif status == "delivered":
        took = _ms(delivery.delivered_at, delivery.sent_at)
    elif status == "read":
        took = _ms(delivery.read_at, delivery.delivered_at or delivery.sent_at)
    if took is not None:
        _bump(conn, HOUR, tenant, channel, at, "latency", f"{status}:{latency_index(took)}")


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


def _fold(conn: sqlite3.Connection, src: int, dst: int, kinds: tuple[str, ...],
          now: int) -> int:
    """Recompute the ``dst`` buckets that ended at least SETTLE ago from the ``src`` rows;
    returns the new watermark. Shortly after the watermark moved, from one bucket before it: a
    write that was late for that bucket (a request whose time was read before it waited for the
    write lock, seconds at most) is counted on the next run. Source rows are dropped only once
    folded."""
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
    _set_state(conn, f"folded:{dst}", done)
    return done


def _top(conn: sqlite3.Connection, start: int, done: int) -> None:
    """Each channel's ``TOP`` busiest conversations of each day in ``[start, done)`` as
    ``top`` rows (recomputed), from the day's ``conversation`` rows — which then need not be
    kept: a 30-day ranking reads 20 rows per channel and day, not one per conversation."""
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


def fold(conn: sqlite3.Connection, now: int) -> dict[str, int]:
    """One run of the rollup job at Unix time ``now`` (one transaction): minutes → hours,
    hours → days, each day's busiest conversations, then old buckets dropped. Idempotent."""
    hour = _fold(conn, MINUTE, HOUR, ("count",), now)
    # Days are folded only up to what the hours hold complete.
    mark = _state(conn, f"folded:{DAY}")
    day = _fold(conn, HOUR, DAY, ("count", "latency", "failure"), min(now, hour + SETTLE))
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
    return {"hours_until": hour, "days_until": day, "dropped": dropped}


# -- reading ----------------------------------------------------------------------------------
def _parts(conn: sqlite3.Connection, start: int, end: int, step: int
           ) -> list[tuple[int, int, int]]:
    """``(span, from, to)`` of the tables that hold ``[start, end)`` at ``step`` resolution:
    the coarsest folded table for what it holds complete, finer ones for the rest."""
    marks = watermarks(conn)
    parts: list[tuple[int, int, int]] = []
    lo = start
    for span in (DAY, HOUR):
        if step >= span and lo < end:
            hi = min(end, marks[span])
            if hi > lo:
                parts.append((span, lo, hi))
                lo = hi
    if lo < end:
        parts.append((MINUTE, lo, end))
    return parts


def _where(tenant_id: str | None, channel_id: str | None) -> tuple[str, list[Any]]:
    sql, params = "", []
    if tenant_id:
        sql += " AND tenant_id = ?"
        params.append(tenant_id)
    if channel_id:
        sql += " AND channel_id = ?"
        params.append(channel_id)
    return sql, params


def sums(conn: sqlite3.Connection, kind: str, start: int, end: int, step: int, *,
         tenant_id: str | None = None, channel_id: str | None = None,
         spans: Iterable[tuple[int, int, int]] | None = None,
         by_channel: bool = False) -> dict[tuple[Any, ...], int]:
    """``(bucket start, [channel,] key) → n`` of ``kind`` over ``[start, end)`` in buckets of
    ``step`` seconds (``step`` 0: one bucket, ``start``)."""
    where, params = _where(tenant_id, channel_id)
    out: dict[tuple[Any, ...], int] = {}
    select = f"bucket - bucket % {step}" if step else str(int(start))
    chan = "channel_id, " if by_channel else ""
    group = f"bucket - bucket % {step}, " if step else ""
    for span, lo, hi in spans if spans is not None else _parts(conn, start, end, step or DAY):
        rows = conn.execute(
            f"""SELECT {select}, {chan}key, sum(n) FROM {TABLES[span]}
                 WHERE kind = ? AND bucket >= ? AND bucket < ?{where}
                 GROUP BY {group}{chan}key""",
            (kind, lo, hi, *params)).fetchall()
        for row in rows:
            k = tuple(row[:-1])
            out[k] = out.get(k, 0) + int(row[-1])
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


def report(conn: sqlite3.Connection, start: int, end: int, step: int, *,
           tenant_id: str | None = None, channel_id: str | None = None,
           top: int = 10) -> dict[str, Any]:
    """Everything the analytics API and pages show for ``[start, end)``: series in buckets of
    ``step`` seconds, latency percentiles, failure reasons and busiest conversations (over the
    whole hours, or days, that overlap the range), per-channel totals."""
    buckets = list(range(start - start % step, end, step))
    counts = sums(conn, "count", start, end, step, tenant_id=tenant_id, channel_id=channel_id)
    per_channel = sums(conn, "count", start, end, 0, tenant_id=tenant_id,
                       channel_id=channel_id, by_channel=True,
                       spans=_parts(conn, start, end, step))
    series = {key: [counts.get((b, key), 0) for b in buckets] for key in COUNTS}

    # Latency and failures are kept per hour (and day): the whole hours overlapping the range,
    # or the whole days beyond two days.
    unit = DAY if end - start > 2 * DAY else HOUR
    lo, hi = _covering(start, end, unit)
    coarse = [(span if span != MINUTE else HOUR, a, b) for span, a, b in _parts(conn, lo, hi, unit)]
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
    where, params = _where(tenant_id, channel_id)
    # Folded days by their top conversations, the others by all of theirs.
    split = max(dlo, min(dhi, watermarks(conn)[DAY]))
    busiest = conn.execute(
        f"""SELECT key, channel_id, tenant_id, sum(n) AS total FROM analytics_day
             WHERE ((kind = 'top' AND bucket >= ? AND bucket < ?)
                    OR (kind = 'conversation' AND bucket >= ? AND bucket < ?)){where}
             GROUP BY key, channel_id, tenant_id ORDER BY total DESC, key LIMIT ?""",
        (dlo, split, split, dhi, *params, top)).fetchall()

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
                      by_channel=True, spans=[(HOUR, hour, hour + HOUR)])
        lat = sums(conn, "latency", hour, hour + HOUR, 0, tenant_id=tenant_id,
                   by_channel=True, spans=[(HOUR, hour, hour + HOUR)])
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

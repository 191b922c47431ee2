"""SQLite and PostgreSQL: every difference between the two dialects, in one place.

The store's functions are written once, in SQLite's SQL (the embedded default), and run
unchanged on SQLite. On PostgreSQL each statement passes once through :func:`translate`
(cached), which rewrites the few constructs the two spell differently:

============================  ==============================  ===================================
what                          SQLite                          PostgreSQL
============================  ==============================  ===================================
placeholders                  ``?``                           ``%s`` (and a literal ``%`` → ``%%``)
JSON field                    ``json_extract(c, '$.k')``      ``(c::jsonb ->> 'k')``
JSON merge                    ``json_patch(c, ?)``            ``(c::jsonb || ?::jsonb)::text``
JSON object                   ``json_object(…)``              ``json_build_object(…)::text``
random token                  ``lower(hex(randomblob(16)))``  ``replace(gen_random_uuid()::text,…)``
now, as stored                ``strftime('%Y-%m-%dT%H:%M:%fZ')``  ``to_char(now() at time zone 'UTC', …)``
case-blind ``LIKE``           ``LIKE`` (ASCII)                ``ILIKE``
two-argument ``max``/``min``  ``max(a, b)``                    ``greatest(a, b)`` / ``least``
``IS`` a value                ``a IS ?``, ``a IS NOT ?``      ``IS [NOT] DISTINCT FROM``
claims                        (one writer: nothing to skip)   ``/*skip_locked*/`` → ``FOR UPDATE SKIP LOCKED``
============================  ==============================  ===================================

Upserts (``INSERT … ON CONFLICT … DO UPDATE/NOTHING``) and ``RETURNING`` are written the way
both accept. Timestamps are ISO-8601 UTC text in both (they sort as text), JSON columns are
text in both (``store.models`` decodes them).

The schema is made by the same numbered migrations (``store.migrations``): on PostgreSQL each
DDL statement passes through :func:`translate_ddl` — ``STRICT`` dropped, ``INTEGER PRIMARY KEY
[AUTOINCREMENT]`` → an identity column, ``INTEGER`` → ``BIGINT``, ``REAL`` → ``DOUBLE
PRECISION``, ``TEXT COLLATE NOCASE`` → ``CITEXT``, ``WITHOUT ROWID`` dropped, SQLite's one-statement triggers → a PL/pgSQL
function and its trigger — and a CHECK is widened with ``ALTER TABLE … DROP/ADD CONSTRAINT``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


def of(conn: Any) -> str:
    """The dialect of a connection: ``postgresql`` for the store's PostgreSQL connections
    (:class:`store.pg.PgConnection`), ``sqlite`` for a ``sqlite3.Connection``."""
    return getattr(conn, "dialect", SQLITE)


def is_postgresql(url: str | None) -> bool:
    """A database URL that names PostgreSQL (``postgresql://…`` or ``postgres://…``)."""
    return bool(url) and str(url).split(":", 1)[0].lower() in ("postgresql", "postgres")


# -- statements ------------------------------------------------------------------------------

_NOW_SQLITE = "strftime('%Y-%m-%dT%H:%M:%fZ')"
_NOW_PG = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*'\$\.(\w+)'\s*\)"), r"(\1::jsonb ->> '\2')"),
    (re.compile(r"json_patch\(\s*([\w.]+)\s*,\s*\?\s*\)"), r"(\1::jsonb || ?::jsonb)::text"),
    (re.compile(r"lower\(hex\(randomblob\(16\)\)\)"), "replace(gen_random_uuid()::text, '-', '')"),
    (re.compile(r"\?\s*\|\|"), "?::text ||"),
    (re.compile(r"/\*skip_locked\*/"), "FOR UPDATE SKIP LOCKED"),
    (re.compile(r"\bIS\s+NOT\s+\?"), "IS DISTINCT FROM ?"),
    (re.compile(r"\bIS\s+\?"), "IS NOT DISTINCT FROM ?"),
    (re.compile(r"\bNOT\s+LIKE\b", re.I), "NOT ILIKE"),
    (re.compile(r"(?<!NOT )\bLIKE\b"), "ILIKE"),
]
_JSON_OBJECT = re.compile(r"json_object\(([^()]*)\)")
_QUOTED = re.compile(r"('(?:[^']|'')*')")


_MINMAX = re.compile(r"\b(max|min)\(", re.I)


def _scalar_minmax(sql: str) -> str:
    """SQLite's two-argument ``max(a, b)``/``min(a, b)`` as ``greatest``/``least`` (the
    one-argument aggregates stay)."""
    out, pos = [], 0
    for m in _MINMAX.finditer(sql):
        depth, i, comma = 1, m.end(), False
        while i < len(sql) and depth:
            ch = sql[i]
            depth += (ch == "(") - (ch == ")")
            comma = comma or (ch == "," and depth == 1)
            i += 1
        if comma:
            out.append(sql[pos:m.start()])
            out.append("greatest(" if m.group(1).lower() == "max" else "least(")
            pos = m.end()
    out.append(sql[pos:])
    return "".join(out)


@lru_cache(maxsize=4096)
def translate(sql: str, with_params: bool = True) -> str:
    """SQLite's SQL as PostgreSQL's (see the table above). ``with_params``: the statement is
    sent with parameters, so ``?`` becomes ``%s`` and a literal ``%`` is doubled."""
    sql = sql.replace(_NOW_SQLITE, _NOW_PG)
    sql = _scalar_minmax(sql)
    sql = _JSON_OBJECT.sub(r"json_build_object(\1)::text", sql)
    for pattern, repl in _REWRITES:
        sql = pattern.sub(repl, sql)
    if not with_params:
        return sql
    parts = _QUOTED.split(sql)
    out = []
    for i, part in enumerate(parts):
        part = part.replace("%", "%%")
        if i % 2 == 0:  # outside quotes
            part = part.replace("?", "%s")
        out.append(part)
    return "".join(out)


# The newest id the feed ever handed out (store.feed.last_id): SQLite's AUTOINCREMENT keeps it
# in sqlite_sequence; PostgreSQL's identity column in its sequence.
LAST_FEED_ID = {
    SQLITE: "SELECT seq FROM sqlite_sequence WHERE name = 'feed'",
    POSTGRESQL: "SELECT n FROM feed_counter",  # migration m0023
}


def params(values: Any) -> Any:
    """Parameters as PostgreSQL takes them: ``bool`` → 0/1 (the schema's flags are integers, as
    in SQLite); a NUL character in a string, which PostgreSQL's text cannot hold, → U+FFFD (so
    a lookup with it finds nothing and a write keeps the rest, instead of an error)."""
    if not values:
        return None
    return [int(v) if isinstance(v, bool)
            else v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v
            for v in values]


# -- schema ------------------------------------------------------------------------------------

_TRIGGER = re.compile(
    r"CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+(AFTER|BEFORE)\s+(INSERT|UPDATE|DELETE)"
    r"\s+ON\s+(\w+)\s+BEGIN\s+(.*?);\s*END\s*$", re.I | re.S)
_DROP_TRIGGER = re.compile(r"DROP\s+TRIGGER\s+IF\s+EXISTS\s+(\w+)\s*$", re.I)
_DDL_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\)\s*(STRICT|WITHOUT\s+ROWID)(\s*,\s*(STRICT|WITHOUT\s+ROWID))?\s*$", re.I), ")"),
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.I),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bTEXT(\s+NOT\s+NULL)?(\s+UNIQUE)?\s+COLLATE\s+NOCASE\b", re.I), r"CITEXT\1\2"),
]
# The tables each trigger of the schema is on (PostgreSQL's DROP TRIGGER names its table).
_TRIGGER_TABLES: dict[str, str] = {}


def translate_ddl(sql: str) -> list[str]:
    """One DDL statement of a migration, as the PostgreSQL statements that do the same."""
    sql = sql.strip()
    trig = _TRIGGER.match(sql)
    if trig:
        name, when, event, table, body = trig.groups()
        _TRIGGER_TABLES[name] = table
        body = translate(body, with_params=False)
        return [
            f"CREATE OR REPLACE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $fn$ "
            f"BEGIN {body}; RETURN NULL; END $fn$",
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"CREATE TRIGGER {name} {when} {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_fn()",
        ]
    drop = _DROP_TRIGGER.match(sql)
    if drop:
        name = drop.group(1)
        table = _TRIGGER_TABLES.get(name)
        if table is None:
            return [f"""DO $do$ DECLARE t text; BEGIN
                SELECT c.relname INTO t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
                 WHERE g.tgname = '{name}' AND NOT g.tgisinternal LIMIT 1;
                IF t IS NOT NULL THEN EXECUTE format('DROP TRIGGER {name} ON %I', t); END IF;
            END $do$"""]
        return [f"DROP TRIGGER IF EXISTS {name} ON {table}"]
    for pattern, repl in _DDL_REWRITES:
        sql = pattern.sub(repl, sql)
    return [translate(sql, with_params=False)]


_CHECK_COLUMN = re.compile(r"CHECK\s*\(\s*(\w+)\s", re.I)


def widen_check_pg(table: str, new: str) -> list[str]:
    """PostgreSQL's way of replacing a column's CHECK (named ``<table>_<column>_check``, as
    PostgreSQL names a column constraint) by ``new``."""
    m = _CHECK_COLUMN.match(new)
    assert m, new
    name = f"{table}_{m.group(1)}_check"
    return [f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}",
            f"ALTER TABLE {table} ADD CONSTRAINT {name} {new}"]


# -- rows ----------------------------------------------------------------------------------------


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, as ``sqlite3.Row``."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@lru_cache(maxsize=1024)
def row_class(names: tuple[str, ...]) -> type[Row]:
    """The Row subclass for one list of column names (made once per query shape)."""
    return type("Row", (Row,), {"__slots__": (), "_names": names,
                                "_index": {n: i for i, n in enumerate(names)}})

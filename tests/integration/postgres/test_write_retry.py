"""Transient faults during a write transaction on PostgreSQL (store/pg.py ``PgDatabase``), made to
happen for real on a cluster of this module's own: the writer's connection terminated
(``pg_terminate_backend``) in the middle of a transaction, and during its COMMIT (held there by
a synchronous standby that does not exist); a real serialization failure (a concurrent update
under ``repeatable read``) and a real deadlock. Each accepted write is stored exactly once, and
a write whose COMMIT outcome PostgreSQL confirms is reported as done, not run twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from store import pg
from tests.support import postgres


@pytest.fixture(scope="module")
def cluster() -> Iterator[postgres.Cluster]:
    c = postgres.Cluster().start()
    yield c
    c.destroy()


@pytest.fixture
def db(cluster: postgres.Cluster, request: pytest.FixtureRequest) -> Iterator[pg.PgDatabase]:
    name = "retry_" + request.node.name.split("[")[0][-40:].lower()
    url = cluster.create_database(name)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS t")
        c.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        c.execute("INSERT INTO t VALUES ('row', 0)")
    database = pg.PgDatabase(url, readers=1)
    database.start()
    yield database
    database.close()


def admin(cluster: postgres.Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cluster.url(), autocommit=True)


def standby(cluster: postgres.Cluster, names: str | None) -> None:
    """Set (or reset) ``synchronous_standby_names`` and wait until new sessions have it (a
    reload reaches the server's processes asynchronously)."""
    with admin(cluster) as a:
        if names is None:
            a.execute("ALTER SYSTEM RESET synchronous_standby_names")
        else:
            a.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        a.execute("SELECT pg_reload_conf()")

    def seen() -> bool:
        with admin(cluster) as fresh:
            return bool(fresh.execute("SHOW synchronous_standby_names").fetchone()[0]
                        == (names or ""))

    until(seen, 10, "the configuration was not reloaded")


def until(predicate: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def rows(db: pg.PgDatabase) -> list[tuple[str, int]]:
    return [tuple(r) for r in db.read_sync(
        lambda c: c.execute("SELECT id, n FROM t ORDER BY id").fetchall())]


def test_a_connection_terminated_mid_transaction_is_run_again_once(
        db: pg.PgDatabase, cluster: postgres.Cluster) -> None:
    attempts: list[int] = []
    inside = threading.Event()
    killed = threading.Event()

    def job(conn: Any) -> str:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute("INSERT INTO t (id, n) VALUES (?, ?)", ("a1", len(attempts)))
        attempts.append(pid)
        if len(attempts) == 1:
            inside.set()
            assert killed.wait(10)
        conn.execute("UPDATE t SET n = n + 1 WHERE id = 'row'")
        return "accepted"

    def kill() -> None:
        assert inside.wait(10)
        with admin(cluster) as a:
            assert a.execute("SELECT pg_terminate_backend(%s)", (attempts[0],)).fetchone()[0]
        killed.set()

    killer = threading.Thread(target=kill)
    killer.start()
    assert db.write_sync(job) == "accepted"
    killer.join()
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # again, on a new connection
    assert rows(db) == [("a1", 1), ("row", 1)]  # once: the first attempt left nothing
    assert db.retries == 1


def test_a_connection_lost_during_commit_that_committed_is_not_run_again(
        db: pg.PgDatabase, cluster: postgres.Cluster) -> None:
    """PostgreSQL writes the commit, then waits for a synchronous standby (named, never there);
    the test terminates the backend in that wait: the client's COMMIT fails with the connection,
    yet the transaction is committed. The writer asks ``txid_status`` and reports success."""
    attempts: list[int] = []
    standby(cluster, "nobody_there")
    db._write_conn.close()  # type: ignore[union-attr]  # the writer's next session has it
    try:
        def job(conn: Any) -> str:
            attempts.append(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            conn.execute("INSERT INTO t (id, n) VALUES (?, ?)", ("c1", 1))
            return "accepted"

        def kill() -> None:
            with admin(cluster) as a:
                def waiting() -> Any:
                    return a.execute("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                                     ).fetchone()
                (pid,) = until(waiting, 20, "the writer's COMMIT never waited for the standby")
                a.execute("SELECT pg_terminate_backend(%s)", (pid,))
                standby(cluster, None)

        killer = threading.Thread(target=kill)
        killer.start()
        assert db.write_sync(job) == "accepted"
        killer.join()
    finally:
        standby(cluster, None)
    assert db.outcomes_asked == 1  # the COMMIT did fail with the connection
    assert len(attempts) == 1  # committed: not run a second time
    assert rows(db) == [("c1", 1), ("row", 0)]
    assert db.retries == 0


def test_a_serialization_failure_is_run_again(db: pg.PgDatabase, cluster: postgres.Cluster) -> None:
    """Under ``repeatable read`` (an operator's default_transaction_isolation), a row updated
    by another transaction after the writer's snapshot makes PostgreSQL refuse the writer's
    update (40001); the transaction is run again on a new snapshot."""
    with admin(cluster) as a:
        dbname = db.url.rsplit("/", 1)[1]
        a.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_isolation = '
                  "'repeatable read'")
    db._write_conn.close()  # type: ignore[union-attr]  # the setting applies to new sessions
    attempts: list[int] = []
    url = db.url

    def job(conn: Any) -> int:
        before = conn.execute("SELECT n FROM t WHERE id = 'row'").fetchone()[0]  # the snapshot
        attempts.append(before)
        if len(attempts) == 1:
            with psycopg.connect(url, autocommit=True) as other:
                other.execute("UPDATE t SET n = n + 10 WHERE id = 'row'")
        conn.execute("UPDATE t SET n = n + 1 WHERE id = 'row'")
        return int(conn.execute("SELECT n FROM t WHERE id = 'row'").fetchone()[0])

    assert db.write_sync(job) == 11
    assert attempts == [0, 10]
    assert rows(db) == [("row", 11)]
    assert db.retries == 1


def test_a_deadlock_is_run_again(db: pg.PgDatabase, cluster: postgres.Cluster) -> None:
    """The writer locks ``b`` then waits for ``a``, which the test holds; the test then asks for
    ``b``: PostgreSQL finds the cycle and aborts the writer's transaction (it waited first). The
    test lets ``a`` go and the writer's second attempt goes through."""
    with admin(cluster) as a:
        dbname = db.url.rsplit("/", 1)[1]
        a.execute(f'ALTER DATABASE "{dbname}" SET deadlock_timeout = \'200ms\'')
    db._write_conn.close()  # type: ignore[union-attr]
    db.write_sync(lambda c: c.execute("INSERT INTO t (id, n) VALUES ('a', 0), ('b', 0)"))
    attempts: list[int] = []
    waiting = threading.Event()

    with psycopg.connect(db.url) as holder:
        holder.execute("UPDATE t SET n = n + 100 WHERE id = 'a'")  # holds a (not committed)

        def job(conn: Any) -> str:
            attempts.append(1)
            conn.execute("UPDATE t SET n = n + 1 WHERE id = 'b'")
            if len(attempts) == 1:
                waiting.set()
            conn.execute("UPDATE t SET n = n + 1 WHERE id = 'a'")
            return "accepted"

        box: dict[str, Any] = {}
        writer = threading.Thread(target=lambda: box.update(v=db.write_sync(job)))
        writer.start()
        assert waiting.wait(10)
        with admin(cluster) as a:
            until(lambda: a.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                    ).fetchone(), 10, "the writer never waited for row a")
        holder.execute("UPDATE t SET n = n + 100 WHERE id = 'b'")  # the cycle: writer aborted
        holder.rollback()
        writer.join(20)
    assert box.get("v") == "accepted"
    assert len(attempts) == 2
    assert rows(db) == [("a", 1), ("b", 1), ("row", 0)]
    assert db.retries == 1


def test_past_the_attempts_the_write_fails_with_storage_unavailable(
        db: pg.PgDatabase, cluster: postgres.Cluster) -> None:
    """A write that keeps failing transiently is given up after RETRY_ATTEMPTS: a 503's error,
    nothing stored."""
    attempts: list[int] = []

    def job(conn: Any) -> None:
        attempts.append(1)
        conn.execute("INSERT INTO t (id, n) VALUES ('never', 1)")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with admin(cluster) as a:
            a.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.execute("SELECT 1")

    with pytest.raises(pg.StorageUnavailable):
        db.write_sync(job)
    assert len(attempts) == pg.RETRY_ATTEMPTS
    assert rows(db) == [("row", 0)]


def test_a_job_s_own_error_is_not_run_again(db: pg.PgDatabase) -> None:
    attempts: list[int] = []

    def job(conn: Any) -> None:
        attempts.append(1)
        conn.execute("INSERT INTO t (id, n) VALUES ('row', 1)")  # the primary key is taken

    with pytest.raises(pg.PgIntegrityError):
        db.write_sync(job)
    assert attempts == [1]
    assert db.retries == 0

"""The one-writer Database: concurrent writers never see "database is locked", group commit
isolates each job's failure, and readers see only committed data."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading

import pytest

from store import activities
from store.db import Database
from tests.support.postgres import sqlite_only

from .conftest import make_channel, make_conversation, make_tenant, now


def _setup(db: Database) -> tuple[str, str]:
    def tx(conn: sqlite3.Connection) -> tuple[str, str]:
        t = make_tenant(conn)
        c = make_channel(conn, t.id)
        return t.id, make_conversation(conn, t.id, c.id).id
    return db.write_sync(tx)


def _insert(conn: sqlite3.Connection, tenant_id: str, conv_id: str, text: str) -> int:
    return activities.insert(conn, tenant_id=tenant_id, conversation_id=conv_id, sender="u",
                             now=now(), text=text).seq


async def test_200_concurrent_writes_from_tasks_and_threads(db: Database) -> None:
    tenant_id, conv_id = _setup(db)
    errors: list[BaseException] = []
    seqs: list[int] = []
    lock = threading.Lock()

    def thread_writer(i: int) -> None:
        for j in range(10):
            try:
                s = db.write_sync(_insert, tenant_id, conv_id, f"thread-{i}-{j}")
                with lock:
                    seqs.append(s)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=thread_writer, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    # 100 from asyncio tasks at the same time as 100 from 10 threads.
    task_seqs = await asyncio.gather(
        *(db.write(_insert, tenant_id, conv_id, f"task-{i}") for i in range(100)),
        return_exceptions=True,
    )
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    task_errors = [e for e in task_seqs if isinstance(e, BaseException)]
    assert not errors and not task_errors, (errors + task_errors)[:3]
    allseq = sorted(seqs + [s for s in task_seqs if isinstance(s, int)])
    assert allseq == list(range(1, 201))
    assert await db.read(activities.count) == 200
    # Group commit: far fewer commits than writes is expected but not guaranteed; at least
    # every write committed.
    assert db.commits >= 1


async def test_concurrent_raw_sqlite_writer_waits_instead_of_failing(db: Database) -> None:
    """A second process-like writer (another connection) does not break ours: busy_timeout."""
    tenant_id, conv_id = _setup(db)
    from store.connect import connect

    other = connect(db.path)
    try:
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(db.write(_insert, tenant_id, conv_id, "waits"))
        await asyncio.sleep(0)  # let the job reach the writer; it now waits on busy_timeout
        other.execute("COMMIT")
        assert await asyncio.wait_for(pending, 10) == 1
    finally:
        other.close()


@sqlite_only("the write lock file is SQLite's (PostgreSQL has row locks)")
async def test_writers_of_two_processes_take_turns_on_the_write_lock_file(db: Database) -> None:
    """Another process's writer holding ``<file>-wlock`` keeps ours waiting in ``flock`` (not in
    SQLite's sleeping busy handler), and ours commits as soon as it is released."""
    tenant_id, conv_id = _setup(db)
    fd = os.open(f"{db.path}-wlock", os.O_RDWR)  # its own open file: another process's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        pending = asyncio.ensure_future(db.write(_insert, tenant_id, conv_id, "waits"))
        # While the lock is held the job cannot have begun, let alone committed: a read sees
        # nothing new however long it looks.
        for _ in range(20):
            await asyncio.sleep(0.01)
            assert not pending.done()
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM activities").fetchone()[0]) == 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert await asyncio.wait_for(pending, 10) == 1
    finally:
        os.close(fd)


class Boom(Exception):
    pass


async def test_group_commit_isolates_a_failing_job(db: Database) -> None:
    tenant_id, conv_id = _setup(db)
    gate, entered = threading.Event(), threading.Event()

    def block(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(5)  # hold the writer so the jobs below queue up and form one batch

    def failing(conn: sqlite3.Connection) -> None:
        _insert(conn, tenant_id, conv_id, "doomed")
        conn.execute("INSERT INTO audit_logs (id, actor_type, actor_id, action, resource_type, "
                     "resource_id, inserted_at) VALUES ('a1','system','t','x','y','z','n')")
        raise Boom("job fails after writing")

    def constraint(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO tenants (id, name, api_key_hash, api_key_hint, inserted_at, "
                     "updated_at) VALUES ('dup', '', 'h', 'h', 'n', 'n')")  # CHECK fails

    blocker = asyncio.ensure_future(db.write(block))
    await asyncio.to_thread(entered.wait, 5)
    commits_before, replays_before = db.commits, getattr(db, "replays", 0)
    jobs = [
        db.write(_insert, tenant_id, conv_id, "a"),
        db.write(failing),
        db.write(_insert, tenant_id, conv_id, "b"),
        db.write(constraint),
        db.write(_insert, tenant_id, conv_id, "c"),
    ]
    futs = [asyncio.ensure_future(j) for j in jobs]
    await asyncio.sleep(0)  # each task runs up to its await: its job is queued
    gate.set()
    await blocker
    results = await asyncio.gather(*futs, return_exceptions=True)
    assert isinstance(results[1], Boom)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert [r for i, r in enumerate(results) if i in (0, 2, 4)] == [1, 2, 3]
    # The blocker's commit, then ONE for all five queued jobs (a batch); the failures left
    # nothing behind.
    assert db.commits - commits_before == 2
    # The job that failed after writing could not be undone alone: the batch ran again with a
    # savepoint per job (its first run's rows — "a" included — rolled back, none twice).
    if db.dialect == "sqlite":
        assert db.replays - replays_before == 1
    texts = await db.read(lambda c: [r[0] for r in c.execute(
        "SELECT text FROM activities ORDER BY seq")])
    assert texts == ["a", "b", "c"]
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM audit_logs").fetchone()[0]) == 0


@sqlite_only("PostgreSQL's writer keeps a savepoint per job")
async def test_a_job_failing_before_it_writes_costs_its_batch_nothing(db: Database) -> None:
    """No savepoint per job: a job that fails without having changed a row (a refusal, a
    constraint) leaves the transaction as it was, and the batch goes on without running again."""
    tenant_id, conv_id = _setup(db)
    gate, entered = threading.Event(), threading.Event()
    runs: list[str] = []

    def block(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(5)

    def counted(conn: sqlite3.Connection, text: str) -> int:
        runs.append(text)
        return _insert(conn, tenant_id, conv_id, text)

    def refused(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conv_id,)).fetchone()
        raise Boom("refused before writing")

    def duplicate(conn: sqlite3.Connection) -> None:  # a two-row INSERT whose second row fails
        conn.execute("INSERT INTO audit_logs (id, actor_type, actor_id, action, resource_type, "
                     "resource_id, inserted_at) VALUES ('d1','system','t','x','y','z','n'), "
                     "('d1','system','t','x','y','z','n')")

    blocker = asyncio.ensure_future(db.write(block))
    await asyncio.to_thread(entered.wait, 5)
    replays_before = db.replays
    futs = [asyncio.ensure_future(j) for j in (
        db.write(counted, "a"), db.write(refused), db.write(counted, "b"), db.write(duplicate),
        db.write(counted, "c"))]
    await asyncio.sleep(0)
    gate.set()
    await blocker
    results = await asyncio.gather(*futs, return_exceptions=True)
    assert isinstance(results[1], Boom)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert [results[0], results[2], results[4]] == [1, 2, 3]
    assert db.replays == replays_before and runs == ["a", "b", "c"]  # each job ran once
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM audit_logs").fetchone()[0]) == 0


async def test_write_returns_only_after_commit_and_reads_see_it(db: Database) -> None:
    tenant_id, conv_id = _setup(db)
    seq = await db.write(_insert, tenant_id, conv_id, "x")
    got = await db.read(activities.list_after, conv_id)
    assert [a.seq for a in got] == [seq]


def test_write_sync_raises_the_jobs_error(db: Database) -> None:
    def bad(conn: sqlite3.Connection) -> None:
        raise Boom("x")
    with pytest.raises(Boom):
        db.write_sync(bad)
    assert db.write_sync(lambda c: 41 + 1) == 42


def test_close_finishes_queued_writes(tmp_path) -> None:
    from store import migrations

    db = Database(tmp_path / "c.db")
    db.start(prepare=migrations.apply)
    tenant_id, conv_id = _setup(db)
    done: list[int] = []
    threads = [threading.Thread(target=lambda: done.append(
        db.write_sync(_insert, tenant_id, conv_id, "q"))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.close()
    reopened = Database(tmp_path / "c.db")
    reopened.start()
    try:
        assert reopened.read_sync(activities.count) == 20
    finally:
        reopened.close()


async def test_a_lone_failing_job_leaves_nothing(db: Database) -> None:
    tenant_id, conv_id = _setup(db)

    def half_done(conn: sqlite3.Connection) -> None:
        _insert(conn, tenant_id, conv_id, "half")
        raise Boom("after a write")

    with pytest.raises(Boom):
        await db.write(half_done)
    assert await db.read(activities.count) == 0
    assert await db.write(_insert, tenant_id, conv_id, "next") == 1  # seq 1 was never used


def _commit_fails(tmp_path) -> Database:
    """A database whose writer fails at ``COMMIT`` on demand, with SQLite's own machinery: a
    deferred foreign key is checked only at ``COMMIT``, so a job that inserts an orphan child
    row succeeds, and the ``COMMIT`` that follows it fails (``FOREIGN KEY constraint failed``)."""
    from store import migrations

    def prepare(conn: sqlite3.Connection) -> None:
        migrations.apply(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("CREATE TABLE parent (id TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE child (parent_id TEXT REFERENCES parent (id) "
                     "DEFERRABLE INITIALLY DEFERRED)")

    db = Database(tmp_path / "f.db")
    db.start(prepare=prepare)
    return db


def _orphan(conn: sqlite3.Connection) -> str:
    conn.execute("INSERT INTO child (parent_id) VALUES ('nobody')")
    return "the job itself succeeded"


async def test_a_failed_commit_is_an_error_for_every_caller_never_a_success(tmp_path) -> None:
    db = _commit_fails(tmp_path)
    try:
        tenant_id, conv_id = _setup(db)
        # Alone in its transaction: the job returned, but its COMMIT failed → the caller
        # gets the error, not the job's value.
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await db.write(_orphan)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            db.write_sync(_orphan)

        # In a group commit: every job of the failed transaction gets the error, even those
        # whose own work was fine (none of it was committed).
        gate, entered = threading.Event(), threading.Event()

        def block(conn: sqlite3.Connection) -> None:
            entered.set()
            gate.wait(5)  # hold the writer so the jobs below queue up and form one batch

        blocker = asyncio.ensure_future(db.write(block))
        await asyncio.to_thread(entered.wait, 5)
        futs = [asyncio.ensure_future(j) for j in (
            db.write(_insert, tenant_id, conv_id, "a"), db.write(_orphan),
            db.write(_insert, tenant_id, conv_id, "b"))]
        await asyncio.sleep(0)  # each task runs up to its await: its job is queued
        gate.set()
        await blocker
        results = await asyncio.gather(*futs, return_exceptions=True)
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        assert await db.read(activities.count) == 0
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM child").fetchone()[0]) == 0
        # The writer goes on: the next transaction commits, and seq 1 was never used.
        assert await db.write(_insert, tenant_id, conv_id, "next") == 1
    finally:
        db.close()

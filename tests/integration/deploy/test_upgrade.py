"""Safe upgrades and backups (issue 22): today's gateway on a data directory written by the
previous release (``fixtures/release-m0003``, made by ``fixtures/make_release_fixture.sh`` from
commit f34fef2) migrates it forward after a snapshot beside it; a data directory of a newer
("future") schema is refused and left byte-for-byte as it was; ``converger backup`` snapshots a
running gateway, and that snapshot is what a rollback puts back."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import aiohttp

from store import migrations
from tests.support.api import Api
from tests.support.postgres import sqlite_only
from tests.support.server import COMMAND, ROOT, Server

FIXTURE = Path(__file__).parent / "fixtures" / "release-m0003"
IDS = json.loads((FIXTURE / "fixture.json").read_text())


def release_data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("converger.db", "secret_key"):
        shutil.copyfile(FIXTURE / name, data / name)
    (data / "secret_key").chmod(0o600)
    return data


def migrations_of(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
    finally:
        conn.close()


def texts(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT text FROM activities ORDER BY seq")]
    finally:
        conn.close()


def run_cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    # The fixture's own secret key is in the data directory: no CONVERGER_SECRET_KEY here.
    return subprocess.run([*COMMAND, *args, "--data-dir", str(data)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_the_fixture_is_the_previous_release() -> None:
    known = migrations.known()
    assert migrations_of(FIXTURE / "converger.db") == ["m0001_initial", "m0003_uploads"]
    assert len(known) > 2, "the fixture must be older than the code"


@sqlite_only("the previous release's data directory holds its SQLite file, snapshotted beside "
             "itself before the migrations")
async def test_a_previous_release_data_directory_is_migrated_after_a_snapshot(tmp_path: Path) -> None:
    data = release_data_dir(tmp_path)
    srv = Server(data, env={"CONVERGER_SECRET_KEY": ""})  # empty: the fixture's key file is used
    try:
        srv.start()
        async with aiohttp.ClientSession() as s:
            got = await Api(s, srv.url).ok(
                "GET", f"/api/v1/conversations/{IDS['conversation_id']}/activities",
                headers={"x-api-key": IDS["api_key"]})
        assert [a["text"] for a in got["data"]] == [f"before the upgrade {n}" for n in (1, 2, 3)]
    finally:
        srv.stop()
    assert migrations_of(data / "converger.db") == migrations.known()
    snaps = sorted(data.glob("converger.db.*.before-m0004_alerts.bak"))
    assert len(snaps) == 1, sorted(p.name for p in data.iterdir())
    assert f"the snapshot from before is {snaps[0]}" in srv.log()
    # The snapshot is the old release's database, complete, private, usable as it is.
    assert stat.S_IMODE(snaps[0].stat().st_mode) == 0o600
    assert migrations_of(snaps[0]) == ["m0001_initial", "m0003_uploads"]
    assert texts(snaps[0]) == texts(FIXTURE / "converger.db")

    srv.start()  # up to date now: no second snapshot
    srv.stop()
    assert len(list(data.glob("converger.db.*.bak*"))) == 1


def test_a_future_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    data = release_data_dir(tmp_path)
    conn = sqlite3.connect(data / "converger.db")
    known = migrations.known()
    with conn:
        for name in known:
            conn.execute("INSERT OR IGNORE INTO _sqlite_migrations (migration_set, name, applied_at) "
                         "VALUES ('converger', ?, '2030-01-01')", (name,))
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('converger', 'm9999_future', '2030-01-01')")
        conn.execute("CREATE TABLE future_things (id TEXT PRIMARY KEY)")
    conn.close()

    def state() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.iterdir())}

    before = state()
    for args in (["serve", "--port", "0"], ["migrate"], ["tenant", "list"]):
        done = run_cli(*args, data=data)
        assert done.returncode == 2, (args, done)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stdout + done.stderr, (args, done.stderr)
        assert "written by a newer converger" in lines[0] and "m9999_future" in lines[0]
        assert "Nothing was changed" in lines[0]
        assert state() == before, args


@sqlite_only("`converger backup` copies the SQLite file; with PostgreSQL it points to pg_dump "
             "(docs/scaling.md)")
async def test_backup_of_a_running_gateway_and_a_rollback_to_it(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data").start()
    backup = tmp_path / "backups" / "converger-before.db"
    backup.parent.mkdir()
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, srv.url)
            w = await api.setup(name="kept")
            conv = w["conversation"]["id"]
            for n in range(20):
                await api.post_activity(conv, w["api_key"], text=f"kept {n}", sender="a")
            # The backup runs while the gateway keeps writing.
            proc = subprocess.Popen([*COMMAND, "backup", str(backup), "--data-dir", str(srv.data_dir)],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(20):
                await api.post_activity(conv, w["api_key"], text=f"during {n}", sender="a")
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert "secret key" in out  # reminded: stored channel secrets need it
            after = await api.setup(name="after-the-backup")
        again = run_cli("backup", str(backup), data=srv.data_dir)
        assert again.returncode == 2 and "exists" in again.stderr  # never overwritten
    finally:
        srv.stop()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    kept = texts(backup)
    assert kept[:20] == [f"kept {n}" for n in range(20)]  # consistent: a prefix of the writes
    assert all(t.startswith("during") for t in kept[20:])

    # Roll back: stop, put the snapshot in the database's place, start.
    db = srv.data_dir / "converger.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, db)
    os.chmod(db, 0o600)
    srv.start()
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, srv.url)
            names = [t["name"] for t in (await api.ok("GET", "/api/admin/tenants?limit=100",
                                                      headers=api.admin))["data"]]
        assert "kept" in names and after["tenant"]["name"] not in names
    finally:
        srv.stop()

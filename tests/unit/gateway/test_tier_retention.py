"""A tier's ``retention_days`` applied by the ``prune`` job (docs/admin.md#sla-tiers), on a real
store with an injected clock: a tenant on a tier that keeps 30 days loses its older activities
with their deliveries and media downloads (rows and files) and its older uploads (rows and
files); its recent ones stay, and so does everything of a tenant on no tier or on a tier that
sets no retention. A second run finds nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.context import Gateway
from gateway.crypto import Cipher
from gateway.domain import channels as channel_ops
from gateway.domain import tenants as tenant_ops
from gateway.hub import Hub
from gateway.tokens import Tokens
from gateway.workers import expiry
from store import activities, conversations, migrations, queue, tiers, uploads
from store.db import Database
from store.util import iso

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTOR = ("system", "test")


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = config.load({}, data_dir=str(tmp_path), outbound_allow="127.0.0.0/8")
    db = Database(tmp_path / "retention.db")
    db.start(prepare=migrations.apply)
    gw = Gateway(settings=settings, log=logging.getLogger("converger.test"),
                 cipher=Cipher("k" * 32), tokens=Tokens("k" * 32), hub=Hub())
    gw.attach(db)
    yield gw
    db.close()


def _tenant(conn: Any, cipher: Cipher, name: str, tier: dict[str, Any] | None, data: Path
            ) -> dict[str, Any]:
    """A tenant (on a new tier with ``tier``'s limits, or on none) with a webhook channel: an
    activity with a delivery and a stored media file on day 0 and on day 20, and an upload
    (row and file) on each of those days."""
    tenant, _ = tenant_ops.create_tx(conn, name, None, "active", ACTOR, iso(T0))
    channel, _ = channel_ops.create_tx(
        conn, cipher, tenant_id=tenant.id, name="hook", type="webhook", mode=None,
        config={"url": "http://127.0.0.1:9/x"}, transformations=[], status="active",
        actor=ACTOR, now=iso(T0))
    if tier is not None:
        t = tiers.create(conn, {"name": f"keep-{name}", **tier}, iso(T0))
        tiers.assign(conn, tenant.id, t.id, iso(T0))
    conv = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id, now=iso(T0))
    folder = data / "uploads" / tenant.id
    folder.mkdir(parents=True)
    made: dict[str, Any] = {"tenant": tenant.id, "activities": {}, "files": {}}
    for day in (0, 20):
        at = iso(T0 + timedelta(days=day))
        a = activities.insert(conn, tenant_id=tenant.id, conversation_id=conv.id, sender="u",
                              now=at, text=f"day {day}")
        queue.enqueue(conn, a, [channel.id], at)
        media = f"{a.id}_0_photo.jpg"
        conn.execute(
            """INSERT INTO media_downloads (activity_id, idx, tenant_id, channel_id, status,
                   attempts, next_attempt_at, file_name, updated_at)
               VALUES (?, 0, ?, ?, 'stored', 1, ?, ?, ?)""",
            (a.id, tenant.id, channel.id, at, media, at))
        upload = f"up{day}_notes.txt"
        uploads.insert(conn, id=f"{tenant.id}-{day}", tenant_id=tenant.id,
                       conversation_id=conv.id, file_name=upload, name="notes.txt",
                       content_type="text/plain", size=5, now=at)
        for f in (media, upload):
            (folder / f).write_text("bytes")
        made["activities"][day] = a.id
        made["files"][day] = [folder / media, folder / upload]
    return made


def _left(conn: Any, tenant_id: str) -> dict[str, int]:
    return {table: conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = ?",
                                (tenant_id,)).fetchone()[0]
            for table in ("activities", "deliveries", "media_downloads", "uploads")}


async def test_a_tiers_retention_prunes_older_activities_and_files(ctx: Gateway) -> None:
    data = Path(ctx.settings.data_dir)

    def setup(conn: Any) -> list[dict[str, Any]]:
        return [_tenant(conn, ctx.cipher, "kept-30", {"retention_days": 30}, data),
                _tenant(conn, ctx.cipher, "no-tier", None, data),
                _tenant(conn, ctx.cipher, "no-retention", {"max_channels": 5}, data)]

    short, none, unset = await ctx.db.write(setup)
    everything = {"activities": 2, "deliveries": 2, "media_downloads": 2, "uploads": 2}

    # Day 29: nothing is older than 30 days yet.
    assert await expiry.prune(ctx, T0 + timedelta(days=29)) == 0
    assert await ctx.db.read(_left, short["tenant"]) == everything

    # Day 31: day 0's activity (with its delivery and media) and upload go, day 20's stay.
    assert await expiry.prune(ctx, T0 + timedelta(days=31)) == 2  # one activity, one upload
    assert await ctx.db.read(_left, short["tenant"]) == dict.fromkeys(everything, 1)
    kept = await ctx.db.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM activities WHERE tenant_id = ?", (short["tenant"],))])
    assert kept == [short["activities"][20]]
    assert not any(f.exists() for f in short["files"][0])
    assert all(f.exists() for f in short["files"][20])
    # Tenants on no tier, or on a tier without retention, keep everything.
    for other in (none, unset):
        assert await ctx.db.read(_left, other["tenant"]) == everything
        assert all(f.exists() for day in (0, 20) for f in other["files"][day])
    # Idempotent: nothing more until day 20's turn.
    assert await expiry.prune(ctx, T0 + timedelta(days=31)) == 0
    assert await expiry.prune(ctx, T0 + timedelta(days=51)) == 2
    assert await ctx.db.read(_left, short["tenant"]) == dict.fromkeys(everything, 0)

"""The domain in-process: a ``Gateway`` on a temporary, migrated database, with no server and
no workers; a delivery backend that records what it was handed (the domain's after-commit call),
so a test can see that an effect fired once, or not at all."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.context import Gateway
from gateway.domain import Actor
from store import migrations
from store.models import Activity
from tests.support import postgres

ADMIN = Actor("admin_token", "test-token")


class Recorded:
    """A delivery backend that keeps each ``enqueued`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, int]] = []

    async def enqueued(self, activity: Activity | None, count: int) -> None:
        self.calls.append((activity.id if activity else None, count))

    def alive(self) -> dict[str, Any]:
        return {"ok": True}


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = config.load({}, data_dir=str(tmp_path), secret_key="k" * 40)
    gateway = Gateway.create(settings, logging.getLogger("test.domain"))
    db = postgres.store_database(tmp_path, "domain.db")  # SQLite, or PostgreSQL in that mode
    db.start(prepare=migrations.apply)
    gateway.attach(db)
    gateway.delivery = Recorded()
    yield gateway
    gateway.detach()
    db.close()

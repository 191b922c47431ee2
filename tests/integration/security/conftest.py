"""Fixtures for the security regression tests (issue 13): servers of their own with custom
settings, each stopped at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.delivery.receiver import Receiver
from tests.support.server import Server


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``make_server(env={...}, admin=True)`` starts a server of its own (``admin``: with the
    web tests' super admin made by the CLI first)."""
    made: list[Server] = []

    def make(env: dict[str, str] | None = None, name: str = "data", start: bool = True,
             admin: bool = False) -> Server:
        if admin:
            from tests.integration.web.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, create_admin

            (tmp_path / name).mkdir(parents=True, exist_ok=True)
            create_admin(tmp_path / name, ADMIN_EMAIL, ADMIN_PASSWORD)
        srv = Server(tmp_path / name, env=env)
        made.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()

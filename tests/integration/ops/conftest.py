"""Fixtures for the operations tests: servers of their own with custom settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.server import Server


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``make_server(env={...})`` starts a server of its own; all are stopped at the end."""
    made: list[Server] = []

    def make(env: dict[str, str] | None = None, name: str = "data", start: bool = True) -> Server:
        srv = Server(tmp_path / name, env=env)
        made.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in made:
        srv.stop()

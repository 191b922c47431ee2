"""Fixtures for the Direct Line tests: a tenant with an echo channel (its secret is the Direct
Line secret), and helpers shared by the Python and node tests."""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.tokens import Tokens
from tests.support.api import Api
from tests.support.server import Server

DL = "/v3/directline"
KEY = "test-secret-key-0123456789"  # tests/support/server.py's CONVERGER_SECRET_KEY
_names = itertools.count(1)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def make_dl_world(api: Api, channel_type: str = "echo") -> dict[str, Any]:
    """A tenant, an echo channel (its secret), and a conversation started with the secret."""
    t = await api.tenant(f"dl-{next(_names)}")
    mode = "outbound" if channel_type == "echo" else None
    c = await api.channel(t["id"], type=channel_type, mode=mode)
    conv = await api.ok("POST", f"{DL}/conversations", 201, headers=bearer(c["secret"]))
    return {"tenant": t, "api_key": t["api_key"], "channel": c, "secret": c["secret"],
            "conv": conv, "conv_id": conv["conversationId"], "token": conv["token"]}


@pytest.fixture
async def dl(api: Api) -> dict[str, Any]:
    return await make_dl_world(api)


def expired_token(w: dict[str, Any], conversation_id: str | None = None) -> str:
    """A token the server signed (same key) that expired an hour ago: an injected clock."""
    with warnings.catch_warnings():  # the test key is short; the server signs with it anyway
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return Tokens(KEY).converger_token(w["channel"]["id"], w["tenant"]["id"],
                                           conversation_id or w["conv_id"], now=time.time() - 7200)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``make_server(env={...})`` starts a server of its own; all are stopped at the end."""
    made: list[Server] = []

    def make(env: dict[str, str] | None = None, name: str = "data") -> Server:
        srv = Server(tmp_path / name, env=env)
        made.append(srv)
        return srv.start()

    yield make
    for srv in made:
        srv.stop()

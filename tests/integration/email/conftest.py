"""A gateway with the embedded SMTP server on (CONVERGER_SMTP_PORT), retry waits scaled down."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from tests.integration.telegram.conftest import chat_env
from tests.support.api import Api
from tests.support.server import Server, free_port


@pytest.fixture(scope="session")
def mail_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    srv = Server(tmp_path_factory.mktemp("mail"), env={
        **chat_env(), "CONVERGER_SMTP_PORT": str(port), "CONVERGER_SMTP_HOST": "127.0.0.1",
        "CONVERGER_SMTP_MAX_BYTES": "2000000"}).start()
    srv.smtp_port = port  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
async def mapi(mail_server: Server, session: aiohttp.ClientSession) -> Api:
    return Api(session, mail_server.url)

"""Hole 9 (issue 13): the one-time setup link printed at start-up dies as soon as any admin
exists — here one made by ``converger admin create`` while the server runs."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from tests.integration.web.conftest import Client, create_admin


async def test_setup_link_dies_when_an_admin_is_created_elsewhere(make_server: Any) -> None:
    srv = make_server()
    deadline = time.monotonic() + 10
    while (link := re.search(r"/admin/setup/([\w-]+)", srv.log())) is None:
        assert time.monotonic() < deadline, srv.log()
        await asyncio.sleep(0.05)
    path = link.group(0)
    await asyncio.to_thread(create_admin, srv.data_dir, "ops@example.com", "operator password")
    c = Client(srv.url)
    try:
        status, _, _ = await c.get(path)
        assert status == 404
        status, _, _ = await c.post(path, {"name": "Second", "email": "second@example.com",
                                           "password": "long enough pw"}, csrf=False)
        assert status in (403, 404)
        assert await c.login("second@example.com", "long enough pw") != 302
        assert await c.login("ops@example.com", "operator password") == 302
    finally:
        await c.close()

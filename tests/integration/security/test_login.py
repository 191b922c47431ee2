"""Hole 10 (issue 13): a cookie dies at logout (server-side sessions); failed logins are also
limited per IP and in all; password checks run on a bounded pool of their own, so a login
flood is refused early instead of queueing behind the shared thread pool."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.integration.web.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Client


async def test_cookie_copied_before_logout_no_longer_works(make_server: Any) -> None:
    srv = make_server(admin=True)
    for area in ("admin",):
        c = Client(srv.url)
        try:
            assert await c.login(ADMIN_EMAIL, ADMIN_PASSWORD, area=area) == 302
            cookies = {m.key: m.value for m in c.session.cookie_jar}
            status, _, _ = await c.post(f"/{area}/logout", {})
            assert status == 302
        finally:
            await c.close()
        async with aiohttp.ClientSession(cookies=cookies) as stolen:
            async with stolen.get(f"{srv.url}/{area}", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["location"] == f"/{area}/login"


async def test_failed_logins_are_limited_per_ip_whatever_the_email(make_server: Any) -> None:
    srv = make_server(admin=True)
    c = Client(srv.url)
    try:
        for i in range(20):  # 20 accounts, one try each: under the per-(IP, e-mail) limit
            assert await c.login(f"guess{i}@example.com", "wrong password") == 401
        # The IP is now refused, even for an account it never tried (and the right password).
        assert await c.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 429
    finally:
        await c.close()


async def test_password_checks_are_bounded(make_server: Any) -> None:
    srv = make_server(admin=True, env={"CONVERGER_LOGIN_HASH_THREADS": "1",
                                       "CONVERGER_LOGIN_HASH_QUEUE": "2",
                                       "CONVERGER_LOGIN_FAIL_PER_IP": "0"})
    clients = [Client(srv.url) for _ in range(24)]
    try:
        for c in clients:  # the login page first: each has its CSRF token
            await c.get("/admin/login")

        async def attempt(i: int, c: Client) -> int:
            status, _, _ = await c.post("/admin/login", {"email": f"flood{i}@example.com",
                                                         "password": "wrong password"})
            return status

        statuses = await asyncio.gather(*(attempt(i, c) for i, c in enumerate(clients)))
        assert set(statuses) <= {401, 503}, statuses
        assert statuses.count(503) > 0, statuses  # refused at once, not queued
        assert statuses.count(401) >= 2, statuses
        # The real admin gets in once the flood has passed.
        assert await clients[0].login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
    finally:
        for c in clients:
            await c.close()

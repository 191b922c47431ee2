"""Hole 6 (issue 13): uploads count against the tenant's limits and a per-tenant storage
quota (nothing written past it); conversation creation is rate limited too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.realtime.conftest import bearer, make_cg_world
from tests.support.api import Api

CG = "/api/v1/converger"


def _form(content: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", content, filename="f.bin", content_type="application/octet-stream")
    return form


async def test_storage_quota_and_conversation_limit(make_server: Any) -> None:
    srv = make_server(env={"CONVERGER_TENANT_UPLOAD_QUOTA": "250000",
                           "CONVERGER_RATE_LIMIT_CONVERSATIONS": "5"})
    async with aiohttp.ClientSession() as s:
        api = Api(s, srv.url)
        cg = await make_cg_world(api)  # one conversation made
        cid, h = cg["conv_id"], bearer(cg["conv_token"])
        path = f"{CG}/conversations/{cid}/upload"
        answers = []
        for _ in range(4):
            status, body, _ = await api.call("POST", path, headers=h, data=_form(b"u" * 100_000))
            answers.append((status, body.get("code") if isinstance(body, dict) else None))
        assert answers[:2] == [(200, None), (200, None)], answers
        assert answers[2:] == [(413, "storage_quota")] * 2, answers
        stored = list((Path(srv.data_dir) / "uploads" / cg["tenant"]["id"]).iterdir())
        assert len(stored) == 2  # nothing written past the quota
        # Conversations: 5 a minute per tenant (one made above).
        made = []
        for _ in range(5):
            status, _, _ = await api.call("POST", f"{CG}/conversations",
                                          headers=bearer(cg["token"]))
            made.append(status)
        assert made == [201, 201, 201, 201, 429], made
        status, body, _ = await api.call("POST", "/api/v1/conversations",
                                         headers={"x-channel-token": await api.channel_token(
                                             cg["channel"]["id"])}, json={})
        assert status == 429, body


async def test_uploads_count_against_the_activity_limit(make_server: Any) -> None:
    srv = make_server(env={"CONVERGER_RATE_LIMIT_ACTIVITIES": "3"})
    async with aiohttp.ClientSession() as s:
        api = Api(s, srv.url)
        cg = await make_cg_world(api)
        cid, h = cg["conv_id"], bearer(cg["conv_token"])
        statuses = []
        for _ in range(5):
            status, _, _ = await api.call("POST", f"{CG}/conversations/{cid}/upload", headers=h,
                                          data=_form(b"x" * 1000))
            statuses.append(status)
        assert statuses == [200, 200, 200, 429, 429], statuses

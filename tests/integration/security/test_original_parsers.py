"""The original's HTTP parsers (issue 13): form-encoded and multipart bodies with Plug's nested
names, validated exactly as JSON; HEAD on every GET route; ``_method`` overrides."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.api import Api


async def test_form_and_multipart_bodies_create_activities(api: Api) -> None:
    s = await api.setup("forms")
    conv, key = s["conversation"]["id"], {"x-api-key": s["api_key"]}
    path = f"/api/v1/conversations/{conv}/activities"
    body = await api.ok("POST", path, 201, headers=key, data={
        "text": "from a form", "sender": "alice", "metadata[source]": "form",
        "metadata[tags][]": "a"})
    assert body["data"]["text"] == "from a form" and body["data"]["sender"] == "alice"
    assert body["data"]["metadata"] == {"source": "form", "tags": ["a"]}
    multipart = aiohttp.FormData()
    multipart.add_field("text", "from multipart")
    multipart.add_field("metadata[k]", "v")
    body = await api.ok("POST", path, 201, headers=key, data=multipart)
    assert body["data"]["text"] == "from multipart" and body["data"]["metadata"] == {"k": "v"}
    # The same validation as JSON: a list where a string goes is 422, an unknown wrapper too.
    status, problem, _ = await api.call("POST", path, headers=key, data={"text[]": "x"})
    assert status == 422 and problem["code"] == "validation_failed", problem
    status, problem, _ = await api.call("POST", path, headers=key,
                                        data={"text": "x" * 2_000_000})
    assert status == 413, problem
    listed = await api.ok("GET", path, headers=key)
    assert [a["text"] for a in listed["data"]] == ["from a form", "from multipart"]
    # The management API too.
    made = await api.ok("POST", "/api/admin/tenants", 201, headers=api.admin,
                        data={"name": "form-tenant"})
    assert made["data"]["name"] == "form-tenant"


async def test_head_on_every_get_route(api: Api, server: Any) -> None:
    s = await api.setup("heads")
    conv, key = s["conversation"]["id"], {"x-api-key": s["api_key"]}
    for path, headers in (("/livez", {}), ("/readyz", {}), ("/api/openapi.json", {}),
                          ("/static/converger.js", {}), ("/admin/login", {}),
                          (f"/api/v1/conversations/{conv}", key),
                          (f"/api/v1/conversations/{conv}/activities", key),
                          ("/api/admin/tenants", api.admin),
                          ("/api/v1/conversations/not-a-uuid", key)):
        got, _, gh = await api.call("GET", path, headers=headers)
        async with aiohttp.ClientSession() as s2, s2.head(server.url + path,
                                                          headers=headers) as r:
            assert r.status == got, (path, r.status, got)
            assert await r.read() == b""
            assert r.headers.get("content-type") == gh.get("content-type"), path
    # HEAD where there is no GET is still 405.
    async with aiohttp.ClientSession() as s2, s2.head(server.url + "/api/v1/tokens") as r:
        assert r.status == 405


async def test_method_override(api: Api) -> None:
    t = await api.tenant("override")
    src = await api.channel(t["id"], name="src", type="webhook", mode="duplex",
                            config={"url": "http://127.0.0.1:9/x", "allow_unsigned": True})
    dst = await api.channel(t["id"], name="dst", type="websocket")
    key = {"x-api-key": t["api_key"]}
    rule = (await api.ok("POST", "/api/v1/routing_rules", 201, headers=key, data={
        "routing_rule[name]": "r", "routing_rule[source_channel_id]": src["id"],
        "routing_rule[target_channel_ids][]": dst["id"]}))["data"]
    assert rule["target_channel_ids"] == [dst["id"]]
    path = f"/api/v1/routing_rules/{rule['id']}"
    changed = await api.ok("POST", path, headers=key, data={
        "_method": "PATCH", "routing_rule[enabled]": "false"})
    assert changed["data"]["enabled"] is False
    changed = await api.ok("POST", path, headers={**key, "x-http-method-override": "PUT"},
                           json={"routing_rule": {"enabled": True}})
    assert changed["data"]["enabled"] is True
    await api.ok("POST", path, 204, headers=key, data={"_method": "DELETE"})
    status, _, _ = await api.call("GET", path, headers=key)
    assert status == 404

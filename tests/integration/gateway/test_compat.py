"""The compatible API (reference §4.1 rows 1–10, §5) against the real server: every route, its
happy path, tenant isolation, token scoping and the status checks of reference §17."""

from __future__ import annotations

from typing import Any

import jwt

from tests.support.api import Api

from .checks import NIL, key, problem, tok

# A webhook nobody listens on (port 9, discard): duplex channels for routing rules.
HOOK = {"url": "http://127.0.0.1:9/hook"}


# -- POST /api/v1/tokens --------------------------------------------------------------------
async def test_mint_user_token(api: Api) -> None:
    s = await api.setup("tok")
    conv = s["conversation"]
    status, body, _ = await api.call("POST", "/api/v1/tokens", headers=tok(s["channel_token"]),
                                     json={"conversation_id": conv["id"], "user_id": "u-1"})
    assert status == 201 and body["expires_in"] == 3600
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["conversation_id"] == conv["id"]
    assert claims["tenant_id"] == s["tenant"]["id"] and claims["sub"] == "u-1"
    assert claims["exp"] - claims["iat"] == 3600 and claims["iss"] == claims["aud"] == "Joken"
    # The token works for its conversation.
    assert (await api.call("GET", f"/api/v1/conversations/{conv['id']}",
                           headers=tok(body["token"])))[0] == 200


async def test_mint_user_token_errors(api: Api) -> None:
    s = await api.setup("tok-err")
    cid = s["conversation"]["id"]
    good = {"conversation_id": cid, "user_id": "u"}
    problem(await api.call("POST", "/api/v1/tokens", json=good), 400, "error",
            "missing_channel_token")
    problem(await api.call("POST", "/api/v1/tokens", json=good, headers=tok("not.a.jwt")), 401)
    for body in ({"user_id": "u"}, {"conversation_id": cid}, {}):
        problem(await api.call("POST", "/api/v1/tokens", json=body,
                               headers=tok(s["channel_token"])), 400, "error")
    problem(await api.call("POST", "/api/v1/tokens", headers=tok(s["channel_token"]),
                           json={"conversation_id": NIL, "user_id": "u"}), 404)
    problem(await api.call("POST", "/api/v1/tokens", headers=tok(s["channel_token"]),
                           json={"conversation_id": "nope", "user_id": "u"}), 400)
    # A user token is not a channel token.
    user = (await api.ok("POST", "/api/v1/tokens", 201, json=good,
                         headers=tok(s["channel_token"])))["token"]
    problem(await api.call("POST", "/api/v1/tokens", json=good, headers=tok(user)), 403)
    # Another channel's token: the conversation answers as if it did not exist.
    other = await api.channel(s["tenant"]["id"], name="other")
    other_tok = await api.channel_token(other["id"])
    assert (await api.call("POST", "/api/v1/tokens", json=good, headers=tok(other_tok)))[1] == \
        (await api.call("POST", "/api/v1/tokens", headers=tok(other_tok),
                        json={"conversation_id": NIL, "user_id": "u"}))[1]


# -- conversations --------------------------------------------------------------------------
async def test_create_and_show_conversation(api: Api) -> None:
    s = await api.setup("conv")
    status, body, headers = await api.call(
        "POST", "/api/v1/conversations", headers=tok(s["channel_token"]),
        json={"metadata": {"topic": "billing"}, "tenant_id": NIL, "channel_id": NIL})
    assert status == 201 and headers["content-type"].startswith("application/json")
    conv = body["data"]
    assert set(conv) == {"id", "status", "metadata", "channel_id", "tenant_id", "inserted_at",
                         "updated_at"}
    # tenant and channel come from the token, never from the body.
    assert conv["tenant_id"] == s["tenant"]["id"] and conv["channel_id"] == s["channel"]["id"]
    assert conv["status"] == "active" and conv["metadata"] == {"topic": "billing"}
    shown = await api.ok("GET", f"/api/v1/conversations/{conv['id']}", headers=key(s["api_key"]))
    assert shown["data"] == conv
    # The channel token is TenantAuth too.
    assert (await api.ok("GET", f"/api/v1/conversations/{conv['id']}",
                         headers=tok(s["channel_token"])))["data"] == conv
    # An empty body is fine.
    status, body, _ = await api.call("POST", "/api/v1/conversations", headers=tok(s["channel_token"]))
    assert status == 201 and body["data"]["metadata"] == {}


async def test_create_conversation_errors(api: Api) -> None:
    s = await api.setup("conv-err")
    problem(await api.call("POST", "/api/v1/conversations", json={}), 400, "error",
            "missing_channel_token")
    problem(await api.call("POST", "/api/v1/conversations", json={}, headers=tok("x.y.z")), 401)
    problem(await api.call("POST", "/api/v1/conversations", headers=tok(s["channel_token"]),
                           json={"status": "weird"}), 422)
    problem(await api.call("POST", "/api/v1/conversations", headers=tok(s["channel_token"]),
                           json={"metadata": "not an object"}), 422)


async def test_inactive_channel_cannot_open_conversations(api: Api) -> None:
    s = await api.setup("inactive-ch")
    await api.ok("PATCH", f"/api/admin/channels/{s['channel']['id']}", json={"status": "inactive"},
                 headers=api.admin)
    body = problem(await api.call("POST", "/api/v1/conversations", json={},
                                  headers=tok(s["channel_token"])), 400, "error")
    assert body["error"] == "Channel is inactive"
    # reference §17: posting to a conversation of an inactive channel is not checked.
    await api.post_activity(s["conversation"]["id"], s["api_key"], text="still fine")


async def test_inactive_tenant_is_401_on_tenant_auth(api: Api) -> None:
    s = await api.setup("inactive-t")
    cid = s["conversation"]["id"]
    await api.ok("PATCH", f"/api/admin/tenants/{s['tenant']['id']}", json={"status": "inactive"},
                 headers=api.admin)
    for method, path in (("GET", f"/api/v1/conversations/{cid}"),
                         ("GET", f"/api/v1/conversations/{cid}/activities"),
                         ("POST", f"/api/v1/conversations/{cid}/activities"),
                         ("GET", "/api/v1/routing_rules")):
        body = problem(await api.call(method, path, json={} if method == "POST" else None,
                                      headers=key(s["api_key"])), 401, "error")
        assert body["error"] == "Unauthorized: Invalid or inactive API Key"
        body = problem(await api.call(method, path, json={} if method == "POST" else None,
                                      headers=tok(s["channel_token"])), 401, "error")
        assert body["error"] == "Unauthorized: Tenant is not active"
    # Minting a user token checks the tenant too.
    problem(await api.call("POST", "/api/v1/tokens", headers=tok(s["channel_token"]),
                           json={"conversation_id": cid, "user_id": "u"}), 403)
    await api.ok("PATCH", f"/api/admin/tenants/{s['tenant']['id']}", json={"status": "active"},
                 headers=api.admin)
    await api.ok("GET", f"/api/v1/conversations/{cid}", headers=key(s["api_key"]))


async def test_tenant_auth_header_precedence(api: Api) -> None:
    s = await api.setup("precedence")
    path = f"/api/v1/conversations/{s['conversation']['id']}"
    # x-api-key present (even empty) wins: no fallback to a good token.
    for bad in ("", "cvk_wrong"):
        body = problem(await api.call("GET", path, headers={"x-api-key": bad,
                                                            **tok(s["channel_token"])}), 401, "error")
        assert body["error"] == "Unauthorized: Invalid or inactive API Key"
    body = problem(await api.call("GET", path), 401, "error", "missing_credentials")
    assert body["error"] == "Unauthorized: Missing authentication headers"
    body = problem(await api.call("GET", path, headers=tok("garbage")), 401, "error")
    assert body["error"] == "Unauthorized: Invalid token"
    # x-tenant-id is ignored.
    problem(await api.call("GET", path, headers={"x-tenant-id": s["tenant"]["id"]}), 401, "error")


# -- activities -----------------------------------------------------------------------------
async def test_post_and_list_activities(api: Api) -> None:
    s = await api.setup("acts")
    cid = s["conversation"]["id"]
    a = await api.post_activity(cid, s["api_key"], text="hello", metadata={"k": 1},
                                attachments=[{"type": "image", "url": "https://x/y.png"}],
                                idempotency_key="body-key-is-discarded", unknown="ignored")
    assert {"id", "type", "sender", "text", "attachments", "metadata", "idempotency_key",
            "conversation_id", "tenant_id", "inserted_at", "seq"} <= set(a)
    assert a["type"] == "message" and a["sender"] == "user" and a["text"] == "hello"
    assert a["idempotency_key"] is None and a["seq"] == 1
    assert a["tenant_id"] == s["tenant"]["id"] and a["conversation_id"] == cid
    b = await api.post_activity(cid, s["api_key"], type="event", sender="bot", text=None)
    assert (b["type"], b["sender"], b["seq"]) == ("event", "bot", 2)
    listed = (await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                           headers=key(s["api_key"])))["data"]
    assert [x["id"] for x in listed] == [a["id"], b["id"]]
    assert listed[0] == a
    with_d = (await api.ok("GET", f"/api/v1/conversations/{cid}/activities?include=deliveries",
                           headers=tok(s["channel_token"])))["data"]
    assert all(isinstance(x["deliveries"], list) for x in with_d)
    problem(await api.call("GET", f"/api/v1/conversations/{cid}/activities?include=bogus",
                           headers=key(s["api_key"])), 400)


async def test_idempotent_replay_returns_the_same_activity(api: Api) -> None:
    s = await api.setup("idem")
    cid = s["conversation"]["id"]
    first = await api.post_activity(cid, s["api_key"], key="k-1", text="one")
    again = await api.post_activity(cid, s["api_key"], key="k-1", text="different")
    assert again == first and first["idempotency_key"] == "k-1"
    other = await api.post_activity(cid, s["api_key"], key="k-2", text="two")
    assert other["id"] != first["id"]
    problem(await api.call("POST", f"/api/v1/conversations/{cid}/activities", json={},
                           headers={**key(s["api_key"]), "x-idempotency-key": "x" * 256}), 400)


async def test_closed_conversation_takes_no_activities(api: Api) -> None:
    s = await api.setup("closed")
    conv = await api.conversation(s["channel_token"], status="closed")
    body = problem(await api.call("POST", f"/api/v1/conversations/{conv['id']}/activities",
                                  json={"text": "hi"}, headers=key(s["api_key"])), 409, "error",
                   "conversation_closed")
    assert body["error"] == "conversation is closed"
    assert (await api.ok("GET", f"/api/v1/conversations/{conv['id']}/activities",
                         headers=key(s["api_key"])))["data"] == []


async def test_deliveries_are_enqueued_for_outbound_channels(api: Api) -> None:
    t = await api.tenant("deliv")
    ch = await api.channel(t["id"], name="hook", type="webhook", config=HOOK)
    conv = await api.conversation(await api.channel_token(ch["id"]))
    a = await api.post_activity(conv["id"], t["api_key"], text="out")
    rows = (await api.ok("GET", f"/api/admin/deliveries?activity_id={a['id']}",
                         headers=api.admin))["data"]
    assert [(d["channel_id"], d["activity_id"]) for d in rows] == [(ch["id"], a["id"])]
    assert "claim_token" not in rows[0]


# -- routing rules --------------------------------------------------------------------------
async def _rule_world(api: Api, name: str) -> dict[str, Any]:
    t = await api.tenant(name)
    chans = [await api.channel(t["id"], name=n, type="webhook", config=HOOK) for n in ("a", "b", "c")]
    return {"tenant": t, "key": key(t["api_key"]), "a": chans[0], "b": chans[1], "c": chans[2]}


async def test_routing_rule_crud(api: Api) -> None:
    w = await _rule_world(api, "rules")
    h = w["key"]
    body = {"routing_rule": {"name": "a-to-b", "source_channel_id": w["a"]["id"],
                             "target_channel_ids": [w["b"]["id"]], "tenant_id": NIL}}
    created = (await api.ok("POST", "/api/v1/routing_rules", 201, json=body, headers=h))["data"]
    assert created["tenant_id"] == w["tenant"]["id"] and created["enabled"] is True
    assert created["inserted_at"].endswith("Z") and len(created["inserted_at"]) == 20
    rid = created["id"]
    assert (await api.ok("GET", f"/api/v1/routing_rules/{rid}", headers=h))["data"] == created
    patched = (await api.ok("PATCH", f"/api/v1/routing_rules/{rid}", headers=h,
                            json={"routing_rule": {"enabled": False}}))["data"]
    assert patched["enabled"] is False and patched["name"] == "a-to-b"
    put = (await api.ok("PUT", f"/api/v1/routing_rules/{rid}", headers=h, json={"routing_rule": {
        "target_channel_ids": [w["b"]["id"], w["c"]["id"]]}}))["data"]
    assert put["target_channel_ids"] == [w["b"]["id"], w["c"]["id"]]
    second = (await api.ok("POST", "/api/v1/routing_rules", 201, headers=h, json={"routing_rule": {
        "name": "0-first", "source_channel_id": w["c"]["id"],
        "target_channel_ids": [w["b"]["id"]]}}))["data"]
    listed = (await api.ok("GET", "/api/v1/routing_rules", headers=h))["data"]
    assert [r["name"] for r in listed] == ["0-first", "a-to-b"]  # by name
    status, body, _ = await api.call("DELETE", f"/api/v1/routing_rules/{rid}", headers=h)
    assert status == 204 and body == b""
    problem(await api.call("GET", f"/api/v1/routing_rules/{rid}", headers=h), 404)
    problem(await api.call("DELETE", f"/api/v1/routing_rules/{rid}", headers=h), 404)
    problem(await api.call("PATCH", f"/api/v1/routing_rules/{rid}", headers=h,
                           json={"routing_rule": {"enabled": True}}), 404)
    # Every change was audited as the tenant API.
    audit = (await api.ok("GET", f"/api/admin/audit?resource_type=routing_rule&tenant_id="
                                 f"{w['tenant']['id']}&limit=50", headers=api.admin))["data"]
    mine = [(e["action"], e["resource_id"]) for e in audit if e["resource_id"] == rid]
    assert sorted(mine) == sorted([("create", rid), ("update", rid), ("update", rid),
                                   ("delete", rid)])
    assert {e["actor_type"] for e in audit} == {"tenant_api"}
    assert second["id"] in {e["resource_id"] for e in audit}


async def test_routing_rule_validation_over_http(api: Api) -> None:
    w = await _rule_world(api, "rules-v")
    h = w["key"]
    a, b = w["a"]["id"], w["b"]["id"]

    async def post(rule: dict[str, Any]) -> dict[str, Any]:
        return problem(await api.call("POST", "/api/v1/routing_rules", headers=h,
                                      json={"routing_rule": rule}), 422, "errors")["errors"]

    assert await post({"name": "x", "source_channel_id": a, "target_channel_ids": [a]}) == {
        "target_channel_ids": ["cannot include the source channel"]}
    assert "name" in await post({"source_channel_id": a, "target_channel_ids": [b]})
    assert await post({"name": "x", "source_channel_id": a, "target_channel_ids": []}) == {
        "target_channel_ids": ["should have at least 1 item(s)"]}
    other = await api.tenant("rules-v-other")
    theirs = await api.channel(other["id"], name="theirs", type="webhook", config=HOOK)
    assert await post({"name": "x", "source_channel_id": a, "target_channel_ids": [theirs["id"]]}) \
        == {"target_channel_ids": ["all channels must belong to the same tenant"]}
    await api.ok("POST", "/api/v1/routing_rules", 201, headers=h, json={"routing_rule": {
        "name": "ab", "source_channel_id": a, "target_channel_ids": [b]}})
    assert await post({"name": "ba", "source_channel_id": b, "target_channel_ids": [a]}) == {
        "target_channel_ids": ["would create a routing cycle"]}
    assert await post({"name": "ab", "source_channel_id": b, "target_channel_ids": [w["c"]["id"]]}) \
        == {"name": ["has already been taken"]}
    # Wrong types and unknown fields inside the wrapper.
    assert "target_channel_ids" in await post({"name": "x", "source_channel_id": a,
                                               "target_channel_ids": "not-a-list"})
    await post({"name": "x", "source_channel_id": a, "target_channel_ids": [b], "bogus": 1})


async def test_missing_routing_rule_wrapper_is_400(api: Api) -> None:
    w = await _rule_world(api, "rules-w")
    for body in ({"name": "x"}, {"routing_rule": "not an object"}, {}):
        problem(await api.call("POST", "/api/v1/routing_rules", headers=w["key"], json=body), 400,
                "errors", "missing_wrapper")
    rule = await api.ok("POST", "/api/v1/routing_rules", 201, headers=w["key"], json={
        "routing_rule": {"name": "r", "source_channel_id": w["a"]["id"],
                         "target_channel_ids": [w["b"]["id"]]}})
    problem(await api.call("PATCH", f"/api/v1/routing_rules/{rule['data']['id']}",
                           headers=w["key"], json={"enabled": False}), 400, "errors")


# -- isolation and scoping ------------------------------------------------------------------
async def test_tenant_isolation_every_route(api: Api) -> None:
    a = await api.setup("iso-a", type="webhook", config=HOOK)
    b = await api.setup("iso-b")
    cid = a["conversation"]["id"]
    rule = (await api.ok("POST", "/api/v1/routing_rules", 201, headers=key(a["api_key"]), json={
        "routing_rule": {"name": "r", "source_channel_id": a["channel"]["id"],
                         "target_channel_ids": [(await api.channel(a["tenant"]["id"], "t2", type="webhook", config=HOOK))["id"]]}}
    ))["data"]
    routes = [
        ("GET", "/api/v1/conversations/{}", None),
        ("GET", "/api/v1/conversations/{}/activities", None),
        ("POST", "/api/v1/conversations/{}/activities", {"text": "intrude"}),
    ]
    for creds in (key(b["api_key"]), tok(b["channel_token"])):
        for method, path, body in routes:
            theirs = await api.call(method, path.format(cid), json=body, headers=creds)
            nothing = await api.call(method, path.format(NIL), json=body, headers=creds)
            problem(theirs, 404)
            assert theirs[1] == nothing[1]
        for method, body in (("GET", None), ("PATCH", {"routing_rule": {"enabled": False}}),
                             ("PUT", {"routing_rule": {"enabled": False}}), ("DELETE", None)):
            theirs = await api.call(method, f"/api/v1/routing_rules/{rule['id']}", json=body,
                                    headers=creds)
            nothing = await api.call(method, f"/api/v1/routing_rules/{NIL}", json=body,
                                     headers=creds)
            # A channel token changes no routing rule, anyone's (issue 13): 403 whatever the id.
            problem(theirs, 403 if method != "GET" and "x-channel-token" in creds else 404)
            assert theirs[1] == nothing[1]
        assert rule["id"] not in [r["id"] for r in (await api.ok(
            "GET", "/api/v1/routing_rules", headers=creds))["data"]]
    # B's channel token cannot mint a user token for A's conversation.
    theirs = await api.call("POST", "/api/v1/tokens", headers=tok(b["channel_token"]),
                            json={"conversation_id": cid, "user_id": "u"})
    nothing = await api.call("POST", "/api/v1/tokens", headers=tok(b["channel_token"]),
                             json={"conversation_id": NIL, "user_id": "u"})
    problem(theirs, 404)
    assert theirs[1] == nothing[1]
    # Nothing of A changed.
    assert (await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                         headers=key(a["api_key"])))["data"] == []
    assert (await api.ok("GET", f"/api/v1/routing_rules/{rule['id']}",
                         headers=key(a["api_key"])))["data"]["enabled"] is True


async def test_conversation_token_reaches_only_its_conversation(api: Api) -> None:
    s = await api.setup("scope")
    mine = s["conversation"]["id"]
    other = (await api.conversation(s["channel_token"]))["id"]
    user = (await api.ok("POST", "/api/v1/tokens", 201, headers=tok(s["channel_token"]),
                         json={"conversation_id": mine, "user_id": "u"}))["token"]
    h = tok(user)
    await api.ok("GET", f"/api/v1/conversations/{mine}", headers=h)
    await api.ok("POST", f"/api/v1/conversations/{mine}/activities", 201, json={"text": "ok"},
                 headers=h)
    await api.ok("GET", f"/api/v1/conversations/{mine}/activities", headers=h)
    for method, path, body in (("GET", f"/api/v1/conversations/{other}", None),
                               ("GET", f"/api/v1/conversations/{other}/activities", None),
                               ("POST", f"/api/v1/conversations/{other}/activities", {"text": "x"})):
        problem(await api.call(method, path, json=body, headers=h), 404)
    # A conversation token does not manage the tenant's routing rules.
    problem(await api.call("GET", "/api/v1/routing_rules", headers=h), 403)
    problem(await api.call("POST", "/api/v1/routing_rules", headers=h, json={"routing_rule": {
        "name": "x", "source_channel_id": s["channel"]["id"], "target_channel_ids": [NIL]}}), 403)
    # It cannot open conversations either (it is not a channel token).
    problem(await api.call("POST", "/api/v1/conversations", json={}, headers=h), 401)
    # The channel token reaches every conversation of the tenant (reference §3.5).
    await api.ok("GET", f"/api/v1/conversations/{other}", headers=tok(s["channel_token"]))

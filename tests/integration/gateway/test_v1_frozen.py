"""``/api/v1`` is frozen (docs/api-versioning.md): these tests pin, against the real server, every
member the original's clients read (reference §5) with its JSON type, and the error bodies'
legacy members. Additions are allowed (a client ignores members it does not know); removing or
retyping a member pinned here is a breaking change and belongs in a new version path."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api

from .checks import NIL, key, tok

HOOK = {"url": "http://127.0.0.1:9/hook"}
STR, OBJ, LIST, BOOL, INT, STR_OR_NULL = str, dict, list, bool, int, (str, type(None))

CONVERSATION = {"id": STR, "status": STR, "metadata": OBJ, "channel_id": STR, "tenant_id": STR,
                "inserted_at": STR, "updated_at": STR}
ACTIVITY = {"id": STR, "type": STR, "sender": STR, "text": STR_OR_NULL, "attachments": LIST,
            "metadata": OBJ, "idempotency_key": STR_OR_NULL, "conversation_id": STR,
            "tenant_id": STR, "inserted_at": STR}
RULE = {"id": STR, "name": STR, "source_channel_id": STR, "target_channel_ids": LIST,
        "enabled": BOOL, "tenant_id": STR, "inserted_at": STR, "updated_at": STR}


def pinned(obj: Any, shape: dict[str, Any]) -> None:
    assert isinstance(obj, dict), obj
    missing = set(shape) - set(obj)
    assert not missing, f"frozen members gone: {missing} in {obj}"
    for name, kind in shape.items():
        assert isinstance(obj[name], kind) and not (kind is INT and isinstance(obj[name], bool)), \
            (name, obj[name])


async def test_v1_success_shapes_are_pinned(api: Api) -> None:
    t = await api.tenant("frozen")
    a = await api.channel(t["id"], name="a", type="webhook", config=HOOK)
    b = await api.channel(t["id"], name="b", type="webhook", config=HOOK)
    ctok = await api.channel_token(a["id"])
    status, body, headers = await api.call("POST", "/api/v1/conversations", headers=tok(ctok),
                                           json={"metadata": {"k": "v"}})
    assert status == 201 and set(body) == {"data"} and headers["API-Version"] == "1"
    conv = body["data"]
    pinned(conv, CONVERSATION)
    assert conv["inserted_at"].endswith("Z")
    pinned((await api.ok("GET", f"/api/v1/conversations/{conv['id']}", headers=key(t["api_key"])))
           ["data"], CONVERSATION)

    token = await api.ok("POST", "/api/v1/tokens", 201, headers=tok(ctok),
                         json={"conversation_id": conv["id"], "user_id": "u"})
    pinned(token, {"token": STR, "expires_in": INT})
    assert token["expires_in"] == 3600

    posted = await api.ok("POST", f"/api/v1/conversations/{conv['id']}/activities", 201,
                          headers={**key(t["api_key"]), "x-idempotency-key": "k1"},
                          json={"text": "hi"})
    assert set(posted) == {"data"}
    pinned(posted["data"], ACTIVITY)
    assert posted["data"]["idempotency_key"] == "k1" and posted["data"]["sender"] == "user"
    listed = await api.ok("GET", f"/api/v1/conversations/{conv['id']}/activities",
                          headers=key(t["api_key"]))
    assert set(listed) == {"data"} and len(listed["data"]) == 1
    pinned(listed["data"][0], ACTIVITY)

    rule = await api.ok("POST", "/api/v1/routing_rules", 201, headers=key(t["api_key"]), json={
        "routing_rule": {"name": "r", "source_channel_id": a["id"], "target_channel_ids": [b["id"]]}})
    pinned(rule["data"], RULE)
    rules = await api.ok("GET", "/api/v1/routing_rules", headers=key(t["api_key"]))
    assert isinstance(rules["data"], list)
    pinned(rules["data"][0], RULE)


async def test_v1_error_bodies_keep_the_legacy_members(api: Api) -> None:
    """Problem documents (RFC 9457) that still carry the original's ``errors``/``error``."""
    s = await api.setup("frozen-errors")
    status, body, _ = await api.call("POST", "/api/v1/conversations")
    assert status == 400 and body["error"] == "Missing x-channel-token header"
    status, body, _ = await api.call("GET", f"/api/v1/conversations/{NIL}", headers=key(s["api_key"]))
    assert status == 404 and body["errors"] == {"detail": "Not Found"}
    status, body, _ = await api.call("GET", f"/api/v1/conversations/{NIL}", headers=key("cvk_nope"))
    assert status == 401 and body["error"] == "Unauthorized: Invalid or inactive API Key"
    status, body, _ = await api.call("POST", "/api/v1/routing_rules", headers=key(s["api_key"]),
                                     json={"routing_rule": {"source_channel_id": NIL}})
    assert status == 422 and isinstance(body["errors"], dict)

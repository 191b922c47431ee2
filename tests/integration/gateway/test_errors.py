"""Every bad input class → its 4xx and an RFC 9457 problem body that also carries the
original's member (``errors`` or ``error``), never a 500."""

from __future__ import annotations

import pytest

from tests.support.api import Api

from .checks import NIL, key, problem, tok


@pytest.fixture(scope="module")
async def s(api: Api):
    return await api.setup("errors")


async def test_malformed_json(api: Api, s) -> None:
    cid = s["conversation"]["id"]
    for raw in (b"{", b"{'a': 1}", b"nul", b"\xff\xfe", b'{"text": "x",}'):
        problem(await api.call("POST", f"/api/v1/conversations/{cid}/activities", data=raw,
                               headers={**key(s["api_key"]), "content-type": "application/json"}),
                400, "errors", "malformed_json")
    # The token route keeps the original's plain {"error": ...} member.
    problem(await api.call("POST", "/api/v1/tokens", data=b"{", headers=tok(s["channel_token"])),
            400, "error", "malformed_json")
    problem(await api.call("POST", "/api/admin/tenants", data=b"[1,", headers=api.admin), 400)
    # Not an object at all.
    problem(await api.call("POST", f"/api/v1/conversations/{cid}/activities", data=b"[1, 2]",
                           headers=key(s["api_key"])), 400, "errors", "body_not_object")
    deep = b'{"metadata": ' + b'{"a": ' * 40 + b"1" + b"}" * 41
    problem(await api.call("POST", f"/api/v1/conversations/{cid}/activities", data=deep,
                           headers=key(s["api_key"])), 400, "errors", "json_too_deep")


async def test_wrong_types(api: Api, s) -> None:
    cid = s["conversation"]["id"]
    for field, value in (("text", 5), ("attachments", "x"), ("attachments", [1]),
                         ("metadata", []), ("sender", None), ("type", {"a": 1})):
        body = problem(await api.call("POST", f"/api/v1/conversations/{cid}/activities",
                                      json={field: value}, headers=key(s["api_key"])),
                       422, "errors", "validation_failed")
        assert field in body["errors"], body
    body = problem(await api.call("POST", "/api/admin/tenants", json={"name": 5},
                                  headers=api.admin), 422, "errors")
    assert "name" in body["errors"]
    body = problem(await api.call("POST", "/api/admin/tenants", json={}, headers=api.admin), 422)
    assert body["errors"] == {"name": ["can't be blank"]}


async def test_unknown_fields_on_management_bodies(api: Api, s) -> None:
    tid, chid = s["tenant"]["id"], s["channel"]["id"]
    for method, path, body in (
        ("POST", "/api/admin/tenants", {"name": "x", "api_key": "mine"}),
        ("PATCH", f"/api/admin/tenants/{tid}", {"nmae": "typo"}),
        ("POST", "/api/admin/channels", {"tenant_id": tid, "name": "x", "type": "echo",
                                         "secret": "mine"}),
        ("PATCH", f"/api/admin/channels/{chid}", {"type": "webhook"}),
        ("POST", "/api/admin/routing_rules", {"tenant_id": tid, "name": "x", "colour": "red"}),
        ("POST", "/api/admin/tokens", {"name": "x", "scope": "all"}),
    ):
        got = problem(await api.call(method, path, json=body, headers=api.admin), 422, "errors",
                      "validation_failed")
        assert list(got["errors"].values()) == [["is not a known field"]], got


async def test_oversize_body_is_413(api: Api, s) -> None:
    cid = s["conversation"]["id"]
    big = {"text": "x" * (1_048_576 + 10)}
    problem(await api.call("POST", f"/api/v1/conversations/{cid}/activities", json=big,
                           headers=key(s["api_key"])), 413, "error", "payload_too_large")
    problem(await api.call("POST", "/api/admin/tenants", json={"name": "y" * 1_100_000},
                           headers=api.admin), 413, "error")
    # Past the transport limit Sanic refuses it before the handler: still a problem body.
    huge = b"{" + b" " * (11 * 1024 * 1024) + b"}"
    status, body, _ = await api.call("POST", f"/api/v1/conversations/{cid}/activities", data=huge,
                                     headers=key(s["api_key"]))
    assert status == 413


async def test_malformed_uuids_are_400(api: Api, s) -> None:
    h = key(s["api_key"])
    for method, path in (
        ("GET", "/api/v1/conversations/not-a-uuid"),
        ("GET", "/api/v1/conversations/123/activities"),
        ("POST", "/api/v1/conversations/zz/activities"),
        ("GET", "/api/v1/routing_rules/nope"),
        ("PATCH", "/api/v1/routing_rules/nope"),
        ("DELETE", "/api/v1/routing_rules/nope"),
    ):
        problem(await api.call(method, path, json={} if method != "GET" else None, headers=h),
                400, "errors", "invalid_uuid")
    for method, path in (("GET", "/api/admin/tenants/x"), ("PATCH", "/api/admin/tenants/x"),
                         ("DELETE", "/api/admin/tenants/x"),
                         ("POST", "/api/admin/tenants/x/rotate-key"),
                         ("GET", "/api/admin/channels/x"), ("POST", "/api/admin/channels/x/token"),
                         ("POST", "/api/admin/channels/x/rotate-secret"),
                         ("GET", "/api/admin/conversations?tenant_id=x"),
                         ("GET", "/api/admin/deliveries?activity_id=x"),
                         ("POST", "/api/admin/deliveries/x/retry"),
                         ("DELETE", "/api/admin/tokens/x")):
        problem(await api.call(method, path, json={} if method in ("PATCH",) else None,
                               headers=api.admin), 400, "errors", "invalid_uuid")
    problem(await api.call("POST", "/api/admin/channels", headers=api.admin,
                           json={"tenant_id": "x", "name": "n", "type": "echo"}), 400)


async def test_missing_auth(api: Api, s) -> None:
    cid = s["conversation"]["id"]
    for method, path in (("GET", f"/api/v1/conversations/{cid}"),
                         ("GET", f"/api/v1/conversations/{cid}/activities"),
                         ("POST", f"/api/v1/conversations/{cid}/activities"),
                         ("GET", "/api/v1/routing_rules"), ("POST", "/api/v1/routing_rules")):
        problem(await api.call(method, path, json={} if method == "POST" else None), 401, "error",
                "missing_credentials")
    for method, path in (("GET", "/api/admin/tenants"), ("POST", "/api/admin/tenants"),
                         ("GET", "/api/admin/channels"), ("GET", "/api/admin/audit"),
                         ("GET", "/api/admin/deliveries"), ("GET", "/api/admin/tokens")):
        problem(await api.call(method, path), 401, "errors", "missing_credentials")
        problem(await api.call(method, path, headers={"authorization": "Bearer wrong"}), 401,
                "errors", "invalid_admin_token")
        problem(await api.call(method, path, headers={"authorization": "Basic abc"}), 401, "errors")
        # A tenant API key is not an admin token.
        problem(await api.call(method, path, headers={"authorization": f"Bearer {s['api_key']}"}),
                401, "errors")


async def test_wrong_accept_is_406(api: Api, s) -> None:
    cid = s["conversation"]["id"]
    for accept in ("text/html", "text/plain, image/png"):
        problem(await api.call("GET", f"/api/v1/conversations/{cid}",
                               headers={**key(s["api_key"]), "accept": accept}), 406, "errors",
                "not_acceptable")
        problem(await api.call("GET", "/api/admin/tenants",
                               headers={**api.admin, "accept": accept}), 406)
    for accept in ("*/*", "application/json", "application/*", "text/html, application/json"):
        assert (await api.call("GET", f"/api/v1/conversations/{cid}",
                               headers={**key(s["api_key"]), "accept": accept}))[0] == 200


async def test_unknown_route_and_method(api: Api, s) -> None:
    problem(await api.call("GET", "/api/v1/nothing-here"), 404, "errors")
    status, _, headers = await api.call("DELETE", "/api/v1/conversations", headers=tok("x"))
    assert status == 405 and headers["content-type"].startswith("application/problem+json")


async def test_bad_query_args(api: Api, s) -> None:
    for q in ("limit=0", "limit=abc", "limit=100000", "cursor=%%%"):
        problem(await api.call("GET", f"/api/admin/tenants?{q}", headers=api.admin), 400)
    problem(await api.call("GET", "/api/admin/deliveries?status=lost", headers=api.admin), 400)


async def test_nothing_is_500(api: Api, s) -> None:
    """Odd inputs that used to crash the original answer 4xx here."""
    cid = s["conversation"]["id"]
    user = (await api.ok("POST", "/api/v1/tokens", 201, headers=tok(s["channel_token"]),
                         json={"conversation_id": cid, "user_id": "u"}))["token"]
    cases = [
        ("POST", "/api/v1/tokens", {"conversation_id": cid, "user_id": "u"}, tok(user)),
        ("POST", "/api/v1/tokens", {"conversation_id": 5, "user_id": []}, tok(s["channel_token"])),
        ("POST", "/api/v1/conversations", {"metadata": None}, tok(s["channel_token"])),
        ("POST", "/api/v1/conversations", {}, tok(user)),
        ("POST", f"/api/v1/conversations/{NIL}/activities", {"text": "x"}, key(s["api_key"])),
        ("POST", "/api/v1/routing_rules", {"routing_rule": {"name": "x",
                                                            "source_channel_id": "not-uuid",
                                                            "target_channel_ids": ["x"]}},
         key(s["api_key"])),
        ("POST", "/api/v1/routing_rules", {"routing_rule": {"name": None,
                                                            "target_channel_ids": None}},
         key(s["api_key"])),
    ]
    for method, path, body, headers in cases:
        status, got, _ = await api.call(method, path, json=body, headers=headers)
        assert 400 <= status < 500, (path, body, status, got)


async def test_nul_in_names_is_422_not_500(api: Api, s) -> None:
    """SQLite's length() stops at NUL, so such a name would break the schema's CHECK."""
    tid, chid = s["tenant"]["id"], s["channel"]["id"]
    for method, path, body, headers in (
        ("POST", "/api/admin/tenants", {"name": "\u0000"}, api.admin),
        ("PATCH", f"/api/admin/tenants/{tid}", {"name": "\u0000x"}, api.admin),
        ("POST", "/api/admin/channels", {"tenant_id": tid, "name": "\u0000", "type": "echo"},
         api.admin),
        ("PATCH", f"/api/admin/channels/{chid}", {"name": "\u0000"}, api.admin),
        ("POST", "/api/v1/routing_rules", {"routing_rule": {
            "name": "\u0000", "source_channel_id": chid, "target_channel_ids": [NIL]}},
         key(s["api_key"])),
    ):
        body = problem(await api.call(method, path, json=body, headers=headers), 422, "errors")
        assert body["errors"]["name"] == ["is invalid"], body

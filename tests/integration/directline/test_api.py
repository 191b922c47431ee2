"""The Direct Line 3.0 mount over HTTP: tokens, conversations, activities with watermarks,
the full activity schema on both APIs, and bad input in Direct Line's error shape."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.api import Api

from .conftest import DL, bearer, expired_token, make_dl_world

CG = "/api/v1/converger"


def dl_error(body: Any, code: str = "BadArgument") -> str:
    """Direct Line's ErrorResponse, inside the problem+json body; the message."""
    assert body["error"]["code"] == code, body
    assert isinstance(body["code"], str) and body["status"] >= 400
    return str(body["error"]["message"])


async def test_secret_starts_a_conversation_and_talks_to_the_echo_bot(
    api: Api, dl: dict[str, Any]
) -> None:
    conv = dl["conv"]
    assert set(conv) == {"conversationId", "token", "expires_in", "streamUrl"}
    url = urlsplit(conv["streamUrl"])
    assert url.scheme == "ws" and url.path == f"{DL}/conversations/{dl['conv_id']}/stream"
    assert parse_qs(url.query)["t"] == [conv["token"]]
    cid = dl["conv_id"]
    # The secret stays the client's Bearer on every route (what the official client does).
    for cred in (dl["secret"], dl["token"]):
        posted = await api.ok("POST", f"{DL}/conversations/{cid}/activities", headers=bearer(cred),
                              json={"type": "message", "text": "hi", "from": {"id": "u1"}})
        assert isinstance(posted["id"], str)
    page = await api.ok("GET", f"{DL}/conversations/{cid}/activities", headers=bearer(dl["secret"]))
    texts = [(a["from"]["id"], a["from"]["role"], a.get("text")) for a in page["activities"]]
    assert texts == [("u1", "user", "hi"), ("bot", "bot", "hi")] * 2
    first = page["activities"][0]
    assert first["conversation"] == {"id": cid} and first["channelId"] == "directline"
    assert "conversationId" not in first and first["timestamp"]
    # Nothing after the last watermark; the watermark stays.
    again = await api.ok("GET", f"{DL}/conversations/{cid}/activities?watermark={page['watermark']}",
                         headers=bearer(dl["token"]))
    assert again == {"activities": [], "watermark": page["watermark"]}


async def test_token_generate_scopes_a_conversation_and_refresh_keeps_it(
    api: Api, dl: dict[str, Any]
) -> None:
    gen = await api.ok("POST", f"{DL}/tokens/generate", headers=bearer(dl["secret"]))
    assert set(gen) == {"conversationId", "token", "expires_in"} and gen["expires_in"] == 1800
    started = await api.ok("POST", f"{DL}/conversations", headers=bearer(gen["token"]))
    assert started["conversationId"] == gen["conversationId"]
    refreshed = await api.ok("POST", f"{DL}/tokens/refresh", headers=bearer(gen["token"]))
    assert refreshed["conversationId"] == gen["conversationId"]
    assert refreshed["token"] != gen["token"]
    await api.ok("POST", f"{DL}/conversations/{gen['conversationId']}/activities",
                 headers=bearer(refreshed["token"]), json={"type": "message", "text": "x",
                                                          "from": {"id": "u"}})
    # Generate wants the secret; refresh wants a token.
    status, body, _ = await api.call("POST", f"{DL}/tokens/generate", headers=bearer(gen["token"]))
    assert status == 403 and dl_error(body)
    status, body, _ = await api.call("POST", f"{DL}/tokens/refresh", headers=bearer(dl["secret"]))
    assert status == 403 and dl_error(body)


async def test_bad_credentials_are_403_in_direct_lines_shape(api: Api, dl: dict[str, Any]) -> None:
    cid = dl["conv_id"]
    paths = [("POST", f"{DL}/conversations"), ("GET", f"{DL}/conversations/{cid}"),
             ("POST", f"{DL}/conversations/{cid}/activities"),
             ("GET", f"{DL}/conversations/{cid}/activities"), ("POST", f"{DL}/tokens/refresh")]
    expired = expired_token(dl)
    for method, path in paths:
        status, body, headers = await api.call(method, path, headers=bearer(expired),
                                               json={"type": "message"})
        assert status == 403 and dl_error(body, "TokenExpired") == "Token expired", (path, body)
        assert headers["content-type"] == "application/problem+json"
        for bad in ("not-a-secret", "a.b.c", dl["token"][:-4] + "AAAA"):
            status, body, _ = await api.call(method, path, headers=bearer(bad))
            assert status == 403 and dl_error(body) == "Invalid token or secret", (path, bad)
        status, body, _ = await api.call(method, path)
        assert status == 401 and dl_error(body) == "Missing token or secret"
    # The Converger API keeps its 401 for the same token.
    status, body, _ = await api.call("GET", f"{CG}/conversations/{cid}", headers=bearer(expired))
    assert status == 401 and body["error"]["code"] == "Unauthorized"


async def test_other_conversations_and_their_watermarks(api: Api, dl: dict[str, Any]) -> None:
    other = await make_dl_world(api)
    mine = await api.ok("POST", f"{DL}/conversations", 201, headers=bearer(dl["secret"]))
    path = f"{DL}/conversations/{dl['conv_id']}/activities"
    # A token for another conversation: 403; another channel's secret: 404 (no oracle).
    for token in (mine["token"], other["token"]):
        status, body, _ = await api.call("GET", path, headers=bearer(token))
        assert status == 403 and dl_error(body)
    status, body, _ = await api.call("GET", path, headers=bearer(other["secret"]))
    assert status == 404 and dl_error(body)
    # A watermark from another conversation, or one that is not a watermark: 400.
    await api.ok("POST", f"{DL}/conversations/{other['conv_id']}/activities",
                 headers=bearer(other["token"]), json={"type": "message", "text": "x"})
    foreign = (await api.ok("GET", f"{DL}/conversations/{other['conv_id']}/activities",
                            headers=bearer(other["token"])))["watermark"]
    for wm in (foreign, "garbage", "AAAA"):
        for url in (f"{path}?watermark={wm}", f"{DL}/conversations/{dl['conv_id']}?watermark={wm}"):
            status, body, _ = await api.call("GET", url, headers=bearer(dl["token"]))
            assert status == 400 and dl_error(body), (url, body)
    status, body, _ = await api.call("GET", f"{DL}/conversations/not-a-uuid", headers=bearer(dl["token"]))
    assert status == 400 and dl_error(body)


async def test_malformed_and_unknown_activities(api: Api, dl: dict[str, Any]) -> None:
    path = f"{DL}/conversations/{dl['conv_id']}/activities"
    h = {**bearer(dl["token"]), "content-type": "application/json"}
    for raw in (b"{not json", b"[1,2]", b'"x"', b"{}", b'{"type": "sing"}', b'{"type": 5}',
                b'{"type": "message", "from": "me"}', b'{"type": "message", "entities": {}}',
                b'{"type": "message", "textFormat": "html"}', b"[" * 100 + b"]" * 100,
                b'{"type": "message", "text": "\xff"}'):
        status, body, _ = await api.call("POST", path, data=raw, headers=h)
        assert status == 400 and dl_error(body), (raw, body)
    status, body, _ = await api.call("POST", path, data=b"{" + b" " * 2_000_000 + b"}", headers=h)
    assert status == 413 and dl_error(body)
    status, body, _ = await api.call("DELETE", path, headers=h)
    assert status == 405 and dl_error(body)


ALL_FIELDS = {
    "type": "message", "text": "**pick**", "from": {"id": "ann", "name": "Ann", "role": "user"},
    "locale": "en-GB", "textFormat": "markdown", "attachmentLayout": "carousel",
    "inputHint": "expectingInput", "replyToId": "0d1c", "name": "choose",
    "value": {"choice": 2, "deep": {"list": [1, None, "x"]}},
    "entities": [{"type": "ClientCapabilities", "requiresBotState": True}],
    "suggestedActions": {"actions": [{"type": "imBack", "title": "Yes", "value": "yes"}],
                         "to": ["ann"]},
    "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                     "content": {"type": "AdaptiveCard", "version": "1.3", "body": []}}],
    "channelData": {"clientActivityID": "c-1"}, "speak": "pick", "localTimezone": "Europe/London",
}


async def test_the_whole_schema_is_kept_on_both_apis(api: Api, dl: dict[str, Any]) -> None:
    cid = dl["conv_id"]
    await api.ok("POST", f"{DL}/conversations/{cid}/activities", headers=bearer(dl["token"]),
                 json=ALL_FIELDS)
    (a, reply) = (await api.ok("GET", f"{DL}/conversations/{cid}/activities",
                               headers=bearer(dl["token"])))["activities"]
    for key, value in ALL_FIELDS.items():
        assert a[key] == value, key
    assert reply["from"] == {"id": "bot", "role": "bot"} and reply["text"] == "**pick**"
    cg = (await api.ok("GET", f"{CG}/conversations/{cid}/activities",
                       headers=bearer(dl["token"])))["activities"]
    for key, value in ALL_FIELDS.items():
        assert cg[0][key] == value, key
    # An activity without Direct Line fields keeps the Converger API's exact shape.
    assert set(cg[1]) == {"id", "type", "from", "text", "timestamp", "attachments",
                          "conversationId", "channelData"} and cg[1]["from"] == {"id": "bot"}
    # An Adaptive Card submit whose value is null is still kept; the client cannot be the bot.
    await api.ok("POST", f"{CG}/conversations/{cid}/activities", headers=bearer(dl["token"]),
                 json={"type": "message", "value": None, "from": {"id": "x", "role": "bot"}})
    await api.ok("POST", f"{DL}/conversations/{cid}/activities", headers=bearer(dl["token"]),
                 json={"type": "message", "value": None, "from": {"id": "x", "role": "bot"}})
    last = [x for x in (await api.ok("GET", f"{DL}/conversations/{cid}/activities",
                                     headers=bearer(dl["token"])))["activities"]
            if x["from"]["id"] == "x"]
    assert [x["value"] for x in last] == [None, None]
    assert [x["from"]["role"] for x in last] == ["bot", "user"]  # the Converger API trusts it


async def test_typing_is_neither_polled_nor_echoed(api: Api, dl: dict[str, Any]) -> None:
    cid, h = dl["conv_id"], bearer(dl["token"])
    for body in ({"type": "typing", "from": {"id": "u"}},
                 {"type": "event", "name": "webchat/join", "value": {"language": "en"}}):
        await api.ok("POST", f"{DL}/conversations/{cid}/activities", headers=h, json=body)
    page = await api.ok("GET", f"{DL}/conversations/{cid}/activities", headers=h)
    assert [(a["type"], a.get("name"), a["from"]["role"]) for a in page["activities"]] == [
        ("event", "webchat/join", "user"), ("message", None, "bot")]  # the event's echo
    assert page["activities"][0]["value"] == {"language": "en"}


async def test_client_activity_id_makes_a_retry_safe(api: Api, dl: dict[str, Any]) -> None:
    cid, h = dl["conv_id"], bearer(dl["token"])
    body = {"type": "message", "text": "once", "channelData": {"clientActivityID": "abc"}}
    first = await api.ok("POST", f"{DL}/conversations/{cid}/activities", headers=h, json=body)
    again = await api.ok("POST", f"{DL}/conversations/{cid}/activities", headers=h, json=body)
    assert first == again
    page = await api.ok("GET", f"{DL}/conversations/{cid}/activities", headers=h)
    assert [a.get("text") for a in page["activities"]] == ["once", "once"]  # message and echo


async def test_cors_preflight_allows_the_clients_headers(make_server, session) -> None:
    origin = "http://127.0.0.1:5999"
    srv = make_server(env={"CORS_ORIGINS": origin})
    api = Api(session, srv.url)
    status, _, h = await api.call("OPTIONS", f"{DL}/conversations", headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,x-ms-bot-agent,x-requested-with"})
    assert status == 204 and h["access-control-allow-origin"] == origin
    allowed = {x.lower() for x in h["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-ms-bot-agent", "x-requested-with"} <= allowed


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "str", "list", "dict"][: 5 if depth > 3 else 7]
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 2**63, -(2**70), rng.randint(-999, 999)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e-300])
    if kind == "str":
        return rng.choice(["", "message", "typing", "x" * 300, "\u0000", "é🙂", "bot", "../.."])
    if kind == "list":
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(list(ALL_FIELDS) + ["id", "conversation", "recipient", "x"]):
            _junk(rng, depth + 1) for _ in range(rng.randint(0, 4))}


async def test_random_bad_input_is_never_a_server_error(api: Api, dl: dict[str, Any]) -> None:
    """Seeded junk in every field, watermark and path id: a 2xx or Direct Line's 4xx shape."""
    rng = random.Random(20)
    cid, h = dl["conv_id"], bearer(dl["token"])
    seen: set[int] = set()
    for _ in range(150):
        body = dict(ALL_FIELDS)
        for key in rng.sample(sorted(body), rng.randint(1, 4)):
            body[key] = _junk(rng)
        status, answer, _ = await api.call("POST", f"{DL}/conversations/{cid}/activities",
                                           json=body, headers=h)
        seen.add(status)
        assert status in (200, 400), (body, answer)
        if status == 400:
            assert answer["error"]["code"] == "BadArgument"
    assert seen == {200, 400}
    for wm in ("", "=", "%00", "A" * 500, "MDA", "bm90LWEtdXVpZA", "-_-_"):
        status, answer, _ = await api.call(
            "GET", f"{DL}/conversations/{cid}/activities?watermark={wm}", headers=h)
        assert status in (200, 400), (wm, answer)
    for ident in ("x", "%20", "0" * 36, "00000000-0000-0000-0000-00000000000g", "a" * 400):
        for method, suffix in (("GET", ""), ("GET", "/activities"), ("POST", "/activities"),
                               ("POST", "/upload"), ("GET", "/stream")):
            status, answer, _ = await api.call(method, f"{DL}/conversations/{ident}{suffix}",
                                               headers=h, json={"type": "message"})
            assert 400 <= status < 500 and answer["error"]["code"] == "BadArgument", (
                method, ident, suffix, answer)


async def test_a_token_bound_to_a_user_posts_only_as_that_user(api: Api, dl: dict[str, Any]) -> None:
    gen = await api.ok("POST", f"{DL}/tokens/generate", headers=bearer(dl["secret"]),
                       json={"user": {"id": "dl_ann", "name": "Ann"}})
    started = await api.ok("POST", f"{DL}/conversations", headers=bearer(gen["token"]))
    refreshed = await api.ok("POST", f"{DL}/tokens/refresh", headers=bearer(started["token"]))
    cid = gen["conversationId"]
    for token in (gen["token"], started["token"], refreshed["token"]):
        await api.ok("POST", f"{DL}/conversations/{cid}/activities", headers=bearer(token),
                     json={"type": "message", "text": "hi", "from": {"id": "mallory"}})
    await api.ok("POST", f"{CG}/conversations/{cid}/activities", headers=bearer(gen["token"]),
                 json={"type": "message", "text": "hi", "from": {"id": "mallory"}})
    page = await api.ok("GET", f"{DL}/conversations/{cid}/activities", headers=bearer(gen["token"]))
    assert {a["from"]["id"] for a in page["activities"]} == {"dl_ann", "bot"}
    status, body, _ = await api.call("POST", f"{DL}/tokens/generate", headers=bearer(dl["secret"]),
                                     json={"user": {"id": "x" * 300}})
    assert status == 400 and dl_error(body)
    status, body, _ = await api.call("POST", f"{DL}/tokens/generate", headers=bearer(dl["secret"]),
                                     json={"user": "ann"})
    assert status == 400 and dl_error(body)

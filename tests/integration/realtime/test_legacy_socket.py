"""The legacy socket (``/socket/websocket``) against the real server: framing, heartbeats,
joins, replay, client pushes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import Server

from .phx import Phx

PATH = "/socket/websocket"


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0", ""])
async def test_framing_heartbeat_join_and_live_push(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any], vsn: str
) -> None:
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"], vsn=vsn)
    ref = await phx.send("phoenix", "heartbeat", {})
    hb = await phx.reply(ref)
    assert (hb.topic, hb.join_ref, hb.payload) == ("phoenix", None, {"status": "ok", "response": {}})
    topic = f"conversation:{world['conv_id']}"
    joined = await phx.join(topic)
    assert joined.payload == {"status": "ok", "response": {}}
    assert joined.join_ref == joined.ref
    a = await api.post_activity(world["conv_id"], world["api_key"], text="hello", sender="bob")
    push = await phx.expect(lambda f: f.event == "new_activity")
    assert push.topic == topic and push.ref is None
    assert push.payload == {"id": a["id"], "text": "hello", "sender": "bob",
                            "inserted_at": a["inserted_at"], "seq": a["seq"]}
    raw = phx.raw[-1]
    assert raw.startswith("[") if vsn == "2.0.0" else raw.startswith("{")
    await phx.close()


@pytest.mark.parametrize("token", ["", "garbage", "eyJhbGciOiJIUzI1NiJ9.e30.bad"])
async def test_bad_token_refuses_the_upgrade_with_403(
    server: Server, session: aiohttp.ClientSession, token: str
) -> None:
    for path in (PATH, "/socket/converger/websocket"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await Phx.connect(session, server.ws_url, path, token)
        assert exc.value.status == 403


async def test_converger_token_cannot_open_legacy_only_paths_the_other_way(
    server: Server, session: aiohttp.ClientSession, world: dict[str, Any]
) -> None:
    # A legacy user token is no Converger token: the Converger socket refuses it.
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await Phx.connect(session, server.ws_url, "/socket/converger/websocket", world["user_token"])
    assert exc.value.status == 403


async def test_unsupported_vsn_is_refused(
    server: Server, session: aiohttp.ClientSession, world: dict[str, Any]
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await Phx.connect(session, server.ws_url, PATH, world["user_token"], vsn="9.9.9")
    assert exc.value.status == 400


async def test_join_authorisation_matrix(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any]
) -> None:
    from .conftest import make_world

    other = await make_world(api)  # another tenant
    same_tenant_conv = await api.conversation(world["channel_token"])
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    cases = {
        f"conversation:{world['conv_id']}": "ok",
        f"conversation:{same_tenant_conv['id']}": "unauthorized",
        f"conversation:{other['conv_id']}": "unauthorized",
        "conversation:not-a-uuid": "unauthorized",
        f"converger:conversation:{world['conv_id']}": "unmatched topic",
        "rooms:lobby": "unmatched topic",
    }
    for topic, want in cases.items():
        reply = await phx.join(topic)
        got = reply.payload["status"] if want == "ok" else reply.payload["response"].get("reason")
        assert got == want, (topic, reply)
    # A channel token (unscoped) connects but joins nothing.
    chan = await Phx.connect(session, server.ws_url, PATH, world["channel_token"])
    reply = await chan.join(f"conversation:{world['conv_id']}")
    assert reply.payload == {"status": "error", "response": {"reason": "unauthorized"}}
    await phx.close()
    await chan.close()


async def test_messages_to_an_unjoined_topic_and_leave(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any]
) -> None:
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    topic = f"conversation:{world['conv_id']}"
    r = await phx.push(topic, "new_activity", {"text": "x"})
    assert r.payload == {"status": "error", "response": {"reason": "unmatched topic"}}
    joined = await phx.join(topic)
    r = await phx.push(topic, "phx_leave", {}, join_ref=joined.join_ref)
    assert r.payload["status"] == "ok"
    close = await phx.expect(lambda f: f.event == "phx_close")
    assert close.topic == topic and close.join_ref == joined.join_ref
    await api.post_activity(world["conv_id"], world["api_key"], text="after leave")
    assert await phx.quiet("new_activity")
    await phx.close()


async def test_replay_after_last_activity_id_loses_and_duplicates_nothing(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any]
) -> None:
    cid, key = world["conv_id"], world["api_key"]
    topic = f"conversation:{cid}"
    for i in range(3):
        await api.post_activity(cid, key, text=f"m{i}")
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    await phx.join(topic)
    await api.post_activity(cid, key, text="m3")
    seen = await phx.events("new_activity", 1)
    assert [f.payload["text"] for f in seen] == ["m3"]
    last_id = seen[-1].payload["id"]
    await phx.close()
    # While disconnected:
    for i in range(4, 9):
        await api.post_activity(cid, key, text=f"m{i}")
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    assert (await phx.join(topic, {"last_activity_id": last_id})).payload["status"] == "ok"
    await api.post_activity(cid, key, text="m9")
    got = await phx.events("new_activity", 6)
    assert [f.payload["text"] for f in got] == [f"m{i}" for i in range(4, 10)]
    seqs = [f.payload["seq"] for f in got]
    assert seqs == sorted(set(seqs))
    assert await phx.quiet("new_activity")
    # An unknown (but well-formed) id replays everything; a malformed one is refused.
    await phx.close()
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    await phx.join(topic, {"last_activity_id": "00000000-0000-4000-8000-000000000000"})
    assert len(await phx.events("new_activity", 10)) == 10
    r = await phx.join(topic, {"last_activity_id": "nope"})
    assert r.payload == {"status": "error", "response": {"reason": "invalid last_activity_id"}}
    await phx.close()


async def test_client_push_creates_an_activity_once(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any]
) -> None:
    cid = world["conv_id"]
    topic = f"conversation:{cid}"
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    joined = await phx.join(topic)
    body = {"text": "from socket", "sender": "alice", "idempotency_key": "k-1",
            "inserted_at": "1999-01-01T00:00:00Z", "tenant_id": "forced"}
    r = await phx.push(topic, "new_activity", body, joined.join_ref)
    assert r.payload["status"] == "ok"
    created = r.payload["response"]
    echo = await phx.expect(lambda f: f.event == "new_activity")
    assert echo.payload["id"] == created["id"] and echo.payload["sender"] == "u1"  # the token's user, not the sent sender (issue 13)
    assert not echo.payload["inserted_at"].startswith("1999")
    # The same idempotency key: the same activity, no second broadcast.
    r2 = await phx.push(topic, "new_activity", body, joined.join_ref)
    assert r2.payload["response"]["id"] == created["id"]
    assert await phx.quiet("new_activity")
    listed = await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                          headers={"x-api-key": world["api_key"]})
    assert [a["text"] for a in listed["data"]] == ["from socket"]
    for bad in ({"text": 5}, {"attachments": "x"}, {"metadata": []}, [1, 2],
                {"idempotency_key": ""}):
        r = await phx.push(topic, "new_activity", bad, joined.join_ref)
        assert r.payload["status"] == "error", bad
        assert r.payload["response"]["reason"] == "invalid_activity"
    r = await phx.push(topic, "typing", {}, joined.join_ref)
    assert r.payload == {"status": "error", "response": {"reason": "unknown event"}}
    # The channel still works after the bad input.
    r = await phx.push(topic, "new_activity", {"text": "still fine"}, joined.join_ref)
    assert r.payload["status"] == "ok"
    await phx.close()


async def test_closed_conversation_refuses_socket_pushes(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any]
) -> None:
    from .conftest import user_token

    conv = await api.conversation(world["channel_token"], status="closed")
    tok = await user_token(api, world["channel_token"], conv["id"])
    phx = await Phx.connect(session, server.ws_url, PATH, tok)
    topic = f"conversation:{conv['id']}"
    joined = await phx.join(topic)
    r = await phx.push(topic, "new_activity", {"text": "late"}, joined.join_ref)
    assert r.payload["status"] == "error"
    assert r.payload["response"]["reason"] == "conversation_closed"
    await phx.close()


async def test_disabled_tenant_cannot_join(
    server: Server, session: aiohttp.ClientSession, api: Api
) -> None:
    from .conftest import make_world

    w = await make_world(api)
    await api.ok("PATCH", f"/api/admin/tenants/{w['tenant']['id']}", json={"status": "inactive"},
                 headers=api.admin)
    phx = await Phx.connect(session, server.ws_url, PATH, w["user_token"])
    r = await phx.join(f"conversation:{w['conv_id']}")
    assert r.payload == {"status": "error", "response": {"reason": "unauthorized"}}
    await phx.close()


async def test_sigterm_closes_open_sockets_and_exits(tmp_path: Any,
                                                     session: aiohttp.ClientSession) -> None:
    from tests.support.api import Api as _Api

    from .conftest import make_world

    srv = Server(tmp_path / "term").start()
    api = _Api(session, srv.url)
    w = await make_world(api)
    phx = await Phx.connect(session, srv.ws_url, PATH, w["user_token"])
    await phx.join(f"conversation:{w['conv_id']}")
    import asyncio

    code = await asyncio.to_thread(srv.stop, 15.0)
    assert code == 0, srv.log()
    msg = await phx.ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_reconnecting_while_others_post_sees_every_activity_once(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any]
) -> None:
    """A client that keeps dropping and rejoining (with ``last_activity_id``) while activities
    are being posted ends with every activity exactly once, in seq order."""
    import asyncio

    cid, key, n = world["conv_id"], world["api_key"], 120
    topic = f"conversation:{cid}"

    async def post_all() -> None:
        sem = asyncio.Semaphore(4)

        async def one(i: int) -> None:
            async with sem:
                await api.post_activity(cid, key, text=f"m{i}")

        await asyncio.gather(*(one(i) for i in range(n)))

    posting: asyncio.Future[None] | None = None
    seqs: list[int] = []
    last_id = None
    rounds = 0
    while len(seqs) < n:
        rounds += 1
        assert rounds < 200, seqs
        phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
        await phx.join(topic, {"last_activity_id": last_id} if last_id else {})
        if posting is None:  # the first join (no replay) comes before any post
            posting = asyncio.ensure_future(post_all())
        for _ in range(7):  # read a few, then drop the connection mid-stream
            try:
                f = await phx.expect(lambda f: f.event == "new_activity", timeout=2)
            except TimeoutError:
                break
            seqs.append(f.payload["seq"])
            last_id = f.payload["id"]
        await phx.close()
    assert posting is not None
    await posting
    assert seqs == list(range(1, n + 1))
    assert rounds > 5

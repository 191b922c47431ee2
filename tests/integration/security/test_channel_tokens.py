"""Hole 7 (issue 13): a channel's token acts for its channel only — not another channel's
conversations, not the tenant's routing rules — stops working when its channel is deactivated
or deleted, and a secret rotation revokes the tokens issued before it."""

from __future__ import annotations

from tests.integration.realtime.conftest import bearer
from tests.support.api import Api


async def test_channel_token_is_scoped_to_its_channel(api: Api) -> None:
    t = await api.tenant("scoped")
    a = await api.channel(t["id"], name="a", type="webhook", mode="duplex",
                          config={"url": "http://127.0.0.1:9/x"})
    b = await api.channel(t["id"], name="b", type="websocket")
    tok_a, tok_b = await api.channel_token(a["id"]), await api.channel_token(b["id"])
    conv_b = await api.conversation(tok_b)
    ha = {"x-channel-token": tok_a}
    for method, path, body in (
            ("GET", f"/api/v1/conversations/{conv_b['id']}", None),
            ("GET", f"/api/v1/conversations/{conv_b['id']}/activities", None),
            ("POST", f"/api/v1/conversations/{conv_b['id']}/activities", {"text": "x"})):
        status, _, _ = await api.call(method, path, headers=ha, json=body)
        assert status == 404, (method, path, status)
    # Its own channel's conversations still work.
    conv_a = await api.conversation(tok_a)
    await api.ok("GET", f"/api/v1/conversations/{conv_a['id']}/activities", headers=ha)
    # Routing rules are the tenant's: a channel token changes none.
    rule = {"name": "r", "source_channel_id": a["id"], "target_channel_ids": [b["id"]]}
    status, body, _ = await api.call("POST", "/api/v1/routing_rules", headers=ha,
                                     json={"routing_rule": rule})
    assert status == 403 and body["code"] == "token_out_of_scope", body
    made = await api.ok("POST", "/api/v1/routing_rules", 201, json={"routing_rule": rule},
                        headers={"x-api-key": t["api_key"]})
    status, _, _ = await api.call("DELETE", f"/api/v1/routing_rules/{made['data']['id']}",
                                  headers=ha)
    assert status == 403


async def test_channel_token_dies_with_its_channel(api: Api) -> None:
    t = await api.tenant("dying")
    ch = await api.channel(t["id"], type="websocket")
    tok = await api.channel_token(ch["id"])
    conv = await api.conversation(tok)
    path = f"/api/v1/conversations/{conv['id']}/activities"
    await api.ok("PATCH", f"/api/admin/channels/{ch['id']}", json={"status": "inactive"},
                 headers=api.admin)
    status, body, _ = await api.call("GET", path, headers={"x-channel-token": tok})
    assert status == 403 and body["code"] == "channel_inactive", body
    await api.ok("DELETE", f"/api/admin/channels/{ch['id']}", 204, headers=api.admin)
    status, body, _ = await api.call("GET", path, headers={"x-channel-token": tok})
    assert status in (401, 404) and status != 200, body


async def test_secret_rotation_revokes_earlier_tokens(api: Api) -> None:
    t = await api.tenant("rotate")
    ch = await api.channel(t["id"], type="websocket")
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate", headers=bearer(ch["secret"]))
    old = gen["token"]
    legacy = await api.channel_token(ch["id"])
    await api.ok("POST", "/api/v1/converger/tokens/refresh", headers=bearer(old))
    rotated = await api.ok("POST", f"/api/admin/channels/{ch['id']}/rotate-secret",
                           headers=api.admin)
    status, body, _ = await api.call("POST", "/api/v1/converger/tokens/refresh",
                                     headers=bearer(old))
    assert status == 401 and body["code"] == "token_revoked", body
    status, body, _ = await api.call("POST", "/api/v1/conversations", json={},
                                     headers={"x-channel-token": legacy})
    assert status == 401 and body["code"] == "token_revoked", body
    # The new secret's tokens work.
    new = await api.ok("POST", "/api/v1/converger/tokens/generate",
                       headers=bearer(rotated["data"]["secret"]))
    await api.ok("POST", "/api/v1/converger/tokens/refresh", headers=bearer(new["token"]))
    await api.ok("POST", "/api/v1/conversations", 201, json={},
                 headers={"x-channel-token": await api.channel_token(ch["id"])})


async def test_tokens_without_sv_older_than_the_channels_last_change_are_revoked(
        api: Api) -> None:
    """A token issued before tokens carried the secret's fingerprint (``sv``) works only until
    its channel next changes (a rotation included)."""
    import time
    import warnings

    import jwt

    from gateway.tokens import Tokens

    t = await api.tenant("pre-sv")
    ch = await api.channel(t["id"], type="websocket")
    with warnings.catch_warnings():  # the servers' key (tests/support/server.py), short
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        old = Tokens("test-secret-key-0123456789").converger_token(
            ch["id"], t["id"], now=time.time() - 5)  # issued before the channel's last change
    status, body, _ = await api.call("POST", "/api/v1/converger/tokens/refresh",
                                     headers=bearer(old))
    assert status == 401 and body["code"] == "token_revoked", body

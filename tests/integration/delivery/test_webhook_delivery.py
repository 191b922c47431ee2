"""Outbound webhooks end to end: the real server delivers to a real receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac

from standardwebhooks.webhooks import Webhook

from tests.integration.delivery.conftest import SCALE, deliveries, wait_delivery, webhook_setup
from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api


async def test_delivered_body_and_headers_are_documented_and_signed(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "doc", config={"headers": {"x-team": "blue"}})
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="hello",
                                 metadata={"k": 1})
    (call,) = await receiver.wait_calls("doc", 1)
    body = call.json()
    assert list(body) == ["id", "type", "sender", "text", "attachments", "metadata",
                          "conversation_id", "tenant_id", "timestamp"]
    assert body["id"] == a["id"] and body["text"] == "hello" and body["metadata"] == {"k": 1}
    assert body["conversation_id"] == s["conversation"]["id"]
    assert body["tenant_id"] == s["tenant"]["id"]
    assert body["timestamp"] == a["inserted_at"]
    h = {k.lower(): v for k, v in call.headers.items()}
    assert h["content-type"] == "application/json" and h["x-team"] == "blue"
    done = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent")
    assert h["webhook-id"] == done["id"] and done["attempts"] == 1 and done["sent_at"]
    secret = s["channel"]["secret"]
    assert secret.startswith("whsec_")
    # The public library verifies it as it is…
    assert Webhook(secret).verify(call.body, {k: h[k] for k in
                                              ("webhook-id", "webhook-timestamp", "webhook-signature")}) == body
    # …and so does a hand-computed HMAC keyed by the secret string.
    expected = "sha256=" + hmac.new(secret.encode(), call.body, hashlib.sha256).hexdigest()
    assert h["x-converger-signature"] == expected


async def test_three_failures_then_success_ends_sent_after_four_attempts(dapi: Api, receiver: Receiver) -> None:
    receiver.plan("flaky", (500, {}, 0), (500, {}, 0), (500, {}, 0))
    s = await webhook_setup(dapi, receiver, "flaky")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    calls = await receiver.wait_calls("flaky", 4)
    done = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent")
    assert done["attempts"] == 4 and done["last_error"] is None
    gaps = [b.at - a_.at for a_, b in zip(calls, calls[1:], strict=False)]
    # The schedule, scaled: 30, 90, 270 s → 0.03, 0.09, 0.27 s (each gap at least its backoff).
    for gap, wait in zip(gaps, (30, 90, 270), strict=True):
        assert gap >= wait * SCALE * 0.9
    assert gaps[2] > gaps[0]
    assert len({c.headers["webhook-id"] for c in calls}) == 1


async def test_five_failures_end_failed(dapi: Api, receiver: Receiver) -> None:
    receiver.plan("down", *[(500, {}, 0)] * 6)
    s = await webhook_setup(dapi, receiver, "down")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    done = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "failed")
    assert done["attempts"] == 5
    assert done["last_error"].startswith("webhook returned status 500")
    assert len(receiver.calls["down"]) == 5


async def test_gone_fails_at_once(dapi: Api, receiver: Receiver) -> None:
    receiver.plan("gone", (410, {}, 0))
    s = await webhook_setup(dapi, receiver, "gone")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    done = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "failed")
    assert done["attempts"] == 1 and "410" in done["last_error"]


async def test_retry_after_is_honoured_when_longer(dapi: Api, receiver: Receiver) -> None:
    # Retry-After 1000 s (scaled: 1 s) is longer than the first backoff (30 s → 0.03 s).
    receiver.plan("later", (503, {"Retry-After": "1000"}, 0))
    s = await webhook_setup(dapi, receiver, "later")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    first, second = await receiver.wait_calls("later", 2)
    assert second.at - first.at >= 1000 * SCALE * 0.9
    done = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent")
    assert done["attempts"] == 2


async def test_a_timeout_counts_as_a_failed_attempt(dapi: Api, receiver: Receiver) -> None:
    receiver.plan("slow", (200, {}, 3.0))  # the server's attempt timeout is 1 s
    s = await webhook_setup(dapi, receiver, "slow")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    done = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent")
    assert done["attempts"] == 2
    assert len(receiver.calls["slow"]) == 2


async def test_content_filter_block_is_final(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "filtered", transformations=[
        {"type": "add_prefix", "prefix": "[bot] "},
        {"type": "content_filter", "block_patterns": ["secret"]},
    ])
    blocked = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="a secret")
    passed = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="fine")
    done = await wait_delivery(dapi, blocked["id"], lambda d: d["status"] == "failed")
    assert done["attempts"] == 1 and done["last_error"] == "halted: content blocked by filter"
    await wait_delivery(dapi, passed["id"], lambda d: d["status"] == "sent")
    (call,) = receiver.calls["filtered"]
    assert call.json()["text"] == "[bot] fine"


async def test_retry_by_hand_wakes_the_workers(dapi: Api, receiver: Receiver) -> None:
    receiver.plan("manual", (410, {}, 0))
    s = await webhook_setup(dapi, receiver, "manual")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    failed = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "failed")
    status, body, _ = await dapi.call("POST", f"/api/admin/deliveries/{failed['id']}/retry",
                                      headers=dapi.admin)
    assert status == 200 and body["data"]["status"] == "pending"
    done = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent", timeout=5)
    assert done["attempts"] == 1
    status, body, _ = await dapi.call("POST", f"/api/admin/deliveries/{failed['id']}/retry",
                                      headers=dapi.admin)
    assert status == 409 and body["code"] == "not_retryable"


async def test_admin_delivery_list_filters(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "listed")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent")
    rows = await deliveries(dapi, tenant_id=s["tenant"]["id"], status="sent")
    assert [r["activity_id"] for r in rows] == [a["id"]]
    assert "claim_token" not in rows[0]
    assert await deliveries(dapi, channel_id=s["channel"]["id"], status="failed") == []
    status, body, _ = await dapi.call("GET", "/api/admin/deliveries?status=bogus", headers=dapi.admin)
    assert status == 400 and body["code"] == "invalid_query"


async def test_activity_list_includes_deliveries_when_asked(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "included")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent")
    path = f"/api/v1/conversations/{s['conversation']['id']}/activities"
    plain = (await dapi.ok("GET", path, headers={"x-api-key": s["api_key"]}))["data"]
    assert "deliveries" not in plain[0]
    full = (await dapi.ok("GET", path + "?include=deliveries", headers={"x-api-key": s["api_key"]}))["data"]
    (d,) = full[0]["deliveries"]
    assert d["channel_id"] == s["channel"]["id"] and d["status"] == "sent" and d["attempts"] == 1

"""Edges of the WhatsApp routes on the real server: every refusal is a problem+json with a
stable ``code`` (never a 500) and the signature is checked before the body is read; a
provider's ``Retry-After`` holds the delivery back on the queue; Infobip's 400/429 map to the
queue's transitions; Infobip's reports reach a subscribed socket as ``delivery_status``."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

import aiohttp

from adapters.signing import converger_signature
from adapters.whatsapp_meta import sign
from tests.integration.whatsapp.conftest import (
    delivery_of,
    infobip_channel,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import (
    InfobipStandIn,
    MetaStandIn,
    Reply,
    infobip_error,
    infobip_report,
    infobip_text_message,
    meta_error,
    meta_text_notification,
    sample,
)
from tests.integration.whatsapp.test_end_to_end import Socket
from tests.support.api import Api
from tests.support.server import Server

APP_SECRET = "edge-app-secret"


async def _raw(api: Api, path: str, raw: bytes, **headers: str) -> tuple[int, Any, Any]:
    return await api.call("POST", path, data=raw,
                          headers={"content-type": "application/json", **headers})


def _problem(status: int, body: Any, headers: Any, want_status: int, code: str) -> None:
    assert status == want_status, (status, body)
    assert headers["content-type"].startswith("application/problem+json"), headers
    assert body["status"] == want_status and body["code"] == code, body
    assert body["type"] == f"urn:converger:problem:{code}" and body["detail"], body


async def test_refusals_are_problem_json_with_stable_codes(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta, app_secret=APP_SECRET)
    cid = w["channel"]["id"]
    inbound, status_url = f"/api/v1/channels/{cid}/inbound", f"/api/v1/channels/{cid}/status"
    good = json.dumps(meta_text_notification(new_phone(), "edge")).encode()
    garbage = b'{"object": "whatsapp_business_acc'

    # No signature, a wrong one, a right one for other bytes: 401 before the body is parsed.
    for raw, hdrs in ((good, {}), (good, {"X-Hub-Signature-256": sign("wrong", good)}),
                      (good, {"X-Hub-Signature-256": "sha256=zz"}),
                      (garbage, {"X-Hub-Signature-256": sign(APP_SECRET, good)})):
        _problem(*await _raw(wapi, inbound, raw, **hdrs), 401, "invalid_signature")
    _problem(*await _raw(wapi, status_url, good), 401, "invalid_signature")
    # The generic signature, when present, must be right too.
    _problem(*await _raw(wapi, inbound, good, **{"X-Hub-Signature-256": sign(APP_SECRET, good),
                                                "x-converger-signature": "sha256=00"}),
             401, "invalid_signature")

    # Signed but unusable: 400 with the reason.
    signed = {"X-Hub-Signature-256": sign(APP_SECRET, garbage)}
    _problem(*await _raw(wapi, inbound, garbage, **signed), 400, "malformed_json")
    foreign = json.dumps(sample("infobip_inbound_text.json")).encode()
    status, body, headers = await _raw(wapi, inbound, foreign,
                                       **{"X-Hub-Signature-256": sign(APP_SECRET, foreign)})
    _problem(status, body, headers, 400, "unparseable_inbound")
    assert "whatsapp_business_account" in body["detail"] and body["error"] == body["detail"]
    status, body, headers = await _raw(wapi, status_url, good,
                                       **{"X-Hub-Signature-256": sign(APP_SECRET, good)})
    _problem(status, body, headers, 400, "unknown_status_payload")

    # The challenge refuses a wrong token without a 500, and unknown channels are 404.
    status, body, _ = await wapi.call(
        "GET", f"{inbound}?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1")
    assert (status, body) == (403, "Verification failed")
    _problem(*await _raw(wapi, f"/api/v1/channels/{uuid.uuid4()}/inbound", good), 404, "not_found")

    # Signed and right: accepted.
    status, body, _ = await _raw(wapi, inbound, good,
                                 **{"X-Hub-Signature-256": sign(APP_SECRET, good)})
    assert status == 201, body


async def test_inactive_channel_is_refused(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    cid = w["channel"]["id"]
    await wapi.ok("PATCH", f"/api/admin/channels/{cid}", headers=wapi.admin,
                  json={"status": "inactive"})
    raw = json.dumps(meta_text_notification(new_phone(), "anyone?")).encode()
    _problem(*await _raw(wapi, f"/api/v1/channels/{cid}/inbound", raw), 400, "channel_inactive")


async def test_infobip_channel_can_require_the_converger_signature(
    wapi: Api, infobip: InfobipStandIn
) -> None:
    w = await infobip_channel(wapi, infobip, require_signature=True)
    cid, secret = w["channel"]["id"], w["channel"]["secret"]
    raw = json.dumps(infobip_text_message(new_phone(), "signed by a relay")).encode()
    path = f"/api/v1/channels/{cid}/inbound"
    _problem(*await _raw(wapi, path, raw), 401, "signature_required")
    _problem(*await _raw(wapi, path, raw, **{"x-converger-signature": converger_signature("x", raw)}),
             401, "invalid_signature")
    status, body, _ = await _raw(wapi, path, raw,
                                 **{"x-converger-signature": converger_signature(secret, raw)})
    assert status == 201, body


async def test_infobip_basic_credentials_when_configured(wapi: Api, infobip: InfobipStandIn) -> None:
    """Infobip's notification profile can send HTTP Basic credentials; with them configured,
    the channel refuses webhooks without them."""
    w = await infobip_channel(wapi, infobip, webhook_username="infobip", webhook_password="pw-42")
    assert w["channel"]["config"]["webhook_password"] == "****"
    cid = w["channel"]["id"]
    raw = json.dumps(infobip_text_message(new_phone(), "with credentials")).encode()
    path = f"/api/v1/channels/{cid}/inbound"
    wrong = "Basic " + base64.b64encode(b"infobip:nope").decode()
    _problem(*await _raw(wapi, path, raw), 401, "invalid_signature")
    _problem(*await _raw(wapi, path, raw, authorization=wrong), 401, "invalid_signature")
    report = json.dumps(infobip_report("not-ours", "DELIVERED", "1")).encode()
    _problem(*await _raw(wapi, f"/api/v1/channels/{cid}/status", report), 401, "invalid_signature")
    right = "Basic " + base64.b64encode(b"infobip:pw-42").decode()
    status, body, _ = await _raw(wapi, path, raw, authorization=right)
    assert status == 201, body


def _seconds(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


async def _retry_now(api: Api, delivery_id: str) -> None:
    await api.ok("POST", f"/api/admin/deliveries/{delivery_id}/retry", headers=api.admin)


async def test_meta_retry_after_holds_the_delivery_back(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    phone = new_phone()
    _, body = await post_inbound(wapi, w["channel"]["id"], meta_text_notification(phone, "hi"))
    # 100000 s at the test server's backoff scale (0.001) is 100 s; the schedule alone says 0.03 s.
    meta.script.append(Reply(429, meta_error("(#130429) Rate limit hit", 130429),
                             {"Retry-After": "100000"}))
    reply = await wapi.post_activity(body["conversation_id"], w["api_key"], text="later",
                                     sender="agent")
    d = await delivery_of(wapi, reply["id"], lambda d: d["attempts"] == 1)
    assert d["status"] == "pending" and "returned 429" in d["last_error"], d
    assert 95 < _seconds(d["next_attempt_at"], d["updated_at"]) < 105, d
    assert len(meta.requests) == 1
    # An operator makes it due now: it goes, to the same person.
    await _retry_now(wapi, d["id"])
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    assert d["attempts"] == 2 and meta.requests[-1].body["to"] == phone


async def test_infobip_bad_recipient_fails_and_429_waits(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    _, body = await post_inbound(wapi, w["channel"]["id"], infobip_text_message(new_phone(), "hi"))
    conv = body["conversation_id"]

    bad = await wapi.post_activity(conv, w["api_key"], text="to nowhere", sender="agent",
                                   metadata={"recipient_phone": "12345"})
    d = await delivery_of(wapi, bad["id"], lambda d: d["status"] == "failed")
    assert d["attempts"] == 1 and "Infobip API returned 400: Bad request (to: invalid destination address)" in d["last_error"], d

    infobip.script.append(Reply(429, infobip_error("TOO_MANY_REQUESTS", "Too many requests"),
                                {"Retry-After": "100000"}))
    later = await wapi.post_activity(conv, w["api_key"], text="later", sender="agent")
    d = await delivery_of(wapi, later["id"], lambda d: d["attempts"] == 1)
    assert d["status"] == "pending" and "Infobip API returned 429" in d["last_error"], d
    assert 95 < _seconds(d["next_attempt_at"], d["updated_at"]) < 105, d
    await _retry_now(wapi, d["id"])
    await delivery_of(wapi, later["id"], lambda d: d["status"] == "sent" and d["attempts"] == 2)


async def test_infobip_reports_are_pushed_to_a_subscribed_socket(
    wa_server: Server, wapi: Api, infobip: InfobipStandIn, session: aiohttp.ClientSession
) -> None:
    w = await infobip_channel(wapi, infobip)
    cid = w["channel"]["id"]
    frank = new_phone()
    _, body = await post_inbound(wapi, cid, infobip_text_message(frank, "where is my parcel?"))
    conv = body["conversation_id"]
    minted = await wapi.ok("POST", "/api/v1/tokens", 201,
                           headers={"x-channel-token": await wapi.channel_token(cid)},
                           json={"conversation_id": conv, "user_id": "watcher"})
    socket = await Socket.open(session, wa_server, minted["token"])
    assert (await socket.join(f"conversation:{conv}"))["status"] == "ok"

    reply = await wapi.post_activity(conv, w["api_key"], text="on its way", sender="agent")

    def pushed(status: str) -> Any:
        return lambda f: (f[3] == "delivery_status" and f[4]["activity_id"] == reply["id"]
                          and f[4]["status"] == status)

    await socket.expect(pushed("sent"))
    message_id = infobip.sent[0]["id"]
    assert (await post_inbound(wapi, cid, infobip_report(message_id, "DELIVERED", frank)))[0] == 200
    frame = await socket.expect(pushed("delivered"))
    assert frame[4]["delivered_at"] and frame[4]["channel_id"] == cid
    seen = sample("infobip_seen_report.json")
    seen["results"][0].update(messageId=message_id, to=frank)
    status, _, _ = await wapi.call("POST", f"/api/v1/channels/{cid}/status", json=seen)
    assert status == 200
    frame = await socket.expect(pushed("read"))
    assert frame[4]["read_at"].startswith("2026-03-02T12:01:00")
    await socket.ws.close()

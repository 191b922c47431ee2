"""Status receipts (reference §7.5, §10.7) through ``/status`` and ``/inbound``: monotonic,
signature-checked, scoped to the channel, unknown payloads refused. (The ``delivery_status``
event they publish, in-process: tests/unit/gateway/test_receipts.py; on the real server's
socket: tests/integration/whatsapp/test_end_to_end.py.)"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from tests.integration.delivery.conftest import deliveries, wait_delivery, webhook_setup
from tests.integration.delivery.receiver import Receiver
from tests.integration.delivery.test_inbound import post_inbound
from tests.support.api import Api


async def _sent(api: Api, receiver: Receiver, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    s = await webhook_setup(api, receiver, name)
    a = await api.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    d = await wait_delivery(api, a["id"], lambda d: d["status"] == "sent")
    return s, d


async def _state(api: Api, d: dict[str, Any]) -> dict[str, Any]:
    (row,) = await deliveries(api, activity_id=d["activity_id"])
    return row


@pytest.mark.parametrize("path", ["status", "inbound"])
async def test_every_transition(dapi: Api, receiver: Receiver, path: str) -> None:
    s, d = await _sent(dapi, receiver, f"rcpt-{path}")
    ch = s["channel"]

    async def receipt(status: str, ts: Any = None, error: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"delivery_id": d["id"], "status": status}
        if ts is not None:
            body["timestamp"] = ts
        if error:
            body["error"] = error
        code, out = await post_inbound(dapi, ch, body, path=path)
        assert code == 200 and out["status"] == "accepted", out
        return out

    assert (await receipt("delivered", 1700000000))["receipts_processed"] == 1
    row = await _state(dapi, d)
    assert row["status"] == "delivered" and row["delivered_at"] == "2023-11-14T22:13:20.000000Z"
    await receipt("read", "2024-01-02T03:04:05Z")
    row = await _state(dapi, d)
    assert row["status"] == "read" and row["read_at"] == "2024-01-02T03:04:05.000000Z"
    # A stale "delivered" after "read" is ignored (still counted as processed).
    assert (await receipt("delivered"))["receipts_processed"] == 1
    assert (await _state(dapi, d))["status"] == "read"
    # "failed" never overrides "read".
    await receipt("failed", error="late failure")
    row = await _state(dapi, d)
    assert row["status"] == "read" and row["last_error"] is None
    # Unknown statuses are ignored.
    await receipt("exploded")
    assert (await _state(dapi, d))["status"] == "read"


async def test_failed_overrides_sent_and_delivered_and_sticks(dapi: Api, receiver: Receiver) -> None:
    s, d = await _sent(dapi, receiver, "rcpt-fail")
    ch = s["channel"]
    await post_inbound(dapi, ch, {"delivery_id": d["id"], "status": "delivered"}, path="status")
    await post_inbound(dapi, ch, {"delivery_id": d["id"], "status": "failed", "error": "blocked"},
                       path="status")
    row = await _state(dapi, d)
    assert (row["status"], row["last_error"]) == ("failed", "blocked")
    await post_inbound(dapi, ch, {"delivery_id": d["id"], "status": "read"}, path="status")
    assert (await _state(dapi, d))["status"] == "failed"


async def test_delivery_id_is_scoped_to_the_channel(dapi: Api, receiver: Receiver) -> None:
    _, d = await _sent(dapi, receiver, "rcpt-mine")
    other, _ = await _sent(dapi, receiver, "rcpt-other")
    code, out = await post_inbound(dapi, other["channel"], {"delivery_id": d["id"], "status": "read"},
                                   path="status")
    assert code == 200 and out["receipts_processed"] == 0
    assert (await _state(dapi, d))["status"] == "sent"


async def test_unknown_payload_and_bad_signature(dapi: Api, receiver: Receiver) -> None:
    s, d = await _sent(dapi, receiver, "rcpt-bad")
    ch = s["channel"]
    code, out = await post_inbound(dapi, ch, {"hello": "world"}, path="status")
    assert code == 400 and out["code"] == "unknown_status_payload"
    code, out, _ = await dapi.call("POST", f"/api/v1/channels/{ch['id']}/status",
                                   json={"delivery_id": d["id"], "status": "read"},
                                   headers={"x-converger-signature": "sha256=00"})
    assert code == 401
    assert (await _state(dapi, d))["status"] == "sent"
    sig = "sha256=" + hmac.new(ch["secret"].encode(), b"{nope", hashlib.sha256).hexdigest()
    code, out, _ = await dapi.call("POST", f"/api/v1/channels/{ch['id']}/status", data=b"{nope",
                                   headers={"content-type": "application/json",
                                            "x-converger-signature": sig})
    assert code == 400 and out["code"] == "malformed_json"


async def test_receipts_work_on_outbound_only_channels(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "rcpt-out", mode="outbound")
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    d = await wait_delivery(dapi, a["id"], lambda d: d["status"] == "sent")
    code, out = await post_inbound(dapi, s["channel"], {"delivery_id": d["id"], "status": "read"})
    assert code == 200 and out["receipts_processed"] == 1

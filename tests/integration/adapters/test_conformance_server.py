"""What the conformance suite found, checked on the real server.

Signature headers that are not UTF-8 (Sanic hands them over as lone surrogates) or that hold
Unicode digits are refused with 401, not a 500 (sent as raw HTTP bytes: a client library would
not send them). A receiver asking for a Retry-After beyond any date holds the delivery back a
week at most, instead of failing the write of the attempt's outcome (the row stayed claimed, and
the other outcomes of its batch were lost with it). A receipt timestamp with no UTC date is
taken as now. And every registered type's conformance profile holds through the management API.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

import adapters
from adapters.base import MAX_RETRY_AFTER
from tests.integration.delivery.receiver import Receiver
from tests.support import conformance
from tests.support.api import Api
from tests.support.server import Server
from tests.unit.adapters.test_conformance import subject


async def raw_request(url: str, method: str, path: str, headers: list[bytes],
                      body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte; the status and body of the answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [f"{method} {path} HTTP/1.1".encode(), f"Host: {parts.netloc}".encode(),
                b"Connection: close", b"Content-Type: application/json",
                f"Content-Length: {len(body)}".encode(), *headers]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def _channel(api: Api, type: str, config: dict[str, Any]) -> dict[str, Any]:
    tenant = await api.tenant(f"bytes-{type}")
    return await api.channel(tenant["id"], name=type, type=type, mode="duplex", config=config)


async def test_bad_signature_bytes_are_refused_not_500(server: Server, api: Api) -> None:
    """Bytes that are not UTF-8 are refused before any route (400 invalid_header,
    gateway/headers.py); valid UTF-8 that is no signature (a Unicode digit as timestamp) reaches
    the check and gets 401. Neither is a 500."""
    webhook = await _channel(api, "webhook", {"url": "https://example.com/hook"})
    meta = await _channel(api, "whatsapp_meta", {
        "phone_number_id": "1", "access_token": "t", "verify_token": "v", "app_secret": "s"})
    infobip = await _channel(api, "whatsapp_infobip", {
        "base_url": "https://x.test", "api_key": "k", "sender": "1",
        "webhook_username": "u", "webhook_password": "p"})
    body = json.dumps({"sender": "alice", "text": "hi"}).encode()
    cases = [
        (webhook, [b"x-converger-signature: sha256=\xff"], 400, "invalid_header"),
        (webhook, [b"webhook-id: m1", b"webhook-timestamp: 1",
                   b"webhook-signature: v1,\xff"], 400, "invalid_header"),
        (webhook, [b"webhook-id: m1", "webhook-timestamp: ²".encode(),
                   b"webhook-signature: v1,AAAA"], 401, "invalid_signature"),
        (meta, [b"X-Hub-Signature-256: sha256=\xff"], 400, "invalid_header"),
        (meta, ["X-Hub-Signature-256: sha256=²".encode()], 401, "invalid_signature"),
        (infobip, [b"Authorization: Basic \xff"], 400, "invalid_header"),
    ]
    for channel, headers, expected, code in cases:
        status, answer = await raw_request(server.url, "POST",
                                           f"/api/v1/channels/{channel['id']}/inbound",
                                           headers, body)
        assert (status, json.loads(answer)["code"]) == (expected, code), (
            channel["type"], headers, status, answer)


async def test_retry_after_beyond_any_date_is_capped(server: Server, api: Api) -> None:
    receiver = await Receiver().start()
    try:
        receiver.plan("far", (503, {"Retry-After": "9" * 400}, 0.0))
        s = await api.setup("retry-far", type="webhook", config={"url": receiver.url("far")})
        activity = await api.post_activity(s["conversation"]["id"], s["api_key"], text="hi")
        deadline = time.monotonic() + 10
        while True:
            rows = (await api.ok("GET", f"/api/admin/deliveries?activity_id={activity['id']}",
                                 headers=api.admin))["data"]
            if rows and rows[0]["attempts"] == 1:
                break
            assert time.monotonic() < deadline, f"the failed attempt was never recorded: {rows}"
            await asyncio.sleep(0.05)
        row = rows[0]
        assert row["status"] == "pending" and "503" in row["last_error"], row
        due = datetime.fromisoformat(row["next_attempt_at"].replace("Z", "+00:00"))
        wait = (due - datetime.now(UTC)).total_seconds()
        assert MAX_RETRY_AFTER - 60 < wait <= MAX_RETRY_AFTER, row
    finally:
        await receiver.stop()


async def test_receipt_timestamps_at_the_ends_of_time(server: Server, api: Api) -> None:
    """A receipt's timestamp is the provider's: one that cannot be a UTC date (year 1 east of
    Greenwich, year 9999 west of it) is taken as now, not a 500."""
    receiver = await Receiver().start()
    try:
        s = await api.setup("receipt-ends", type="webhook",
                            config={"url": receiver.url("ok"), "allow_unsigned": True})
        activity = await api.post_activity(s["conversation"]["id"], s["api_key"], text="hi")
        deadline = time.monotonic() + 10
        while True:
            rows = (await api.ok("GET", f"/api/admin/deliveries?activity_id={activity['id']}",
                                 headers=api.admin))["data"]
            if rows and rows[0]["status"] == "sent":
                break
            assert time.monotonic() < deadline, f"never sent: {rows}"
            await asyncio.sleep(0.05)
        for status, stamp in (("delivered", "0001-01-01T00:00:00+01:00"),
                              ("read", "9999-12-31T23:59:59-01:00")):
            code, body, _ = await api.call(
                "POST", f"/api/v1/channels/{s['channel']['id']}/status",
                json={"delivery_id": rows[0]["id"], "status": status, "timestamp": stamp})
            assert code == 200 and body["receipts_processed"] == 1, (stamp, code, body)
    finally:
        await receiver.stop()


@pytest.mark.parametrize("key", list(adapters.REGISTRY))
async def test_profiles_through_the_management_api(server: Server, api: Api, key: str) -> None:
    """Every registered type's profile, through the real API: its config with secrets is
    accepted and its secret fields never come back; every config the suite calls bad is a 422."""
    adapter, profile = subject(key)
    tenant = await api.tenant(f"profile-{key}")
    mode = "duplex" if "duplex" in adapter.supported_modes else adapter.supported_modes[0]
    config = profile.secret_config if profile.secret_config is not None else profile.config
    made = await api.channel(tenant["id"], name=key, type=key, mode=mode, config=config)
    listed = (await api.ok("GET", f"/api/admin/channels?tenant_id={tenant['id']}",
                           headers=api.admin))["data"]
    for shown in (made["config"], listed[0]["config"]):
        for field in adapter.secret_fields:
            assert shown.get(field) != config[field], f"{key}: secret {field!r} shown: {shown}"
    for n, bad in enumerate(conformance.bad_configs(profile)):
        status, body, _ = await api.call(
            "POST", "/api/admin/channels", headers=api.admin,
            json={"tenant_id": tenant["id"], "name": f"bad-{n}", "type": key, "mode": mode,
                  "config": bad})
        assert status == 422 and body["code"] == "validation_failed", (key, bad, status, body)

"""Vonage SMS on the real server against a stand-in Messages API: inbound JSON webhooks signed
as Vonage signs them (HS256 JWT with payload_hash, checked with vonage_jwt's own
verify_signature), replies sent with an application JWT (RS256, checked by the stand-in with
the public key) or basic auth, to the sender's number, status webhooks moving the delivery to
delivered; retries deduplicated; forged, tampered and stale signatures → 401 with nothing stored;
every error class through the queue."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from vonage_jwt import verify_signature

from tests.integration.sms.standins import Reply, VonageStandIn, basic, sample, vonage_error
from tests.integration.telegram.conftest import conversations_of, health_of, unique
from tests.integration.whatsapp.conftest import activities, delivery_of, eventually
from tests.support.api import Api
from tests.support.server import Server

NUMBER = "447700900000"
CUSTOMER = "447700900001"
SECRET = "vonage-signature-secret-integration"
APP_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
_uuids = itertools.count(1)


def inbound(text: str, sender: str = CUSTOMER) -> dict[str, Any]:
    return {**sample("vonage_inbound_sms.json"), "text": text, "from": sender, "to": NUMBER,
            "message_uuid": f"bbbbbbbb-bbbb-4ccc-8ddd-{next(_uuids):012d}"}


@pytest.fixture
async def vonage() -> AsyncIterator[VonageStandIn]:
    async with VonageStandIn(NUMBER, SECRET, application_id=APP_ID, public_key=KEY.public_key(),
                             api_key="abcd1234", api_secret="s3cret") as v:
        yield v  # type: ignore[misc]


async def vonage_channel(server: Server, api: Api, standin: VonageStandIn,
                         **auth: Any) -> dict[str, Any]:
    tenant = await api.tenant(unique("vonage"))
    config = {"from": NUMBER, "signature_secret": SECRET, "api_base_url": standin.url,
              **(auth or {"application_id": APP_ID, "private_key": PEM})}
    channel = await api.channel(tenant["id"], name="sms", type="sms_vonage", mode="duplex",
                                config=config)
    base = f"{server.url}/api/v1/channels/{channel['id']}"
    standin.webhook_url, standin.status_url = f"{base}/inbound", f"{base}/status"
    return {"tenant": tenant, "key": tenant["api_key"], "channel": channel}


def test_stand_in_signs_like_vonage() -> None:
    standin = VonageStandIn(NUMBER, SECRET)
    raw = json.dumps(inbound("hi")).encode()
    token = standin.webhook_headers(raw)["Authorization"].removeprefix("Bearer ")
    assert verify_signature(token, SECRET)
    assert not verify_signature(token, "another-signature-secret-of-32-bytes")


async def test_end_to_end(chat_server: Server, capi: Api, vonage: VonageStandIn) -> None:
    s = await vonage_channel(chat_server, capi, vonage)
    first = inbound("Is my parcel on its way?")
    status, body = await vonage.notify(first)
    assert status == 201, body
    conv_id = body["conversation_id"]
    (act,) = await activities(capi, s["key"], conv_id)
    assert (act["sender"], act["text"]) == (CUSTOMER, "Is my parcel on its way?")
    assert act["metadata"]["vonage_message_uuid"] == first["message_uuid"]
    status, again = await vonage.notify(first)  # Vonage retries: nothing new
    assert status == 200 and again["duplicate"] is True

    vonage.auto_statuses = ["submitted", "delivered"]
    reply = await capi.post_activity(conv_id, s["key"], text="Yes, tomorrow.", sender="agent")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "delivered")
    (sent,) = vonage.sent
    assert (sent["to"], sent["from"], sent["text"], sent["channel"]) == (
        CUSTOMER, NUMBER, "Yes, tomorrow.", "sms")
    assert sent["client_ref"] == row["id"]
    assert row["provider_message_id"] == sent["message_uuid"]
    seen = vonage.requests[-1]
    assert seen.path == "/v1/messages" and seen.headers["Authorization"].startswith("Bearer ")
    await vonage.settled()
    # A late "submitted" does not move it back.
    await vonage.post(vonage.status_url or "", vonage.status_payload(sent["message_uuid"],
                                                                     "submitted", CUSTOMER))
    assert (await delivery_of(capi, reply["id"], lambda d: True))["status"] == "delivered"


async def test_basic_auth_and_rejected(chat_server: Server, capi: Api,
                                       vonage: VonageStandIn) -> None:
    s = await vonage_channel(chat_server, capi, vonage, api_key="abcd1234", api_secret="s3cret")
    status, body = await vonage.notify(inbound("hi"))
    vonage.auto_statuses = ["submitted", "rejected"]
    reply = await capi.post_activity(body["conversation_id"], s["key"], text="hello")
    row = await delivery_of(capi, reply["id"], lambda d: d["status"] == "failed")
    assert vonage.requests[-1].headers["Authorization"] == basic("abcd1234", "s3cret")
    assert row["last_error"] == ("Vonage rejected 1320: Message failed because the number is "
                                 "blocked")


async def test_forged_tampered_and_stale(chat_server: Server, capi: Api,
                                         vonage: VonageStandIn) -> None:
    s = await vonage_channel(chat_server, capi, vonage)
    payload = inbound("forged")
    raw = json.dumps(payload).encode()
    other = VonageStandIn(NUMBER, "a-different-signature-secret-for-vonage")
    tampered = vonage.webhook_headers(json.dumps(inbound("original")).encode())
    for headers in ({"Content-Type": "application/json"}, other.webhook_headers(raw), tampered,
                    {"Content-Type": "application/json", "Authorization": "Bearer x.y.z"}):
        status, body = await vonage.post(vonage.webhook_url or "", payload, headers=headers)
        assert status == 401 and body["code"] == "invalid_signature", body
    vonage.clock_skew = -3600
    status, _ = await vonage.notify(payload)
    assert status == 401
    vonage.clock_skew = 0
    assert await conversations_of(capi, s["channel"]["id"]) == []
    status, body = await vonage.notify({"text": "no uuid"})
    assert status == 400 and body["code"] == "unparseable_inbound"


async def test_error_classes(chat_server: Server, capi: Api, vonage: VonageStandIn) -> None:
    s = await vonage_channel(chat_server, capi, vonage)
    _, body = await vonage.notify(inbound("hi"))
    conv_id = body["conversation_id"]
    vonage.script = [Reply(429, vonage_error(429, "Rate Limit Hit", "Please wait")),
                     Reply(500, vonage_error(500, "Internal Error", "oops"))]
    retried = await capi.post_activity(conv_id, s["key"], text="retried")
    row = await delivery_of(capi, retried["id"], lambda d: d["status"] == "sent", timeout=30)
    assert row["attempts"] == 3
    bad = await capi.post_activity(conv_id, s["key"], text="x", metadata={"to": "12"})
    row = await delivery_of(capi, bad["id"], lambda d: d["status"] == "failed")
    assert row["attempts"] == 1
    vonage.script = [Reply(422, vonage_error(422, "Invalid params", "The value of one or more "
                                             "parameters is invalid."))]
    invalid = await capi.post_activity(conv_id, s["key"], text="x")
    row = await delivery_of(capi, invalid["id"], lambda d: d["status"] == "failed")
    assert row["attempts"] == 1 and "Invalid params" in row["last_error"]
    vonage.application_id = "another-application"
    denied = await capi.post_activity(conv_id, s["key"], text="denied")
    row = await delivery_of(capi, denied["id"], lambda d: d["status"] == "failed")
    assert "401" in row["last_error"]
    await eventually(lambda: _unhealthy(capi, s["channel"]["id"]), "channel unhealthy")


async def _unhealthy(api: Api, channel_id: str) -> bool:
    return await health_of(api, channel_id) == "unhealthy"


def test_a_key_pasted_on_one_line_is_usable() -> None:
    """A one-line form input drops the PEM's newlines: the key still signs."""
    from adapters.sms_vonage import SmsVonageAdapter

    one_line = " ".join(PEM.splitlines())
    config = {"from": NUMBER, "signature_secret": SECRET, "application_id": APP_ID,
              "private_key": one_line}
    assert SmsVonageAdapter().validate_config(config) is None
    assert SmsVonageAdapter().validate_config({**config, "private_key": "-----BEGIN x"}) \
        is not None

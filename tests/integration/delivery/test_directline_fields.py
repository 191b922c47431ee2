"""A webhook bot behind a Direct Line conversation gets what Web Chat sent: an Adaptive Card
submit's ``value`` and an event's ``name`` reach it under ``extra``; plain activities keep the
original body."""

from __future__ import annotations

from tests.integration.delivery.conftest import webhook_setup
from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api

DL = "/v3/directline"


async def test_direct_line_fields_reach_a_webhook_bot(dapi: Api, receiver: Receiver) -> None:
    w = await webhook_setup(dapi, receiver, "dl-bot")
    secret = w["channel"]["secret"]
    conv = await dapi.ok("POST", f"{DL}/conversations", 201,
                         headers={"authorization": f"Bearer {secret}"})
    h = {"authorization": f"Bearer {conv['token']}"}
    path = f"{DL}/conversations/{conv['conversationId']}/activities"
    submit = {"type": "message", "from": {"id": "ann", "name": "Ann"},
              "value": {"colour": "green", "n": [1, None]}, "channelData": {"postBack": True}}
    await dapi.ok("POST", path, headers=h, json=submit)
    await dapi.ok("POST", path, headers=h,
                  json={"type": "event", "name": "webchat/join", "from": {"id": "ann"}})
    await dapi.ok("POST", "/api/v1/conversations/" + conv["conversationId"] + "/activities", 201,
                  headers={"x-api-key": w["api_key"]}, json={"text": "plain", "sender": "ops"})
    calls = await receiver.wait_calls("dl-bot", 3)
    bodies = sorted((c.json() for c in calls), key=lambda b: b["timestamp"] + b["id"])
    by_type = {(b["type"], b.get("text")): b for b in bodies}
    card = by_type[("message", None)]
    assert card["sender"] == "ann" and card["metadata"] == {"postBack": True}
    assert card["extra"] == {"from": {"name": "Ann", "role": "user"},
                             "value": {"colour": "green", "n": [1, None]}}
    assert by_type[("event", None)]["extra"]["name"] == "webchat/join"
    plain = by_type[("message", "plain")]
    assert list(plain) == ["id", "type", "sender", "text", "attachments", "metadata",
                           "conversation_id", "tenant_id", "timestamp"]

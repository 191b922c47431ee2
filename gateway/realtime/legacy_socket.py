"""``/socket/websocket``: the legacy socket (docs/realtime.md). Topic ``conversation:<id>``:
a conversation (user) token joins its own conversation; ``last_activity_id`` replays what came
after it (by ``seq``, from the store); the client may push ``new_activity``. Topic
``channel_health:<tenant id>``: a channel token of that tenant joins it and hears
``health_changed`` whenever one of the tenant's channels changes health."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

import msgspec

from .. import errors
from ..auth import is_channel_token, user_sender
from ..domain import DomainError
from ..domain.activities import NewActivity, create
from ..http import MAX_DEPTH, _depth
from ..hub import Encoder, tenant_health
from ..shapes import legacy_payload
from . import phoenix
from .connection import Channel, Connection, JoinError, Router
from .phoenix import Message
from .replay import load

PREFIX = "conversation:"
HEALTH_PREFIX = tenant_health("")
MAX_IDEMPOTENCY_KEY = 255


class SocketActivity(msgspec.Struct, kw_only=True):
    """The client's ``new_activity`` payload; ``tenant_id``/``conversation_id``/``inserted_at``
    are ignored (forced from the token and the server clock)."""

    text: str | None = None
    type: str = "message"
    sender: str = "user"
    attachments: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    idempotency_key: str | None = None


def _payload(event: str, payload: Any) -> Any:
    return legacy_payload(payload) if event == "new_activity" else payload


@cache
def _encoder(vsn: str) -> Encoder:
    def encode(topic: str, event: str, payload: Any) -> str:
        return phoenix.encode(vsn, None, None, topic, event, _payload(event, payload))

    return encode


def _valid_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


class LegacyRouter(Router):
    kind = "legacy"

    def conversation_of(self, topic: str) -> str:
        if not topic.startswith(PREFIX):
            raise JoinError("unmatched topic")
        return topic[len(PREFIX):]

    def tenant_topic(self, conn: Connection, topic: str) -> bool:
        if not topic.startswith(HEALTH_PREFIX):
            return False
        claims = conn.claims
        # A channel token speaks for its tenant; a conversation token only for its conversation.
        if not is_channel_token(claims) or topic != tenant_health(claims["tenant_id"]):
            raise JoinError("unauthorized")
        return True

    def encoder(self, vsn: str) -> Encoder:
        return _encoder(vsn)

    async def join(self, conn: Connection, conversation_id: str, payload: dict[str, Any]
                   ) -> tuple[list[Any], int]:
        claims = conn.claims
        # Only a token for this very conversation joins it (channel tokens connect, never join).
        if claims.get("conversation_id") != conversation_id or not _valid_uuid(conversation_id):
            raise JoinError("unauthorized")
        last = payload.get("last_activity_id")
        if last is not None and (not isinstance(last, str) or not _valid_uuid(last)):
            raise JoinError("invalid last_activity_id")
        ctx = conn.app.ctx
        conv, replay, after_seq = await ctx.db.read(
            load, claims.get("tenant_id"), conversation_id, last, last is not None,
            ctx.settings.activity_list_cap,
        )
        if conv is None:
            raise JoinError("unauthorized")
        return replay, after_seq

    def replay_frames(self, vsn: str, topic: str, join_ref: str | None,
                      activities: Any) -> list[str]:
        return [phoenix.encode(vsn, join_ref, None, topic, "new_activity", legacy_payload(a))
                for a in activities]

    async def handle_in(self, conn: Connection, channel: Channel, msg: Message) -> None:
        if msg.event != "new_activity" or not channel.conversation_id:
            conn.reply(msg, "error", {"reason": "unknown event"})
            return
        if _depth(msg.payload, MAX_DEPTH):  # the REST API's limit holds here too
            conn.reply(msg, "error", {"reason": "invalid_activity",
                                      "detail": f"payload nests deeper than {MAX_DEPTH} levels"})
            return
        try:
            body = msgspec.convert(msg.payload, SocketActivity)
        except msgspec.ValidationError as exc:
            conn.reply(msg, "error", {"reason": "invalid_activity", "detail": str(exc)})
            return
        key = body.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            conn.reply(msg, "error", {"reason": "invalid_activity",
                                      "detail": "idempotency_key must be 1 to 255 characters"})
            return
        new = NewActivity(type=body.type or "message",
                          sender=user_sender(conn.claims) or body.sender or "user",
                          text=body.text, attachments=body.attachments, metadata=body.metadata,
                          idempotency_key=key)
        tenant_id = conn.claims["tenant_id"]
        try:
            await conn.app.ctx.rate_limit(None, "activity_create", tenant_id)
            result = await create(conn.gw, tenant_id, channel.conversation_id, new)
        except errors.ApiError as exc:
            conn.reply(msg, "error", {"reason": exc.code, "detail": exc.detail})
            return
        except DomainError as exc:
            refused = errors.problem(exc)
            conn.reply(msg, "error", {"reason": refused.code, "detail": refused.detail})
            return
        conn.reply(msg, "ok", {"id": result.activity.id, "seq": result.activity.seq})

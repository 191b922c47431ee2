"""``/socket/converger/websocket``: the Converger socket (docs/realtime.md). Topic
``converger:conversation:<id>``; a join with ``watermark`` replays as one ``activitySet``; live
pushes are ``activitySet`` carrying the whole activity (the original sent a four-field stub that
clients had to complete with a GET); ``delivery_status`` and ``attachment_status`` are pushed as
themselves (the original swallowed ``delivery_status``); clients post over REST."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from ..hub import Encoder
from ..shapes import converger_activity, decode_watermark, encode_watermark
from . import phoenix
from .connection import Connection, JoinError, Router
from .replay import load

PREFIX = "converger:"
TOPIC_PREFIX = "converger:conversation:"
EVENT = "activitySet"
REPLAY_CHUNK = 500  # activities per replayed activitySet
# Conversation events pushed as they are: a delivery's ticks (the original dropped them, so a
# Converger client never saw sent/delivered/read) and an inbound file's download state.
FORWARDED = frozenset({"delivery_status", "attachment_status"})


def _activity_set(activities: Any) -> dict[str, Any]:
    return {"activities": [converger_activity(a) for a in activities],
            "watermark": encode_watermark(activities[-1].id)}


@cache
def _encoder(vsn: str) -> Encoder:
    def encode(topic: str, event: str, payload: Any) -> str | None:
        if event in FORWARDED:  # verbatim, as on the legacy socket
            return phoenix.encode(vsn, None, None, "converger:" + topic, event, payload)
        if event != "new_activity":
            return None
        return phoenix.encode(vsn, None, None, "converger:" + topic, EVENT, _activity_set([payload]))

    return encode


class ConvergerRouter(Router):
    kind = "converger"

    def conversation_of(self, topic: str) -> str:
        if not topic.startswith(PREFIX):
            raise JoinError("unmatched topic")
        if not topic.startswith(TOPIC_PREFIX):
            raise JoinError("invalid_topic")
        cid = topic[len(TOPIC_PREFIX):]
        try:
            if str(uuid.UUID(cid)) != cid.lower():
                raise ValueError(cid)
        except ValueError:
            raise JoinError("invalid_topic") from None
        return cid

    def encoder(self, vsn: str) -> Encoder:
        return _encoder(vsn)

    async def join(self, conn: Connection, conversation_id: str, payload: dict[str, Any]
                   ) -> tuple[list[Any], int]:
        claims = conn.claims
        scope = claims.get("conversation_id")
        if isinstance(scope, str) and scope != conversation_id:
            raise JoinError("unauthorized")
        wm = payload.get("watermark", conn.url_watermark)
        if wm is not None and not isinstance(wm, str):
            raise JoinError("invalid watermark")
        ctx = conn.app.ctx
        conv, replay, after_seq = await ctx.db.read(
            load, claims.get("tenant_id"), conversation_id, decode_watermark(wm), wm is not None,
            ctx.settings.activity_list_cap,
        )
        if conv is None or conv.channel_id != claims.get("channel_id"):
            raise JoinError("unauthorized")
        return replay, after_seq

    def replay_frames(self, vsn: str, topic: str, join_ref: str | None,
                      activities: Any) -> list[str]:
        return [
            phoenix.encode(vsn, join_ref, None, topic, EVENT,
                           _activity_set(activities[i:i + REPLAY_CHUNK]))
            for i in range(0, len(activities), REPLAY_CHUNK)
        ]

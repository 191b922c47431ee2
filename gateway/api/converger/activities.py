"""``POST|GET /conversations/:id/activities``: post an activity; read them after a watermark,
a page at a time (the watermark is opaque: it names the last activity a client has)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import activities

from ... import errors
from ...domain.activities import NewActivity, create
from ...http import decode, gw, json
from ...shapes import converger_activity, decode_watermark, encode_watermark
from .auth import authenticate, conversation

bp = Blueprint("converger_activities")

PAGE = 500  # most activities per GET; the client asks again with the returned watermark
MAX_IDEMPOTENCY_KEY = 255


class From(msgspec.Struct, kw_only=True):
    id: str | None = None
    name: str | None = None
    role: str | None = None


class SuggestedActions(msgspec.Struct, kw_only=True, omit_defaults=True):
    actions: list[dict[str, Any]] = []
    to: list[str] | None = None


# The Direct Line activity fields kept in ``extra`` (store.models.Activity), as sent.
EXTRA_FIELDS = ("replyToId", "name", "value", "valueType", "locale", "entities",
                "suggestedActions", "attachmentLayout", "inputHint", "textFormat", "speak",
                "summary", "importance", "deliveryMode", "localTimestamp", "localTimezone")


class ConvergerActivityIn(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """A Converger (and Direct Line 3.0) activity: ``from.id`` → sender, ``channelData`` (else
    ``metadata``) → metadata, the Direct Line fields (``EXTRA_FIELDS``, ``from.name``,
    ``from.role``) → extra. Other fields are ignored, as the original ignored them."""

    type: str | None = None
    from_: From | None = None
    text: str | None = None
    attachments: list[dict[str, Any]] = []
    channelData: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    replyToId: str | None = None
    name: str | None = None
    value: Any | UnsetType = UNSET  # any JSON, null included (an Adaptive Card submit)
    valueType: str | None = None
    locale: str | None = None
    entities: list[dict[str, Any]] | None = None
    suggestedActions: SuggestedActions | None = None
    attachmentLayout: Literal["list", "carousel"] | None = None
    inputHint: Literal["acceptingInput", "ignoringInput", "expectingInput"] | None = None
    textFormat: Literal["plain", "markdown", "xml"] | None = None
    speak: str | None = None
    summary: str | None = None
    importance: Literal["low", "normal", "high"] | None = None
    deliveryMode: Literal["normal", "notification", "expectReplies", "ephemeral", "stream"] | None = None
    localTimestamp: str | None = None
    localTimezone: str | None = None

    def extra(self, default_role: str | None = None) -> dict[str, Any]:
        """The Direct Line fields that were sent, for ``Activity.extra``."""
        out: dict[str, Any] = {}
        who = {k: v for k, v in (("name", self.from_.name if self.from_ else None),
                                 ("role", (self.from_.role if self.from_ else None) or default_role))
               if v is not None}
        if who:
            out["from"] = who
        for key in EXTRA_FIELDS:
            value = getattr(self, key)
            if value is not None and value is not UNSET:
                out[key] = msgspec.to_builtins(value)
        if self.value is None:  # an explicit null value is still a value
            out["value"] = None
        return out

    def to_new(self, idempotency_key: str | None = None, *, default_type: str = "message",
               default_role: str | None = None) -> NewActivity:
        sender = self.from_.id if self.from_ is not None and self.from_.id else "user"
        meta = self.channelData if self.channelData is not None else (self.metadata or {})
        return NewActivity(type=self.type or default_type, sender=sender, text=self.text,
                           attachments=self.attachments, metadata=meta,
                           idempotency_key=idempotency_key, extra=self.extra(default_role))


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("x-idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise errors.bad_request(
            f"x-idempotency-key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
            "invalid_idempotency_key")
    return key


@bp.post("/conversations/<conversation_id>/activities")
async def post_activity(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    await ctx.rate_limit(request, "activity_create", conv.tenant_id)
    body = decode(request, ConvergerActivityIn)
    new = body.to_new(idempotency_key(request))
    new.sender = principal.user or new.sender  # a token bound to a user posts as that user
    result = await create(gw(request), conv.tenant_id, conv.id, new)
    return json({"id": result.activity.id})


@bp.get("/conversations/<conversation_id>/activities")
async def list_activities(request: Request, conversation_id: str) -> HTTPResponse:
    """Activities after ``watermark`` in ``seq`` order. No, an empty, or an unknown watermark
    means from the start (as in the original)."""
    ctx = gw(request)
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    wm = request.args.get("watermark") or None
    anchor = decode_watermark(wm)
    items, _ = await ctx.db.read(
        lambda conn: activities.list_after_activity(conn, conv.id, anchor, limit=PAGE)
    )
    return json({
        "activities": [converger_activity(a) for a in items],
        "watermark": encode_watermark(items[-1].id) if items else wm,
    })

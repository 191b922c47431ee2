"""Inbound webhooks (reference §7): provider verification, messages in, status receipts.

``GET /api/v1/channels/:id/inbound`` answers a provider's verification challenge;
``POST …/inbound`` takes messages (and, as Meta sends both to one URL, receipts);
``POST …/status`` takes receipts. Both POSTs check ``x-converger-signature`` over the raw body
(constant time) when the header is present, and the adapter's own provider signature; a
channel with ``config.require_signature: true`` refuses unsigned requests.
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, text

import adapters
from adapters.base import Adapter, ChannelInfo, InboundError
from adapters.signing import check_converger_signature
from store import channels
from store.models import Channel

from .. import domain, errors
from ..http import MAX_DEPTH, _depth, json, loads, uuid_param
from ..pipeline import receipts
from ..pipeline.activities import Closed, NotFound, after_commit
from ..pipeline.inbound import inbound_tx

bp = Blueprint("inbound", url_prefix="/api/v1")


async def _channel(request: Request, channel_id: str) -> tuple[Channel, ChannelInfo, Adapter]:
    """Reference §7.1: unknown → 404, not active → 400 ``Channel is inactive``."""
    ctx = request.app.ctx
    channel_id = uuid_param(channel_id, "channel_id")
    channel = await ctx.db.read(channels.get, channel_id)
    adapter = adapters.get(channel.type) if channel is not None else None
    if channel is None or adapter is None:
        raise errors.not_found()
    if channel.status != "active":
        raise errors.bad_request("Channel is inactive", "channel_inactive", plain=True)
    await ctx.rate_limit(request, "inbound", channel.id)
    return channel, domain.channel_info(ctx.cipher, channel), adapter


def _verify(request: Request, info: ChannelInfo, adapter: Adapter) -> None:
    body = request.body or b""
    header = request.headers.get("x-converger-signature")
    if header is not None and not check_converger_signature(info.secret, body, header):
        raise errors.unauthorized("invalid x-converger-signature", "invalid_signature")
    provider = adapter.verify_signature(info, request.headers, body)
    if provider is False:
        raise errors.unauthorized("invalid provider signature", "invalid_signature")
    if header is None and provider is None and info.config.get("require_signature") is True:
        raise errors.unauthorized("this channel requires a signature", "signature_required")


def _payload(request: Request) -> Any:
    body = request.body or b""
    limit = request.app.ctx.settings.max_body_bytes
    if len(body) > limit:
        raise errors.ApiError(413, "payload_too_large", f"request body exceeds {limit} bytes",
                              legacy={"error": "Request body too large"})
    if not body.strip():
        return {}
    payload = loads(body, plain=True)
    if _depth(payload, MAX_DEPTH):
        raise errors.bad_request(f"JSON nests deeper than {MAX_DEPTH} levels", "json_too_deep",
                                 plain=True)
    return payload


async def _apply_receipts(request: Request, channel: Channel, updates: list[Any]) -> HTTPResponse:
    ctx = request.app.ctx
    processed, changed = await ctx.db.write(receipts.apply_tx, channel.id, updates, ctx.now_iso())
    for d in changed:
        receipts.publish(request.app, d)
    return json({"status": "accepted", "receipts_processed": processed})


@bp.get("/channels/<channel_id>/inbound")
async def verify(request: Request, channel_id: str) -> HTTPResponse:
    _, info, adapter = await _channel(request, channel_id)
    query = {k: v[0] for k, v in request.args.items() if v}
    status, body = adapter.verify_challenge(info, query)
    return text(body, status=status)


@bp.post("/channels/<channel_id>/inbound")
async def inbound(request: Request, channel_id: str) -> HTTPResponse:
    ctx = request.app.ctx
    channel, info, adapter = await _channel(request, channel_id)
    _verify(request, info, adapter)
    payload = _payload(request)
    updates = adapter.parse_status(payload)
    if updates:
        return await _apply_receipts(request, channel, updates)
    if channel.mode not in ("inbound", "duplex"):
        raise errors.bad_request("Channel does not accept inbound messages", "channel_outbound_only",
                                 plain=True)
    try:
        messages = adapter.parse_inbound(payload)
    except InboundError as exc:
        raise errors.bad_request(str(exc), "unparseable_inbound", plain=True) from None
    if not messages:
        raise errors.bad_request("no message in payload", "unparseable_inbound", plain=True)
    results = []
    for msg in messages:
        try:
            result = await ctx.db.write(inbound_tx, channel, msg, ctx.now_iso())
        except NotFound:
            raise errors.not_found() from None
        except Closed:
            raise errors.conflict("conversation is closed", "conversation_closed") from None
        if result.created:
            after_commit(request.app, result)
            inline = getattr(ctx, "deliver_inline", None)
            if inline is not None and result.deliveries:
                await inline(result.activity)
        results.append(result)
    first = results[0]
    body: dict[str, Any] = {"status": "accepted", "activity_id": first.activity.id,
                            "conversation_id": first.activity.conversation_id}
    if len(results) > 1:
        body["activity_ids"] = [r.activity.id for r in results]
    if not any(r.created for r in results):
        body["duplicate"] = True
        return json(body, status=200)
    return json(body, status=201)


@bp.post("/channels/<channel_id>/status")
async def status(request: Request, channel_id: str) -> HTTPResponse:
    channel, info, adapter = await _channel(request, channel_id)
    _verify(request, info, adapter)
    updates = adapter.parse_status(_payload(request))
    if updates is None:
        raise errors.bad_request("unrecognised status payload", "unknown_status_payload",
                                 plain=True)
    return await _apply_receipts(request, channel, updates)

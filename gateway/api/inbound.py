"""Inbound webhooks (docs/adapters.md): provider verification, messages in, status receipts.

``GET /api/v1/channels/:id/inbound`` answers a provider's verification challenge;
``POST …/inbound`` takes messages (and, as Meta sends both to one URL, receipts);
``POST …/status`` takes receipts. Both POSTs check ``x-converger-signature`` over the raw body
(constant time) when the header is present, and the adapter's own provider signature; a
channel with ``config.require_signature: true`` refuses unsigned requests.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, text

import adapters
from adapters.base import Adapter, ChannelInfo, InboundError, InboundIgnored, InboundMessage
from adapters.signing import check_converger_signature
from store import channels, tenants
from store.models import Channel, Tenant

from .. import errors
from ..domain import inbound as inbound_ops
from ..domain import receipts
from ..domain.channels import channel_info
from ..http import decode_inbound, gw, json, public_base, uuid_param

bp = Blueprint("inbound", url_prefix="/api/v1")


def _with_tenant(conn: Any, channel_id: str) -> tuple[Channel | None, Tenant | None]:
    channel = channels.get(conn, channel_id)
    return channel, (tenants.get(conn, channel.tenant_id) if channel is not None else None)


async def _channel(request: Request, channel_id: str) -> tuple[Channel, ChannelInfo, Adapter]:
    """Unknown → 404, not active → 400 ``Channel is inactive`` (the original's answers); its
    tenant not active → 403 ``tenant_inactive`` (the original looked at the channel only: a
    disabled tenant kept taking messages and receipts)."""
    ctx = gw(request)
    channel_id = uuid_param(channel_id, "channel_id")
    channel, tenant = await ctx.db.read(_with_tenant, channel_id)
    adapter = adapters.get(channel.type) if channel is not None else None
    if channel is None or adapter is None:
        raise errors.not_found()
    if channel.status != "active":
        raise errors.bad_request("Channel is inactive", "channel_inactive", plain=True)
    if tenant is None or not tenant.active:
        raise errors.ApiError(403, "tenant_inactive", "Tenant is inactive",
                              legacy={"error": "Tenant is inactive"})
    await ctx.rate_limit(request, "inbound", channel.id)
    # The URL as the provider saw it: under CONVERGER_PUBLIC_URL when set (Twilio signs it).
    query = f"?{request.query_string}" if request.query_string else ""
    info = channel_info(ctx.cipher, channel, public_base(request))
    info.request_url = public_base(request) + request.path + query
    return channel, info, adapter


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


def _replay_keys(request: Request, messages: list[InboundMessage]) -> list[InboundMessage]:
    """A signed request replayed is the same message, not a new one (issue 13): a message
    without its own id takes the Standard Webhooks ``webhook-id`` (the sender's retries share
    it), else — signed by ``x-converger-signature``, which carries no id — the hash of the
    signed body. The inbound path dedupes on it like on a provider's message id."""
    if len(messages) != 1 or messages[0].external_id is not None:
        return messages
    webhook_id = request.headers.get("webhook-id")
    if webhook_id and request.headers.get("webhook-signature"):
        key = f"webhook-id:{webhook_id[:200]}"
    elif request.headers.get("x-converger-signature"):
        key = "sha256:" + hashlib.sha256(request.body or b"").hexdigest()
    else:
        return messages
    return [msgspec.structs.replace(messages[0], external_id=key)]


def _payload(request: Request) -> Any:
    return decode_inbound(request, plain=True)


def _answer(adapter: Adapter, body: Any, status: int) -> HTTPResponse:
    """A 2xx answer to a provider: the body it expects (``inbound_ack``), else the JSON."""
    if adapter.inbound_ack is not None:
        ctype, ack = adapter.inbound_ack
        return text(ack, status=status, content_type=ctype)
    return json(body, status=status)


async def _apply_receipts(request: Request, channel: Channel, adapter: Adapter,
                          updates: list[Any]) -> HTTPResponse:
    processed = await receipts.apply(gw(request), channel.id, updates)
    return _answer(adapter, {"status": "accepted", "receipts_processed": processed}, 200)


async def _owners(
    request: Request, channel: Channel, info: ChannelInfo, adapter: Adapter,
    messages: list[InboundMessage],
) -> tuple[list[tuple[Channel, InboundMessage]], int]:
    """Each message with the channel it was sent to, and how many went to none.

    A provider may post several of its numbers' messages to one URL (Meta has one callback
    per app). A message for another number is never threaded into this channel (its replies
    would leave from the wrong number): it goes to the tenant's active inbound channel of the
    same type for that number, or, when there is none, is ignored and logged."""
    if all(adapter.addressed_to(info, m) for m in messages):
        return [(channel, m) for m in messages], 0
    ctx = gw(request)
    siblings = [
        (c, channel_info(ctx.cipher, c))
        for c in await ctx.db.read(channels.for_tenant, channel.tenant_id)
        if c.id != channel.id and c.type == channel.type and c.status == "active"
        and c.mode in ("inbound", "duplex")
    ]
    owned: list[tuple[Channel, InboundMessage]] = []
    ignored = 0
    for m in messages:
        if adapter.addressed_to(info, m):
            owned.append((channel, m))
            continue
        owner = next((c for c, i in siblings if adapter.addressed_to(i, m)), None)
        if owner is not None:
            owned.append((owner, m))
        else:
            ignored += 1
            ctx.log.warning("inbound on channel %s: message %s is for another number with no "
                            "channel here; ignored", channel.id, m.external_id)
    return owned, ignored


# (channel id, reason) already logged: an ignored kind of payload is logged once, not at
# every provider retry or every reaction in a busy Slack channel.
_IGNORED_LOGGED: set[tuple[str, str]] = set()
_IGNORED_LOG_LIMIT = 10_000


def _ignored(request: Request, channel: Channel, adapter: Adapter, reason: str) -> HTTPResponse:
    """Acknowledge a payload with nothing to store (2xx, or the provider resends it)."""
    seen = (channel.id, reason)
    if seen not in _IGNORED_LOGGED:
        if len(_IGNORED_LOGGED) >= _IGNORED_LOG_LIMIT:
            _IGNORED_LOGGED.clear()
        _IGNORED_LOGGED.add(seen)
        gw(request).log.info("inbound on channel %s: %s (acknowledged; logged once)",
                                 channel.id, reason)
    return _answer(adapter, {"status": "ignored", "reason": reason}, 200)


@bp.get("/channels/<channel_id>/inbound")
async def verify(request: Request, channel_id: str) -> HTTPResponse:
    channel, info, adapter = await _channel(request, channel_id)
    query = {k: v[0] for k, v in request.args.items() if v}
    status, body = adapter.verify_challenge(info, query)
    if status == 200 and query:  # the provider's console verified the URL: shown on its page
        ctx = gw(request)
        await ctx.db.write(channels.note_inbound, channel.id, ctx.now_iso())
    return text(body, status=status)


@bp.post("/channels/<channel_id>/inbound")
async def inbound(request: Request, channel_id: str) -> HTTPResponse:
    channel, info, adapter = await _channel(request, channel_id)
    try:
        return await _inbound(request, channel, info, adapter)
    except errors.ApiError as exc:
        # The channel page shows the last refusal and its reason (issue 23): a provider's
        # messages refused is otherwise only seen in the provider's console.
        if exc.status in (400, 401, 403):
            ctx = gw(request)
            await ctx.db.write(channels.note_inbound, channel.id, ctx.now_iso(),
                               f"{exc.code}: {exc.detail}")
        raise


async def _inbound(request: Request, channel: Channel, info: ChannelInfo,
                   adapter: Adapter) -> HTTPResponse:
    _verify(request, info, adapter)
    payload = _payload(request)
    handshake = adapter.handshake(info, payload)
    if handshake is not None:  # a provider's in-band check (Slack's url_verification)
        return json(handshake[1], status=handshake[0])
    updates = adapter.parse_status(payload)
    if updates:
        return await _apply_receipts(request, channel, adapter, updates)
    if channel.mode not in ("inbound", "duplex"):
        raise errors.bad_request("Channel does not accept inbound messages", "channel_outbound_only",
                                 plain=True)
    try:
        messages = adapter.parse_inbound(payload)
    except InboundIgnored as exc:
        return _ignored(request, channel, adapter, str(exc))
    except InboundError as exc:
        raise errors.bad_request(str(exc), "unparseable_inbound", plain=True) from None
    if not messages:
        raise errors.bad_request("no message in payload", "unparseable_inbound", plain=True)
    messages = _replay_keys(request, messages)
    owned, ignored = await _owners(request, channel, info, adapter, messages)
    if not owned:
        return _answer(adapter, {"status": "ignored", "ignored": ignored}, 200)
    results = [await inbound_ops.receive(gw(request), owner, msg) for owner, msg in owned]
    first = results[0]
    body: dict[str, Any] = {"status": "accepted", "activity_id": first.activity.id,
                            "conversation_id": first.activity.conversation_id}
    if len(results) > 1:
        body["activity_ids"] = [r.activity.id for r in results]
    if ignored:
        body["ignored"] = ignored
    if not any(r.created for r in results):
        body["duplicate"] = True
        return _answer(adapter, body, 200)
    return _answer(adapter, body, 201)


@bp.post("/channels/<channel_id>/status")
async def status(request: Request, channel_id: str) -> HTTPResponse:
    channel, info, adapter = await _channel(request, channel_id)
    _verify(request, info, adapter)
    updates = adapter.parse_status(_payload(request))
    if updates is None:
        raise errors.bad_request("unrecognised status payload", "unknown_status_payload",
                                 plain=True)
    return await _apply_receipts(request, channel, adapter, updates)

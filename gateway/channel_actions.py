"""Channel management actions (``Adapter.actions``: Telegram's webhook registration, Slack's
token check), shared by the management API and the admin panel: the channel's public inbound
URL, and one action run against its provider through the outbound policy's session."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import msgspec

import adapters
from adapters import middleware
from adapters.base import ActionResult, OutboundActivity
from store import channels, templates
from store.util import new_id

from . import errors, outbound
from .domain import channels as channel_ops

# The action that syncs a WhatsApp channel's message templates into ``whatsapp_templates``.
SYNC_TEMPLATES = "sync_templates"


def public_base(request: Any) -> str:
    """The gateway's public URL: ``CONVERGER_PUBLIC_URL`` when set, else the request's own
    scheme and host (as a proxy forwarded them)."""
    base = request.app.ctx.settings.public_url.rstrip("/")
    return base or f"{request.scheme}://{request.host}"


def inbound_url(request: Any, channel_id: str) -> str:
    """The channel's public inbound URL (under :func:`public_base`)."""
    return f"{public_base(request)}/api/v1/channels/{channel_id}/inbound"


def label(action: str) -> str:
    """``set_webhook`` → ``Set webhook``."""
    return action.replace("_", " ").capitalize()


async def run(ctx: Any, channel_id: str, action: str, url: str,
              tenant_id: str | None = None) -> ActionResult:
    """Run ``action`` on the channel (of ``tenant_id`` when given). Raises 404 ``not_found``
    / ``unknown_action``; the provider's refusal is an ``ActionResult`` with ``ok`` False."""
    channel = await ctx.db.read(channels.get, channel_id)
    if channel is None or (tenant_id is not None and channel.tenant_id != tenant_id):
        raise errors.not_found()
    adapter = adapters.get(channel.type)
    if adapter is None or action not in adapter.actions:
        raise errors.not_found(f"{channel.type} channels have no action {action!r}",
                               "unknown_action")
    info = channel_ops.channel_info(ctx.cipher, channel)
    timeout = aiohttp.ClientTimeout(total=ctx.settings.webhook_timeout)
    async with outbound.session(ctx.settings, timeout) as session:  # the SSRF policy applies
        result = await adapter.run_action(session, info, action, url)
    if result.ok and action == SYNC_TEMPLATES:  # kept: template activities are checked on them
        items = result.data.get("templates", [])
        kept = await ctx.db.write(templates.replace, channel.id, channel.tenant_id, items,
                                  ctx.now_iso())
        result = ActionResult(ok=True, data={"count": kept, "templates": [
            {k: t.get(k) for k in ("name", "language", "status", "category")} for t in items]})
    ctx.log.info("channel %s: action %s %s", channel.id, action,
                 "done" if result.ok else f"refused: {result.error}")
    return result


class SentTest(msgspec.Struct, kw_only=True):
    """What a test event did: ``ok`` (the receiver took it), the receiver's answer as the
    adapter reports it when it did not (``error``), how long the send took."""

    ok: bool
    error: str | None = None
    duration_ms: int = 0
    provider_message_id: str | None = None
    to: str | None = None


def can_test(channel: Any) -> bool:
    """Whether the channel sends anywhere a test event could go (an external type, not
    inbound-only)."""
    adapter = adapters.get(channel.type)
    return adapter is not None and adapter.delivers and channel.mode != "inbound"


async def send_test(ctx: Any, channel_id: str, base: str, to: str | None = None,
                    tenant_id: str | None = None) -> SentTest:
    """Send a test message to the channel's receiver now, through its adapter and middleware
    (as a delivery would be sent, under the outbound policy), and say how it went. Nothing is
    stored: no conversation, no delivery. ``to`` is the recipient for types that need one (a
    phone number, a chat id, an address); None: the channel's default. Raises 404
    ``not_found`` for a channel that is not there (or not of ``tenant_id``)."""
    channel = await ctx.db.read(channels.get, channel_id)
    if channel is None or (tenant_id is not None and channel.tenant_id != tenant_id):
        raise errors.not_found()
    adapter = adapters.get(channel.type)
    if adapter is None or not can_test(channel):
        return SentTest(ok=False, error=f"a {channel.type} channel in mode {channel.mode} "
                                           "sends nothing to a receiver", to=to)
    activity = OutboundActivity(
        id=new_id(), type="message", sender="converger",
        text=f"Test event from converger for channel {channel.name}", attachments=[],
        metadata={"converger_test": True, **({"to": to} if to else {})},
        conversation_id="", tenant_id=channel.tenant_id, timestamp=ctx.now_iso(),
        delivery_id=f"test_{new_id()}", thread_sender=to or None)
    try:
        activity = middleware.apply(channel.transformations, activity)
    except middleware.Halt as halt:
        return SentTest(ok=False, error=f"halted by the channel's middleware: {halt}", to=to)
    info = channel_ops.channel_info(ctx.cipher, channel, base)
    timeout = aiohttp.ClientTimeout(total=ctx.settings.webhook_timeout)
    started = time.perf_counter()
    try:
        async with outbound.session(ctx.settings, timeout) as session:  # the SSRF policy applies
            result = await adapter.deliver(session, info, activity)
    except Exception as exc:  # an adapter bug is the answer here, not a 500
        ctx.log.exception("channel %s: test event: adapter %s raised", channel.id, channel.type)
        return SentTest(ok=False, error=f"adapter error: {exc!r}", to=to,
                           duration_ms=int((time.perf_counter() - started) * 1000))
    took = int((time.perf_counter() - started) * 1000)
    ctx.log.info("channel %s: test event %s", channel.id,
                 "delivered" if result.ok else f"failed: {result.error}")
    return SentTest(ok=result.ok, error=None if result.ok else result.error, duration_ms=took,
                       provider_message_id=result.provider_message_id, to=to)

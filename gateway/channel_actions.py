"""Channel management actions (``Adapter.actions``: Telegram's webhook registration, Slack's
token check), shared by the management API and the admin panel: the channel's public inbound
URL, and one action run against its provider through the outbound policy's session."""

from __future__ import annotations

from typing import Any

import aiohttp

import adapters
from adapters.base import ActionResult
from store import channels, templates

from . import errors, outbound
from .domain import channels as channel_ops

# The action that syncs a WhatsApp channel's message templates into ``whatsapp_templates``.
SYNC_TEMPLATES = "sync_templates"


def inbound_url(request: Any, channel_id: str) -> str:
    """The channel's public inbound URL: under ``CONVERGER_PUBLIC_URL`` when set, else under
    the request's own scheme and host (as a proxy forwarded them)."""
    base = request.app.ctx.settings.public_url.rstrip("/")
    if not base:
        base = f"{request.scheme}://{request.host}"
    return f"{base}/api/v1/channels/{channel_id}/inbound"


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

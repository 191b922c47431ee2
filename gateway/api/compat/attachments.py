"""``POST /api/v1/conversations/:id/activities/:id/attachments/:n/fetch``: the file of an
inbound attachment (a Telegram ``file_id``, a Slack ``url_private``) downloaded from the
provider by the adapter of the channel it came in on, into the gateway's upload store, and
served from there like any upload (``GET /uploads/<tenant>/<file>``). Asked again, the stored
copy is returned without downloading anything; an attachment that is an upload already
(``contentUrl`` in the store) is answered with where it is."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

import adapters
from adapters.base import MediaError
from store import activities, channels, uploads

from ... import errors, outbound, tierlimits
from ...auth import check_channel_scope, check_scope, tenant_auth
from ...domain import channels as channel_ops
from ...http import gw, json, uuid_param
from ..converger.uploads import _write, sanitize, upload_dir

bp = Blueprint("compat_attachments")


@bp.post("/conversations/<conversation_id>/activities/<activity_id>/attachments/<index:int>/fetch")
async def fetch(request: Request, conversation_id: str, activity_id: str,
                index: int) -> HTTPResponse:
    ctx = gw(request)
    conversation_id = uuid_param(conversation_id, "conversation_id")
    activity_id = uuid_param(activity_id, "activity_id")
    tenant, claims = await tenant_auth(request)
    check_scope(claims, conversation_id)
    await check_channel_scope(request, tenant.id, claims, conversation_id)
    activity = await ctx.db.read(activities.get, activity_id)
    if activity is None or activity.tenant_id != tenant.id or activity.conversation_id != conversation_id:
        raise errors.not_found()
    if not 0 <= index < len(activity.attachments) or not isinstance(
            activity.attachments[index], dict):
        raise errors.not_found("no such attachment")
    attachment = activity.attachments[index]
    local = _local_upload(attachment, tenant.id)
    if local is not None:  # already in the upload store (an upload made through the API)
        row = await ctx.db.read(uploads.by_file, tenant.id, local)
        if row is not None and row.conversation_id == conversation_id:
            return json({"data": _out(tenant.id, row.file_name, row.name, row.content_type,
                                      row.size)})
    label = sanitize(str(attachment.get("file_name") or attachment.get("name")
                         or attachment.get("type") or "file"))
    file_name = f"{activity.id}_{index}_{label}"
    stored = await ctx.db.read(uploads.by_file, tenant.id, file_name)
    if stored is not None:
        return json({"data": _out(tenant.id, stored.file_name, stored.name, stored.content_type,
                                  stored.size)})
    channel = (await ctx.db.read(channels.get, activity.source_channel_id)
               if activity.source_channel_id else None)
    adapter = adapters.get(channel.type) if channel is not None else None
    if channel is None or adapter is None or channel.tenant_id != tenant.id:
        raise errors.bad_request("the activity did not come in through a provider channel",
                                 "not_downloadable")
    await ctx.rate_limit(request, "activity_create", tenant.id)
    cap = await tierlimits.upload_cap(ctx, tenant.id)  # the SLA tier's, if lower
    timeout = aiohttp.ClientTimeout(total=ctx.settings.webhook_timeout * 3)
    async with outbound.session(ctx.settings, timeout) as session:
        got = await adapter.fetch_media(session, channel_ops.channel_info(ctx.cipher, channel),
                                        attachment, cap)
    if isinstance(got, MediaError):
        if got.kind == "too_large":
            raise errors.ApiError(413, "file_too_large", got.error, legacy={"error": got.error})
        if got.kind == "provider":
            raise errors.ApiError(502, "provider_error", got.error, legacy={"error": got.error})
        raise errors.bad_request(got.error, "not_downloadable")
    path = upload_dir(request, tenant.id) / file_name
    try:
        await asyncio.to_thread(_write, path, got.body)
    except FileExistsError:  # a concurrent fetch of the same attachment wrote it first
        pass
    else:
        try:
            await ctx.db.write(lambda conn: uploads.insert(
                conn, id=str(uuid.uuid4()), tenant_id=tenant.id, conversation_id=conversation_id,
                file_name=file_name, name=got.name, content_type=got.content_type,
                size=len(got.body), now=ctx.now_iso()))
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise
    return json({"data": _out(tenant.id, file_name, got.name, got.content_type, len(got.body))},
                status=201)


def _local_upload(attachment: dict[str, object], tenant_id: str) -> str | None:
    """The file name of an attachment that points into this tenant's upload store."""
    for key in ("contentUrl", "url"):
        value = attachment.get(key)
        prefix = f"/uploads/{tenant_id}/"
        if isinstance(value, str) and value.startswith(prefix) and "/" not in value[len(prefix):]:
            return value[len(prefix):]
    return None


def _out(tenant_id: str, file_name: str, name: str, content_type: str, size: int) -> dict[str, object]:
    return {"url": f"/uploads/{tenant_id}/{file_name}", "name": name,
            "content_type": content_type, "size": size}

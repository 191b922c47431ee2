"""``POST /conversations/:id/upload`` (multipart: ``file`` and an optional ``activity``) and
``GET /uploads/<tenant_id>/<file>``, which serves a file to callers allowed to read its
conversation only (the original stored uploads and never served them)."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.request import File
from sanic.response import HTTPResponse, file

from store import uploads
from store.models import Conversation
from store.uploads import Upload

from ... import errors, tierlimits
from ...auth import tenant_auth
from ...domain.activities import create
from ...http import MAX_DEPTH, _depth, gw, json, uuid_param, validation_error
from ...tokens import TokenError
from .activities import ConvergerActivityIn
from .auth import authenticate, conversation

bp = Blueprint("converger_uploads")
files_bp = Blueprint("converger_files")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Served inline only when a browser cannot run them; anything else is a download.
INLINE = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain",
          "audio/mpeg", "audio/ogg", "video/mp4"}


def sanitize(name: str) -> str:
    """Basename, characters outside ``[A-Za-z0-9_.-]`` → ``_``, at most 100 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return (_UNSAFE.sub("_", base)[:100]) or "file"


def upload_dir(request: Request, tenant_id: str) -> Path:
    return Path(gw(request).settings.data_dir) / "uploads" / tenant_id


def _activity_fields(request: Request) -> ConvergerActivityIn:
    """The ``activity`` part: a JSON string, or ``activity[text]``-style form fields."""
    form: Any = request.form or {}
    raw = form.get("activity")
    try:
        if raw:
            data = msgspec.json.decode(raw.encode())
            if _depth(data, MAX_DEPTH):  # the limit every other JSON body has
                raise errors.bad_request(f"activity nests deeper than {MAX_DEPTH} levels",
                                         "json_too_deep", plain=True)
            return msgspec.convert(data, ConvergerActivityIn)
        nested: dict[str, Any] = {}
        for key in ("type", "text"):
            if form.get(f"activity[{key}]") is not None:
                nested[key] = form.get(f"activity[{key}]")
        if form.get("activity[from][id]") is not None:
            nested["from"] = {"id": form.get("activity[from][id]")}
        return msgspec.convert(nested, ConvergerActivityIn)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    except msgspec.DecodeError:
        raise errors.bad_request("activity must be a JSON object", "malformed_json",
                                 plain=True) from None
    except RecursionError:  # nested past the parser's limit: the client's error, not a 500
        raise errors.bad_request("activity nests too deep", "json_too_deep", plain=True) from None


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(body)


async def reserve(request: Request, *, upload_id: str, **fields: Any) -> None:
    """Record the upload before its file is written, within the tenant's storage quota
    (``CONVERGER_TENANT_UPLOAD_QUOTA``): past it, 413 ``storage_quota`` and nothing written."""
    ctx = gw(request)
    quota = ctx.settings.tenant_upload_quota
    ok = await ctx.db.write(lambda conn: uploads.insert_within(
        conn, quota, id=upload_id, now=ctx.now_iso(), **fields))
    if not ok:
        raise errors.ApiError(413, "storage_quota",
                              f"the tenant's uploads would exceed its quota of {quota} bytes")


async def save(request: Request, conv: Conversation, part: File) -> tuple[str, Path, dict[str, Any]]:
    """Store one uploaded file of ``conv``: recorded within the tenant's quota, then written.

    Returns the upload id, the file's path and the attachment naming it. A failed write takes
    the record back."""
    ctx = gw(request)
    upload_id = str(uuid.uuid4())
    name = part.name or "file"
    file_name = f"{upload_id}_{sanitize(name)}"
    ctype = part.type or "application/octet-stream"
    path = upload_dir(request, conv.tenant_id) / file_name
    await reserve(request, upload_id=upload_id, tenant_id=conv.tenant_id,
                  conversation_id=conv.id, file_name=file_name, name=name, content_type=ctype,
                  size=len(part.body))
    try:
        await asyncio.to_thread(_write, path, part.body)
    except BaseException:
        await ctx.db.write(uploads.delete, upload_id)
        raise
    return upload_id, path, {"contentType": ctype,
                             "contentUrl": f"/uploads/{conv.tenant_id}/{file_name}",
                             "name": name, "size": len(part.body)}


@bp.post("/conversations/<conversation_id>/upload")
async def upload(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    # An upload creates an activity: the tenant's activity limit, before anything is written.
    await ctx.rate_limit(request, "activity_create", conv.tenant_id)
    part = request.files.get("file") if request.files else None
    if part is None:
        raise errors.bad_request("Missing file in upload", "missing_file", plain=True)
    cap = await tierlimits.upload_cap(ctx, conv.tenant_id)  # the SLA tier's, if lower
    if len(part.body) > cap:
        raise errors.bad_request(f"File too large (max {cap // 1_048_576}MB)", "file_too_large",
                                 plain=True)
    fields = _activity_fields(request)
    upload_id, path, attachment = await save(request, conv, part)
    new = fields.to_new()
    new.sender = principal.user or new.sender  # a token bound to a user posts as that user
    new.text = new.text if new.text is not None else ""
    new.attachments = [attachment]
    try:
        result = await create(gw(request), conv.tenant_id, conv.id, new)
    except BaseException:
        # No activity names the file: take it back rather than keep an orphan.
        await ctx.db.write(uploads.delete, upload_id)
        await asyncio.to_thread(path.unlink, True)
        raise
    # The upload's id: a later activity references the same file with {"upload_id": …}.
    return json({"id": result.activity.id, "upload_id": upload_id,
                 "attachment": new.attachments[0]})


Check = Callable[[Upload], bool]


def _anyone(row: Upload) -> bool:
    return True


async def _caller(request: Request) -> Check:
    """Authenticate (401 without a valid credential) and say which uploads the caller may
    read: those of conversations its credential reaches."""
    ctx = gw(request)
    h = request.headers
    if "x-api-key" in h or "x-channel-token" in h:
        tenant, claims = await tenant_auth(request)
        scope = (claims or {}).get("conversation_id")
        return lambda row: (tenant.id == row.tenant_id
                            and (scope is None or scope == row.conversation_id))
    if h.get("authorization", "").startswith("Bearer "):
        p = await authenticate(request)
        cg_scope = p.scope
        return lambda row: (p.channel.tenant_id == row.tenant_id
                            and (cg_scope == row.conversation_id if cg_scope is not None
                                 else p.channel.id == row.channel_id))
    token = request.args.get("token")
    if token:  # for <img src>: a conversation token (Converger or legacy) in the query
        try:
            claims = ctx.tokens.verify_legacy(token)
        except TokenError:
            raise errors.unauthorized("Invalid or expired token", "invalid_token") from None
        return lambda row: (claims.get("tenant_id") == row.tenant_id
                            and claims.get("conversation_id") == row.conversation_id)
    raise errors.unauthorized("credentials required to read an upload", "missing_credentials")


@files_bp.get("/uploads/<tenant_id>/<file_name>")
async def serve(request: Request, tenant_id: str, file_name: str) -> HTTPResponse:
    tenant_id = uuid_param(tenant_id, "tenant_id")
    ctx = gw(request)
    # Credentials first, existence after: a caller who may not read it sees 404 either way.
    # A signed URL (Direct Line's contentUrl, for <img src> on another origin) is its own
    # credential, good for that one file until it expires.
    exp, sig = request.args.get("exp"), request.args.get("sig")
    may_read: Check
    if exp and sig and ctx.tokens.verify_path(f"{tenant_id}/{file_name}", exp, sig):
        may_read = _anyone
    else:
        may_read = await _caller(request)
    row = await ctx.db.read(uploads.by_file, tenant_id, file_name)
    if row is None or not may_read(row):
        raise errors.not_found()
    path = upload_dir(request, tenant_id) / row.file_name
    if not path.is_file():
        raise errors.not_found()
    inline = row.content_type in INLINE
    disposition = "inline" if inline else f'attachment; filename="{sanitize(row.name)}"'
    return await file(path, mime_type=row.content_type if inline else "application/octet-stream",
                      headers={"content-disposition": disposition,
                               "x-content-type-options": "nosniff",
                               "content-security-policy": "sandbox; default-src 'none'",
                               "cache-control": "private, no-store"})

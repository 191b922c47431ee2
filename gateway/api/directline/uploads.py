"""``POST /conversations/<id>/upload?userId=``, as the official client sends it: multipart with
the activity as a part named ``activity`` (a file part of type
``application/vnd.microsoft.activity``, or a plain field) and every other file part one
attachment of that activity. The files are stored and served like the Converger API's uploads;
activities show them as absolute signed URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.request import File
from sanic.response import HTTPResponse

from store import uploads

from ... import errors, tierlimits
from ...domain.activities import create
from ...http import MAX_DEPTH, _depth, gw, json, validation_error
from ..converger.activities import ConvergerActivityIn
from ..converger.auth import conversation
from ..converger.uploads import save
from .activities import checked, client_key
from .auth import authenticate

bp = Blueprint("directline_uploads")
ACTIVITY_PART = "activity"


def _activity(request: Request, part: File | None) -> ConvergerActivityIn:
    """The ``activity`` part (file or field); none at all is a plain message."""
    form: Any = request.form or {}
    raw = part.body if part is not None else (form.get(ACTIVITY_PART) or "").encode()
    if not raw.strip():
        return ConvergerActivityIn(type="message")
    try:
        data = msgspec.json.decode(raw)
        if _depth(data, MAX_DEPTH):
            raise errors.directline(400, "json_too_deep",
                                    f"activity nests deeper than {MAX_DEPTH} levels")
        if not isinstance(data, dict):
            raise errors.directline(400, "body_not_object", "activity must be a JSON object")
        return msgspec.convert(data, ConvergerActivityIn)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise errors.directline(400, "malformed_json", "activity must be a JSON object") from None
    except RecursionError:
        raise errors.directline(400, "json_too_deep", "activity nests too deep") from None


def _parts(request: Request) -> tuple[File | None, list[File]]:
    """(the activity part, the file parts) in the order they were sent."""
    activity: File | None = None
    files: list[File] = []
    for name, parts in (request.files or {}).items():
        for part in parts:
            if activity is None and (name == ACTIVITY_PART
                                     or part.type == "application/vnd.microsoft.activity"):
                activity = part
            else:
                files.append(part)
    return activity, files


async def _discard(request: Request, saved: list[tuple[str, Path, dict[str, Any]]]) -> None:
    """No activity names these files: take them back rather than keep orphans."""
    for upload_id, path, _ in saved:
        await gw(request).db.write(uploads.delete, upload_id)
        await asyncio.to_thread(path.unlink, True)


@bp.post("/conversations/<conversation_id>/upload")
async def upload(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    await ctx.rate_limit(request, "activity_create", conv.tenant_id)
    activity_part, files = _parts(request)
    if not files:
        raise errors.directline(400, "missing_file", "Missing file in upload")
    cap = await tierlimits.upload_cap(ctx, conv.tenant_id)  # the SLA tier's, if lower
    for part in files:
        if len(part.body) > cap:
            raise errors.directline(413, "file_too_large",
                                    f"File too large (max {cap // 1_048_576}MB)")
    body = checked(_activity(request, activity_part), request.args.get("userId"),
                   principal.user)
    if body.type != "message":
        raise errors.directline(400, "invalid_activity", "an upload's activity is a message")
    saved: list[tuple[str, Path, dict[str, Any]]] = []
    try:
        for part in files:
            saved.append(await save(request, conv, part))
        new = body.to_new(client_key(request, body))
        new.attachments = [attachment for _, _, attachment in saved]
        result = await create(gw(request), conv.tenant_id, conv.id, new)
    except BaseException:
        await _discard(request, saved)
        raise
    if not result.created:  # a retried upload: the first one's files are the attachments
        await _discard(request, saved)
    return json({"id": result.activity.id})

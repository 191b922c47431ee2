"""The Converger API's entries for the OpenAPI document: ``operations(Op)`` returns them built
with the document's ``Op`` type (``gateway/api/openapi.py`` appends them to ``OPERATIONS``), so
this package does not import the document module."""

from __future__ import annotations

from typing import Any

from .activities import ConvergerActivityIn

CG = ("convergerToken",)
P = "/api/v1/converger"

TOKEN_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"conversationId": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                   "token": {"type": "string"}, "expires_in": {"type": "integer"}},
    "required": ["conversationId", "token", "expires_in"],
}
CONVERSATION_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"conversationId": {"type": "string"}, "token": {"type": "string"},
                   "expires_in": {"type": "integer"}, "streamUrl": {"type": "string"}},
    "required": ["conversationId", "token", "expires_in", "streamUrl"],
}
UPLOAD_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"},
                   "activity": {"type": "string", "description": "the activity as JSON"}},
    "required": ["file"],
}
ID_ANSWER: dict[str, Any] = {"type": "object", "properties": {"id": {"type": "string"}},
                             "required": ["id"]}
UPLOAD_ANSWER: dict[str, Any] = {
    "type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "upload_id": {"type": "string"},
        "attachment": {"type": "object"}}}
ACTIVITY: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "type": {"type": "string"},
                   "from": {"type": "object", "properties": {"id": {"type": "string"}}},
                   "text": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                   "timestamp": {"type": "string"}, "attachments": {"type": "array"},
                   "conversationId": {"type": "string"}, "channelData": {"type": "object"}},
}
ACTIVITY_PAGE: dict[str, Any] = {
    "type": "object",
    "properties": {"activities": {"type": "array", "items": ACTIVITY},
                   "watermark": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    "required": ["activities", "watermark"],
}


def operations(Op: Any) -> list[Any]:
    """The Converger API routes (docs/realtime.md) as ``Op`` entries."""
    return [
        Op("POST", f"{P}/tokens/generate",
           "Unscoped Converger token for a channel (Bearer: the channel secret)",
           ("channelSecret",),
           ok=200, result=TOKEN_ANSWER, errors=(400, 401, 403, 429), wrap=""),
        Op("POST", f"{P}/tokens/refresh", "A new token with the same channel and scope", CG,
           ok=200, result=TOKEN_ANSWER, errors=(401, 403, 429), wrap=""),
        Op("POST", f"{P}/conversations",
           "Create a conversation: a token scoped to it and its streamUrl", CG, ok=201,
           result=CONVERSATION_ANSWER, errors=(401, 403), wrap=""),
        Op("GET", f"{P}/conversations/{{conversation_id}}",
           "Reconnect: a fresh scoped token and streamUrl", CG, result=CONVERSATION_ANSWER,
           errors=(400, 401, 403, 404), wrap="", query=("watermark",)),
        Op("POST", f"{P}/conversations/{{conversation_id}}/activities",
           "Post an activity (x-idempotency-key makes retries safe)", CG, ConvergerActivityIn,
           200, ID_ANSWER, (400, 401, 403, 404, 409, 413, 422, 429), "",
           headers=("x-idempotency-key",)),
        Op("GET", f"{P}/conversations/{{conversation_id}}/activities",
           "Activities after a watermark, at most 500 per page", CG, result=ACTIVITY_PAGE,
           errors=(400, 401, 403, 404), wrap="", query=("watermark",)),
        Op("GET", "/uploads/{tenant_id}/{file_name}",
           "An uploaded file, to callers who may read its conversation (also ?token=)",
           ("apiKey", "channelToken", "convergerToken"), ok=200,
           result={"type": "string", "format": "binary"}, errors=(400, 401, 403, 404), wrap="",
           query=("token",), media="*/*"),
        Op("POST", f"{P}/conversations/{{conversation_id}}/upload",
           "Upload a file (multipart: file, activity) as an activity's attachment", CG,
           UPLOAD_BODY, 200, UPLOAD_ANSWER, (400, 401, 403, 404, 409, 413, 422), "",
           body_media="multipart/form-data"),
    ]

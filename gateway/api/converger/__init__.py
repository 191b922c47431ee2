"""The Converger API (docs/realtime.md): Direct-Line-style tokens, conversations, activities with
watermarks, and uploads; plus ``/uploads/…`` serving stored files to authorised callers."""

from sanic import Blueprint

from . import activities, conversations, tokens, uploads

api = Blueprint.group(tokens.bp, conversations.bp, activities.bp, uploads.bp,
                      url_prefix="/api/v1/converger")
bp = Blueprint.group(api, uploads.files_bp)

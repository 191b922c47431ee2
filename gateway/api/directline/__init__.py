"""Direct Line 3.0 (Microsoft's published API) at ``/v3/directline``: tokens, conversations,
activities with watermarks and uploads, sharing the Converger API's handlers and store, so the
official ``botframework-directlinejs`` client and Bot Framework Web Chat work unchanged. The
stream (``conversations/<id>/stream``) is gateway/realtime/directline_socket.py; the error
shape is gateway/errors.py (``as_directline``)."""

from sanic import Blueprint

from . import activities, conversations, tokens, uploads

bp = Blueprint.group(tokens.bp, conversations.bp, activities.bp, uploads.bp,
                     url_prefix="/v3/directline")

"""The compatible API (reference §4.1 rows 1–10, §5): the original's routes, headers and shapes."""

from sanic import Blueprint

from . import activities, attachments, conversations, routing_rules, tokens

bp = Blueprint.group(
    tokens.bp, conversations.bp, activities.bp, attachments.bp, routing_rules.bp,
    url_prefix="/api/v1"
)

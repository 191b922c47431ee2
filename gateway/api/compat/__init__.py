"""The compatible API (README, "Five-minute walkthrough"): the original's routes, headers and
shapes, so its clients work unchanged."""

from sanic import Blueprint

from .. import analytics
from . import activities, attachments, conversations, routing_rules, tokens

bp = Blueprint.group(
    tokens.bp, conversations.bp, activities.bp, attachments.bp, routing_rules.bp,
    analytics.tenant_bp, url_prefix="/api/v1"
)

"""Every change the gateway makes, in one place: one module per aggregate (tenants, channels,
routing rules, admin tokens, users, conversations, activities, inbound messages, receipts,
deliveries). The API, the pages, the sockets, the CLI and the workers call these; none of them
writes a row or an audit entry itself.

An operation has one shape, ``async def op(gw: Gateway, actor: Actor, ...)``: it runs its
transaction on the database's writer (validation, the rows, the audit entry, all or nothing),
then its effects exactly once, only after commit (clear caches, wake the delivery workers,
broadcast to sockets). It raises the plain exceptions of ``domain.errors``; only the HTTP layer
turns them into problem+json (gateway/errors.py). No Sanic here (an import-linter contract):
a unit test runs an operation against a temporary database with no server (tests/unit/domain/).
docs/architecture.md follows one activity through it.
"""

from . import (
    activities,
    admin_tokens,
    authz,
    channels,
    conversations,
    deliveries,
    inbound,
    receipts,
    routing,
    tenants,
    users,
)
from .base import SYSTEM, Actor
from .errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed

__all__ = [
    "SYSTEM", "Actor", "Conflict", "DomainError", "Forbidden", "NotFound", "ValidationFailed",
    "activities", "admin_tokens", "authz", "channels", "conversations", "deliveries", "inbound",
    "receipts", "routing", "tenants", "users",
]

"""The store's records: plain msgspec Structs, one per table."""

from __future__ import annotations

from typing import Any

import msgspec


class Tenant(msgspec.Struct, kw_only=True):
    id: str
    name: str
    slug: str | None  # what its users type to sign in to the portal (store/tenants.py)
    status: str
    alert_webhook_url: str | None
    api_key_hint: str
    inserted_at: str
    updated_at: str

    @property
    def active(self) -> bool:
        return self.status == "active"


class Channel(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    name: str
    status: str
    type: str
    mode: str
    config: dict[str, Any]
    transformations: list[Any]
    secret_enc: str
    inserted_at: str
    updated_at: str

    @property
    def active(self) -> bool:
        return self.status == "active"


class Conversation(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    channel_id: str
    status: str
    metadata: dict[str, Any]
    last_seq: int
    sender_key: str | None
    last_activity_at: str | None
    inserted_at: str
    updated_at: str


class Activity(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    conversation_id: str
    seq: int
    type: str
    sender: str
    text: str | None
    attachments: list[Any]
    metadata: dict[str, Any]
    idempotency_key: str | None
    source_channel_id: str | None
    external_id: str | None
    inserted_at: str
    updated_at: str
    # Direct Line fields beyond the columns above (m0006): {} for most activities.
    extra: dict[str, Any] = {}


class Delivery(msgspec.Struct, kw_only=True):
    id: str
    activity_id: str
    channel_id: str
    tenant_id: str
    conversation_id: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: str | None
    leased_until: str | None
    claim_token: str | None
    sent_at: str | None
    delivered_at: str | None
    read_at: str | None
    provider_message_id: str | None
    metadata: dict[str, Any]
    inserted_at: str
    updated_at: str


class Alert(msgspec.Struct, kw_only=True):
    """One of the gateway's own webhooks (a health alert), queued like a delivery. ``body`` is
    the exact JSON text sent (and signed) on every attempt."""

    id: str
    tenant_id: str
    channel_id: str
    event: str
    url: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: str | None
    leased_until: str | None
    claim_token: str | None
    sent_at: str | None
    inserted_at: str
    updated_at: str


class RoutingRule(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    name: str
    source_channel_id: str
    target_channel_ids: list[str]
    enabled: bool
    inserted_at: str
    updated_at: str


class AuditLog(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str | None
    actor_type: str
    actor_id: str
    action: str
    resource_type: str
    resource_id: str
    changes: dict[str, Any]
    inserted_at: str


class AdminToken(msgspec.Struct, kw_only=True):
    id: str
    name: str
    token_hint: str
    role: str
    created_by: str | None
    last_used_at: str | None
    revoked_at: str | None
    inserted_at: str
    tenant_scope: list[str] | None = None  # None: every tenant
    channel_scope: list[str] | None = None  # None: every channel of its tenants
    expires_at: str | None = None


JSON_COLUMNS = {"config", "transformations", "metadata", "attachments", "target_channel_ids", "changes",
                "extra", "permissions", "tenant_scope", "channel_scope"}


_PLANS: dict[tuple[type[Any], tuple[str, ...]], list[tuple[int, str, int]]] = {}
_PLAIN, _JSON, _BOOL = 0, 1, 2


def _plan(cls: type[Any], keys: tuple[str, ...]) -> list[tuple[int, str, int]]:
    """Which row positions fill which fields, and how to convert them (computed once per
    Struct and column list: from_row runs several times on every request's hot path)."""
    index = {k: i for i, k in enumerate(keys)}
    plan = []
    for name in cls.__struct_fields__:
        if name in index:
            kind = _JSON if name in JSON_COLUMNS else _BOOL if name == "enabled" else _PLAIN
            plan.append((index[name], name, kind))
    _PLANS[(cls, keys)] = plan
    return plan


def from_row(cls: type[Any], row: Any) -> Any:
    """Build a Struct from a ``sqlite3.Row``, decoding JSON columns and dropping extra columns."""
    from .util import loads

    keys = tuple(row.keys())
    plan = _PLANS.get((cls, keys)) or _plan(cls, keys)
    values = {}
    for i, name, kind in plan:
        value = row[i]
        if kind == _JSON:
            value = loads(value)
        elif kind == _BOOL:
            value = bool(value)
        values[name] = value
    return cls(**values)

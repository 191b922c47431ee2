"""The store's records: plain msgspec Structs, one per table."""

from __future__ import annotations

from collections.abc import Callable
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


class ChannelRef(msgspec.Struct):
    """What an activity's write transaction reads of its conversation's channel (its config,
    secret and names are not needed there): where its deliveries go and whether it is active."""

    id: str
    tenant_id: str
    status: str
    type: str
    mode: str

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


_BUILDERS: dict[tuple[type[Any], tuple[str, ...]], Callable[[Any], Any]] = {}


def _builder(cls: type[Any], keys: tuple[str, ...]) -> Callable[[Any], Any]:
    """A function that builds ``cls`` from a row with these columns (compiled once per Struct
    and column list: from_row runs several times on every request's hot path, and a generated
    ``cls(id=row[0], config=loads(row[6]), …)`` costs half of a loop over a plan)."""
    index = {k: i for i, k in enumerate(keys)}
    args = []
    for name in cls.__struct_fields__:
        if name in index:
            i = index[name]
            value = (f"loads(row[{i}])" if name in JSON_COLUMNS
                     else f"bool(row[{i}])" if name == "enabled" else f"row[{i}]")
            args.append(f"{name}={value}")
    from .util import loads

    namespace: dict[str, Any] = {"cls": cls, "loads": loads}
    exec(f"def build(row):\n    return cls({', '.join(args)})\n", namespace)  # noqa: S102
    build = namespace["build"]
    _BUILDERS[(cls, keys)] = build
    return build


def from_row(cls: type[Any], row: Any) -> Any:
    """Build a Struct from a ``sqlite3.Row``, decoding JSON columns and dropping extra columns."""
    keys = tuple(row.keys())
    build = _BUILDERS.get((cls, keys)) or _builder(cls, keys)
    return build(row)

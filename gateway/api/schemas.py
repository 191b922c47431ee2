"""Wire schemas: every JSON body the API reads or writes is one of these msgspec Structs.
Decoding validates; the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from store.models import Activity, Channel, Conversation, RoutingRule, Tenant

from ..domain.routing import RuleFields as RoutingRuleFields  # noqa: F401  (part of the wire schema)


# -- compatible API: requests ---------------------------------------------------------------
class ActivityIn(Struct, kw_only=True):
    """``POST /api/v1/conversations/:id/activities``. Unknown fields are ignored, as the
    original ignored them; ``inserted_at`` and ``idempotency_key`` in the body are discarded."""

    type: str = "message"
    sender: str = "user"
    text: str | None = None
    attachments: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}


class ConversationIn(Struct, kw_only=True):
    status: str = "active"
    metadata: dict[str, Any] = {}


class TokenIn(Struct, kw_only=True):
    # Optional here so that a missing one is the original's 400 (its clients expect it), not a
    # 422 from the decoder.
    conversation_id: str | None = None
    user_id: str | None = None


class RoutingRuleIn(Struct, kw_only=True):
    routing_rule: RoutingRuleFields


# -- compatible API: responses --------------------------------------------------------------
class ActivityOut(Struct, kw_only=True):
    id: str
    type: str
    sender: str
    text: str | None
    attachments: list[Any]
    metadata: dict[str, Any]
    idempotency_key: str | None
    conversation_id: str
    tenant_id: str
    inserted_at: str
    seq: int
    deliveries: list[dict[str, Any]] | UnsetType = UNSET


def activity_out(a: Activity) -> ActivityOut:
    return ActivityOut(
        id=a.id, type=a.type, sender=a.sender, text=a.text, attachments=a.attachments,
        metadata=a.metadata, idempotency_key=a.idempotency_key, conversation_id=a.conversation_id,
        tenant_id=a.tenant_id, inserted_at=a.inserted_at, seq=a.seq,
    )


class ConversationOut(Struct, kw_only=True):
    id: str
    status: str
    metadata: dict[str, Any]
    channel_id: str
    tenant_id: str
    inserted_at: str
    updated_at: str


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(
        id=c.id, status=c.status, metadata=c.metadata, channel_id=c.channel_id,
        tenant_id=c.tenant_id, inserted_at=c.inserted_at, updated_at=c.updated_at,
    )


class RoutingRuleOut(Struct, kw_only=True):
    id: str
    name: str
    source_channel_id: str
    target_channel_ids: list[str]
    enabled: bool
    tenant_id: str
    inserted_at: str
    updated_at: str


def rule_out(r: RoutingRule) -> RoutingRuleOut:
    # The original's routing rules carry second-precision timestamps.
    return RoutingRuleOut(
        id=r.id, name=r.name, source_channel_id=r.source_channel_id,
        target_channel_ids=r.target_channel_ids, enabled=r.enabled, tenant_id=r.tenant_id,
        inserted_at=r.inserted_at[:19] + "Z", updated_at=r.updated_at[:19] + "Z",
    )


class TokenOut(Struct):
    token: str
    expires_in: int


# -- management API -------------------------------------------------------------------------
class TenantCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    alert_webhook_url: str | None = None
    status: str = "active"


class TenantPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    alert_webhook_url: str | None | UnsetType = UNSET
    status: str | UnsetType = UNSET


class TenantOut(Struct, kw_only=True):
    id: str
    name: str
    slug: str | None  # what its users type to sign in to the portal
    status: str
    alert_webhook_url: str | None
    api_key_hint: str
    inserted_at: str
    updated_at: str
    api_key: str | UnsetType = UNSET


def tenant_out(t: Tenant, api_key: str | None = None) -> TenantOut:
    return TenantOut(
        id=t.id, name=t.name, slug=t.slug, status=t.status, alert_webhook_url=t.alert_webhook_url,
        api_key_hint=t.api_key_hint, inserted_at=t.inserted_at, updated_at=t.updated_at,
        api_key=api_key if api_key is not None else UNSET,
    )


class ChannelCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    tenant_id: str
    name: str
    type: str = "webhook"
    mode: str | None = None
    config: dict[str, Any] = {}
    transformations: list[Any] = []
    status: str = "active"


class ChannelPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
    mode: str | UnsetType = UNSET
    config: dict[str, Any] | UnsetType = UNSET
    transformations: list[Any] | UnsetType = UNSET


class ChannelOut(Struct, kw_only=True):
    id: str
    tenant_id: str
    name: str
    type: str
    mode: str
    status: str
    config: dict[str, Any]
    transformations: list[Any]
    inserted_at: str
    updated_at: str
    secret: str | UnsetType = UNSET


def channel_out(c: Channel, masked_config: dict[str, Any], secret: str | None = None) -> ChannelOut:
    return ChannelOut(
        id=c.id, tenant_id=c.tenant_id, name=c.name, type=c.type, mode=c.mode, status=c.status,
        config=masked_config, transformations=c.transformations, inserted_at=c.inserted_at,
        updated_at=c.updated_at, secret=secret if secret is not None else UNSET,
    )


class AdminUserCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    email: str
    name: str
    password: str
    role: str = "admin"  # a built-in role or a custom role's name
    tenant_scope: list[str] | None = None  # the tenants the role applies to; null: every one


class TenantUserCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    tenant_id: str
    email: str
    name: str
    password: str
    role: str = "member"


class UserPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    role: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
    password: str | UnsetType = UNSET


class AdminUserPatch(UserPatch, kw_only=True, forbid_unknown_fields=True):
    tenant_scope: list[str] | None | UnsetType = UNSET


class AdminTokenCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    role: str = "admin"  # a built-in role or a custom role's name
    tenant_scope: list[str] | None = None  # null: every tenant
    channel_scope: list[str] | None = None  # channels of tenant_scope's tenants; null: all
    expires_at: str | None = None  # ISO 8601 with offset; null: never


class RoleCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    permissions: list[str]
    description: str = ""


class RolePatch(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    permissions: list[str] | UnsetType = UNSET
    description: str | UnsetType = UNSET


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)

"""Tenant, channel and admin-token operations shared by the management API, the CLI and the
admin pages: validation, key generation, encryption of secrets, audit entries."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

import adapters
from adapters import middleware
from adapters.base import ChannelInfo
from adapters.webhook import valid_http_url
from store import admin_tokens, audit, channels, routing, tenants
from store.models import AdminToken, Channel, RoutingRule, Tenant

from . import errors
from .crypto import (
    Cipher,
    hint,
    new_admin_token,
    new_api_key,
    new_channel_secret,
    sha256_hex,
)

Actor = tuple[str, str]
TENANT_STATUSES = ("active", "inactive", "suspended")
CHANNEL_STATUSES = ("active", "inactive")
ROLES = ("super_admin", "admin", "viewer")
MASK = "****"


def _snap(value: Any) -> dict[str, Any]:
    return msgspec.to_builtins(value)


# -- tenants --------------------------------------------------------------------------------
def _tenant_errors(name: Any, status: Any, alert_webhook_url: Any) -> dict[str, list[str]]:
    errs: dict[str, list[str]] = {}
    if name is not None and (not isinstance(name, str) or not name.strip()):
        errs["name"] = ["can't be blank"]
    elif name is not None and "\x00" in name:
        errs["name"] = ["is invalid"]
    if status is not None and status not in TENANT_STATUSES:
        errs["status"] = ["is invalid"]
    if alert_webhook_url not in (None, "") and not valid_http_url(alert_webhook_url):
        errs["alert_webhook_url"] = ["must be a valid HTTP or HTTPS URL"]
    return errs


def create_tenant_tx(
    conn: sqlite3.Connection, name: str, alert_webhook_url: str | None, status: str, actor: Actor,
    now: str,
) -> tuple[Tenant, str]:
    errs = _tenant_errors(name, status, alert_webhook_url)
    if errs:
        raise errors.validation(errs)
    api_key = new_api_key()
    tenant = tenants.create(
        conn, name=name.strip(), api_key_hash=sha256_hex(api_key), api_key_hint=hint(api_key),
        now=now, status=status, alert_webhook_url=alert_webhook_url or None,
    )
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="create",
                 resource_type="tenant", resource_id=tenant.id, tenant_id=tenant.id, now=now,
                 after=_snap(tenant))
    return tenant, api_key


def update_tenant_tx(
    conn: sqlite3.Connection, tenant_id: str, changes: dict[str, Any], actor: Actor, now: str
) -> Tenant | None:
    before = tenants.get(conn, tenant_id)
    if before is None:
        return None
    errs = _tenant_errors(changes.get("name"), changes.get("status"), changes.get("alert_webhook_url"))
    if errs:
        raise errors.validation(errs)
    if "alert_webhook_url" in changes and not changes["alert_webhook_url"]:
        changes["alert_webhook_url"] = None
    after = tenants.update(conn, tenant_id, changes, now)
    action = "toggle_status" if set(changes) == {"status"} else "update"
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action=action,
                 resource_type="tenant", resource_id=tenant_id, tenant_id=tenant_id, now=now,
                 before=_snap(before), after=_snap(after))
    return after


def rotate_tenant_key_tx(
    conn: sqlite3.Connection, tenant_id: str, actor: Actor, now: str
) -> tuple[Tenant, str] | None:
    if tenants.get(conn, tenant_id) is None:
        return None
    api_key = new_api_key()
    tenant = tenants.update(
        conn, tenant_id, {"api_key_hash": sha256_hex(api_key), "api_key_hint": hint(api_key)}, now
    )
    assert tenant is not None
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="rotate_key",
                 resource_type="tenant", resource_id=tenant_id, tenant_id=tenant_id, now=now,
                 after={"api_key_hint": tenant.api_key_hint})
    return tenant, api_key


def delete_tenant_tx(conn: sqlite3.Connection, tenant_id: str, actor: Actor, now: str) -> bool:
    before = tenants.get(conn, tenant_id)
    if before is None:
        return False
    tenants.delete(conn, tenant_id)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="delete",
                 resource_type="tenant", resource_id=tenant_id, now=now, before=_snap(before))
    return True


# -- channels -------------------------------------------------------------------------------
def default_mode(channel_type: str) -> str:
    adapter = adapters.get(channel_type)
    modes = adapter.supported_modes if adapter else ("duplex",)
    return "duplex" if "duplex" in modes else modes[0]


def channel_errors(
    channel_type: str, mode: str, config: Any, transformations: Any, status: str | None = None
) -> dict[str, list[str]]:
    """The original's validation order (reference §1.2), errors accumulated."""
    errs: dict[str, list[str]] = {}
    adapter = adapters.get(channel_type)
    if adapter is None:
        errs["type"] = ["is invalid"]
    if mode not in ("inbound", "outbound", "duplex"):
        errs["mode"] = ["is invalid"]
    if status is not None and status not in CHANNEL_STATUSES:
        errs["status"] = ["is invalid"]
    if not isinstance(config, dict):
        errs["config"] = ["is invalid"]
    elif adapter is not None:
        message = adapter.validate_config(config)
        if message:
            errs["config"] = [message]
    elif "type" in errs:
        errs["config"] = [f"unknown channel type: {channel_type}"]
    if adapter is not None and "mode" not in errs and mode not in adapter.supported_modes:
        errs["mode"] = [f"{channel_type} channels only support modes: "
                        + ", ".join(adapter.supported_modes)]
    if transformations:
        message = middleware.validate(transformations)
        if message:
            errs["transformations"] = [message]
    return errs


def seal_config(cipher: Cipher, channel_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Encrypt the adapter's secret fields for storage."""
    adapter = adapters.get(channel_type)
    fields = adapter.secret_fields if adapter else ()
    out = dict(config)
    for key in fields:
        value = out.get(key)
        if isinstance(value, str) and value and not cipher.is_encrypted(value):
            out[key] = cipher.encrypt(value)
    return out


def open_config(cipher: Cipher, config: dict[str, Any]) -> dict[str, Any]:
    return {k: cipher.decrypt(v) if cipher.is_encrypted(v) else v for k, v in config.items()}


def masked_config(cipher: Cipher, config: dict[str, Any]) -> dict[str, Any]:
    """Config as shown: secrets replaced by ``****``."""
    return {k: MASK if cipher.is_encrypted(v) else v for k, v in config.items()}


def channel_info(cipher: Cipher, channel: Channel) -> ChannelInfo:
    """What an adapter sees: decrypted config and secret."""
    return ChannelInfo(
        id=channel.id, tenant_id=channel.tenant_id, name=channel.name, type=channel.type,
        mode=channel.mode, config=open_config(cipher, channel.config),
        secret=cipher.decrypt(channel.secret_enc),
    )


def _channel_snap(channel: Channel, cipher: Cipher) -> dict[str, Any]:
    snap = _snap(channel)
    snap.pop("secret_enc", None)
    snap["config"] = masked_config(cipher, channel.config)
    return snap


def create_channel_tx(
    conn: sqlite3.Connection,
    cipher: Cipher,
    *,
    tenant_id: str,
    name: str,
    type: str,
    mode: str | None,
    config: dict[str, Any],
    transformations: list[Any],
    status: str,
    actor: Actor,
    now: str,
) -> tuple[Channel, str]:
    if tenants.get(conn, tenant_id) is None:
        raise errors.validation({"tenant_id": ["does not exist"]})
    mode = mode or default_mode(type)
    errs = channel_errors(type, mode, config, transformations, status)
    if not name or not name.strip():
        errs.setdefault("name", []).append("can't be blank")
    elif "\x00" in name:  # SQLite's length() stops at NUL: the CHECK would fail with a 500
        errs.setdefault("name", []).append("is invalid")
    elif channels.name_taken(conn, tenant_id, name):
        errs.setdefault("name", []).append("has already been taken")
    if errs:
        raise errors.validation(errs)
    secret = new_channel_secret()
    channel = channels.create(
        conn, tenant_id=tenant_id, name=name.strip(), type=type, mode=mode,
        config=seal_config(cipher, type, config), transformations=transformations,
        secret_hash=sha256_hex(secret), secret_enc=cipher.encrypt(secret), now=now, status=status,
    )
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="create",
                 resource_type="channel", resource_id=channel.id, tenant_id=tenant_id, now=now,
                 after=_channel_snap(channel, cipher))
    return channel, secret


def update_channel_tx(
    conn: sqlite3.Connection, cipher: Cipher, channel_id: str, changes: dict[str, Any],
    actor: Actor, now: str,
) -> Channel | None:
    before = channels.get(conn, channel_id)
    if before is None:
        return None
    mode = changes.get("mode", before.mode)
    config = changes.get("config")
    if config is not None:
        # A masked secret sent back unchanged keeps the stored value.
        merged = {k: (before.config.get(k) if v == MASK else v) for k, v in config.items()}
        check = open_config(cipher, merged)
    else:
        merged = None
        check = open_config(cipher, before.config)
    errs = channel_errors(before.type, mode, check, changes.get("transformations"), changes.get("status"))
    name = changes.get("name")
    if name is not None:
        if not name.strip():
            errs.setdefault("name", []).append("can't be blank")
        elif "\x00" in name:
            errs.setdefault("name", []).append("is invalid")
        elif channels.name_taken(conn, before.tenant_id, name, exclude_id=channel_id):
            errs.setdefault("name", []).append("has already been taken")
    if errs:
        raise errors.validation(errs)
    if merged is not None:
        changes["config"] = seal_config(cipher, before.type, merged)
    after = channels.update(conn, channel_id, changes, now)
    assert after is not None
    action = "toggle_status" if set(changes) == {"status"} else "update"
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action=action,
                 resource_type="channel", resource_id=channel_id, tenant_id=before.tenant_id,
                 now=now, before=_channel_snap(before, cipher), after=_channel_snap(after, cipher))
    return after


def rotate_channel_secret_tx(
    conn: sqlite3.Connection, cipher: Cipher, channel_id: str, actor: Actor, now: str
) -> tuple[Channel, str] | None:
    before = channels.get(conn, channel_id)
    if before is None:
        return None
    secret = new_channel_secret()
    after = channels.update(
        conn, channel_id, {"secret_hash": sha256_hex(secret), "secret_enc": cipher.encrypt(secret)}, now
    )
    assert after is not None
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="rotate_secret",
                 resource_type="channel", resource_id=channel_id, tenant_id=before.tenant_id,
                 now=now)
    return after, secret


def delete_channel_tx(
    conn: sqlite3.Connection, cipher: Cipher, channel_id: str, actor: Actor, now: str
) -> bool:
    before = channels.get(conn, channel_id)
    if before is None:
        return False
    channels.delete(conn, channel_id)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="delete",
                 resource_type="channel", resource_id=channel_id, tenant_id=before.tenant_id,
                 now=now, before=_channel_snap(before, cipher))
    return True


# -- admin API tokens -----------------------------------------------------------------------
def create_admin_token_tx(
    conn: sqlite3.Connection, name: str, role: str, actor: Actor, now: str
) -> tuple[AdminToken, str]:
    errs: dict[str, list[str]] = {}
    if not name or not name.strip():
        errs["name"] = ["can't be blank"]
    if role not in ROLES:
        errs["role"] = ["is invalid"]
    if errs:
        raise errors.validation(errs)
    token = new_admin_token()
    row = admin_tokens.create(conn, name=name.strip(), token_hash=sha256_hex(token),
                              token_hint=hint(token), role=role, now=now, created_by=actor[1])
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="create",
                 resource_type="admin_token", resource_id=row.id, now=now, after=_snap(row))
    return row, token


def revoke_admin_token_tx(conn: sqlite3.Connection, token_id: str, actor: Actor, now: str) -> bool:
    """Revoke an admin API token; audited like every other management change."""
    if not admin_tokens.revoke(conn, token_id, now):
        return False
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="revoke",
                 resource_type="admin_token", resource_id=token_id, now=now,
                 after={"revoked_at": now})
    return True


# -- routing rules ----------------------------------------------------------------------------
class RoutingRuleFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields a rule change may set (the API's body and the admin form): unset = keep."""
    name: str | UnsetType = UNSET
    source_channel_id: str | UnsetType = UNSET
    target_channel_ids: list[str] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


def _rule_snap(rule: RoutingRule) -> dict[str, Any]:
    return msgspec.to_builtins(rule)


def save_rule_tx(
    conn: sqlite3.Connection,
    tenant_id: str,
    rule_id: str | None,
    fields: RoutingRuleFields,
    actor: tuple[str, str],
    now: str,
) -> RoutingRule:
    """Create (``rule_id`` None) or update a rule after validating it; audited."""
    before = routing.get_for_tenant(conn, tenant_id, rule_id) if rule_id else None
    if rule_id and before is None:
        raise LookupError(rule_id)
    name = fields.name if fields.name is not UNSET else (before.name if before else None)
    source = (fields.source_channel_id if fields.source_channel_id is not UNSET
              else (before.source_channel_id if before else None))
    targets = (fields.target_channel_ids if fields.target_channel_ids is not UNSET
               else (before.target_channel_ids if before else None))
    enabled = fields.enabled if fields.enabled is not UNSET else (before.enabled if before else True)
    errs = routing.validate(
        conn, tenant_id=tenant_id, name=name, source_channel_id=source,
        target_channel_ids=targets, exclude_rule_id=rule_id,
    )
    if errs:
        raise errors.validation(errs)
    assert name and source and targets is not None
    if before is None:
        rule = routing.insert(conn, tenant_id=tenant_id, name=name, source_channel_id=source,
                              target_channel_ids=targets, enabled=enabled, now=now)
        action = "create"
    else:
        rule = routing.update(conn, msgspec.structs.replace(
            before, name=name, source_channel_id=source, target_channel_ids=targets,
            enabled=enabled), now)
        action = "update"
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action=action,
                 resource_type="routing_rule", resource_id=rule.id, tenant_id=tenant_id, now=now,
                 before=_rule_snap(before) if before else None, after=_rule_snap(rule))
    return rule


def delete_rule_tx(
    conn: sqlite3.Connection, tenant_id: str, rule_id: str, actor: tuple[str, str], now: str
) -> bool:
    before = routing.get_for_tenant(conn, tenant_id, rule_id)
    if before is None:
        return False
    routing.delete(conn, rule_id)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="delete",
                 resource_type="routing_rule", resource_id=rule_id, tenant_id=tenant_id, now=now,
                 before=_rule_snap(before), after=None)
    return True

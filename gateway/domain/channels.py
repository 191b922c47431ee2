"""Channels: create (the signing secret is returned once), update, enable/disable, rotate the
secret, delete. Secret config fields are encrypted for storage and shown masked (``****``); a
masked value sent back unchanged keeps the stored one."""

from __future__ import annotations

import sqlite3
from typing import Any

import adapters
from adapters import middleware
from adapters.base import ChannelInfo
from store import channels, tenants, tiers
from store.models import Channel

from .. import configsecrets
from ..context import Gateway
from ..crypto import Cipher, new_channel_secret, sha256_hex
from .base import Actor, record, snap
from .errors import Conflict, NotFound, ValidationFailed

STATUSES = ("active", "inactive")
MODES = ("inbound", "outbound", "duplex")
MASK = "****"


def default_mode(channel_type: str) -> str:
    adapter = adapters.get(channel_type)
    modes = adapter.supported_modes if adapter else ("duplex",)
    return "duplex" if "duplex" in modes else modes[0]


def check(channel_type: str, mode: str, config: Any, transformations: Any,
          status: str | None = None) -> dict[str, list[str]]:
    """The field rules, in the original's order, every error collected (type, mode, status,
    config — the adapter's own check —, the mode the adapter supports, transformations)."""
    errs: dict[str, list[str]] = {}
    adapter = adapters.get(channel_type)
    if adapter is None:
        errs["type"] = ["is invalid"]
    if mode not in MODES:
        errs["mode"] = ["is invalid"]
    if status is not None and status not in STATUSES:
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


def _check_name(conn: sqlite3.Connection, errs: dict[str, list[str]], tenant_id: str, name: Any,
                exclude_id: str | None = None) -> None:
    if not name or not name.strip():
        errs.setdefault("name", []).append("can't be blank")
    elif "\x00" in name:  # SQLite's length() stops at NUL: the CHECK would fail with a 500
        errs.setdefault("name", []).append("is invalid")
    elif channels.name_taken(conn, tenant_id, name, exclude_id=exclude_id):
        errs.setdefault("name", []).append("has already been taken")


# -- inbound signatures (issue 13) --------------------------------------------------------------
# The config fields that let a provider's webhook be verified, for the types that do not
# already require them (Telegram's secret_token and Slack's signing_secret are required).
SIGNING_FIELDS = {"whatsapp_meta": ("app_secret",),
                  "whatsapp_infobip": ("webhook_username", "webhook_password")}


def _receives(mode: str) -> bool:
    return mode in ("inbound", "duplex")


def signing_errors(channel_type: str, mode: str, config: dict[str, Any]) -> dict[str, list[str]]:
    """A new channel that receives messages must be able to verify them: its provider's signing
    fields are required unless ``allow_unsigned: true`` says otherwise, explicitly."""
    if not _receives(mode) or config.get("allow_unsigned") is True:
        return {}
    return {f"config.{f}": ["is required to verify inbound messages (or set allow_unsigned: true)"]
            for f in SIGNING_FIELDS.get(channel_type, ()) if not config.get(f)}


def signed_by_default(channel_type: str, mode: str, config: dict[str, Any]) -> dict[str, Any]:
    """A new webhook channel that receives messages refuses unsigned ones
    (``require_signature``) unless ``allow_unsigned: true`` or ``require_signature: false``."""
    if (channel_type == "webhook" and _receives(mode) and "require_signature" not in config
            and config.get("allow_unsigned") is not True):
        return {**config, "require_signature": True}
    return config


def unsigned(channel: Channel) -> bool:
    """Shown as a warning in the admin panel: this channel accepts unsigned inbound messages."""
    return _receives(channel.mode) and (
        channel.config.get("allow_unsigned") is True
        or (channel.type == "webhook" and channel.config.get("require_signature") is not True)
        or any(not channel.config.get(f) for f in SIGNING_FIELDS.get(channel.type, ())))


# -- secrets ----------------------------------------------------------------------------------
def seal_config(cipher: Cipher, channel_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Encrypt the adapter's secret fields and every credential-like value for storage
    (gateway/configsecrets.py)."""
    adapter = adapters.get(channel_type)
    return configsecrets.seal(cipher, adapter.secret_fields if adapter else (), config)


def open_config(cipher: Cipher, config: dict[str, Any]) -> dict[str, Any]:
    return configsecrets.open_(cipher, config)


def masked_config(cipher: Cipher, config: dict[str, Any]) -> dict[str, Any]:
    """Config as shown: secrets replaced by ``****``."""
    return configsecrets.masked(cipher, config)


def channel_info(cipher: Cipher, channel: Channel, base: str = "") -> ChannelInfo:
    """What an adapter sees: decrypted config and secret; with the gateway's public ``base``
    URL, the channel's inbound and status URLs."""
    root = f"{base.rstrip('/')}/api/v1/channels/{channel.id}" if base else ""
    return ChannelInfo(
        id=channel.id, tenant_id=channel.tenant_id, name=channel.name, type=channel.type,
        mode=channel.mode, config=open_config(cipher, channel.config),
        secret=cipher.decrypt(channel.secret_enc),
        inbound_url=f"{root}/inbound" if root else "", status_url=f"{root}/status" if root else "",
    )


def _snap(channel: Channel, cipher: Cipher) -> dict[str, Any]:
    out = snap(channel)
    out.pop("secret_enc", None)
    out["config"] = masked_config(cipher, channel.config)
    return out


# -- transactions (run on the writer) ---------------------------------------------------------
def create_tx(conn: sqlite3.Connection, cipher: Cipher, *, tenant_id: str, name: str, type: str,
              mode: str | None, config: dict[str, Any], transformations: list[Any], status: str,
              actor: tuple[str, str], now: str) -> tuple[Channel, str]:
    if tenants.get(conn, tenant_id) is None:
        raise ValidationFailed({"tenant_id": ["does not exist"]})
    mode = mode or default_mode(type)
    errs = check(type, mode, config, transformations, status)
    if not errs:
        errs.update(signing_errors(type, mode, config))
        config = signed_by_default(type, mode, config)
    _check_name(conn, errs, tenant_id, name)
    if errs:
        raise ValidationFailed(errs)
    tier = tiers.of_tenant(conn, tenant_id)
    if tier is not None and tier.max_channels is not None \
            and len(channels.for_tenant(conn, tenant_id)) >= tier.max_channels:
        raise Conflict(f"the {tier.name} tier allows at most {tier.max_channels} channels",
                       "tier_limit_reached")
    secret = new_channel_secret()
    channel = channels.create(
        conn, tenant_id=tenant_id, name=name.strip(), type=type, mode=mode,
        config=seal_config(cipher, type, config), transformations=transformations,
        secret_hash=sha256_hex(secret), secret_enc=cipher.encrypt(secret), now=now, status=status,
    )
    record(conn, actor, "create", "channel", channel.id, now, tenant_id=tenant_id,
           after=_snap(channel, cipher))
    return channel, secret


def update_tx(conn: sqlite3.Connection, cipher: Cipher, channel_id: str, changes: dict[str, Any],
              actor: tuple[str, str], now: str, tenant_id: str | None = None) -> Channel:
    """``tenant_id`` set (the portal): only a channel of that tenant can be changed."""
    before = channels.get(conn, channel_id)
    if before is None or (tenant_id is not None and before.tenant_id != tenant_id):
        raise NotFound("channel")
    mode = changes.get("mode", before.mode)
    config = changes.get("config")
    if config is not None:
        # A masked secret sent back unchanged keeps the stored value — unless the same change
        # moves where it is sent (configsecrets: then it must be re-entered).
        merged, kept = configsecrets.merge(before.config, config)
        plain = open_config(cipher, merged)
        reentry = configsecrets.reentry_errors(before.config, merged, kept)
    else:
        merged, reentry = None, {}
        plain = open_config(cipher, before.config)
    errs = check(before.type, mode, plain, changes.get("transformations"), changes.get("status"))
    errs.update(reentry)
    if changes.get("name") is not None:
        _check_name(conn, errs, before.tenant_id, changes["name"], exclude_id=channel_id)
    if errs:
        raise ValidationFailed(errs)
    if merged is not None:
        changes["config"] = seal_config(cipher, before.type, merged)
    after = channels.update(conn, channel_id, changes, now)
    assert after is not None
    action = "toggle_status" if set(changes) == {"status"} else "update"
    record(conn, actor, action, "channel", channel_id, now, tenant_id=before.tenant_id,
           before=_snap(before, cipher), after=_snap(after, cipher))
    return after


def rotate_secret_tx(conn: sqlite3.Connection, cipher: Cipher, channel_id: str,
                     actor: tuple[str, str], now: str) -> tuple[Channel, str]:
    before = channels.get(conn, channel_id)
    if before is None:
        raise NotFound("channel")
    secret = new_channel_secret()
    after = channels.update(
        conn, channel_id, {"secret_hash": sha256_hex(secret), "secret_enc": cipher.encrypt(secret)}, now
    )
    assert after is not None
    record(conn, actor, "rotate_secret", "channel", channel_id, now, tenant_id=before.tenant_id)
    return after, secret


def delete_tx(conn: sqlite3.Connection, cipher: Cipher, channel_id: str, actor: tuple[str, str],
              now: str) -> Channel:
    before = channels.get(conn, channel_id)
    if before is None:
        raise NotFound("channel")
    channels.delete(conn, channel_id)
    record(conn, actor, "delete", "channel", channel_id, now, tenant_id=before.tenant_id,
           before=_snap(before, cipher))
    return before


# -- operations -------------------------------------------------------------------------------
async def create(gw: Gateway, actor: Actor, *, tenant_id: str, name: str, type: str,
                 mode: str | None = None, config: dict[str, Any] | None = None,
                 transformations: list[Any] | None = None,
                 status: str = "active") -> tuple[Channel, str]:
    """A new channel and its signing secret (shown once)."""
    return await gw.db.write(lambda conn: create_tx(
        conn, gw.cipher, tenant_id=tenant_id, name=name, type=type, mode=mode,
        config=config if config is not None else {}, transformations=transformations or [],
        status=status, actor=actor, now=gw.now_iso()))


async def update(gw: Gateway, actor: Actor, channel_id: str, changes: dict[str, Any], *,
                 tenant_id: str | None = None) -> Channel:
    return await gw.db.write(update_tx, gw.cipher, channel_id, changes, actor, gw.now_iso(),
                             tenant_id)


async def set_status(gw: Gateway, actor: Actor, channel_id: str, status: str, *,
                     tenant_id: str | None = None) -> Channel:
    return await update(gw, actor, channel_id, {"status": status}, tenant_id=tenant_id)


async def rotate_secret(gw: Gateway, actor: Actor, channel_id: str) -> tuple[Channel, str]:
    return await gw.db.write(rotate_secret_tx, gw.cipher, channel_id, actor, gw.now_iso())


async def delete(gw: Gateway, actor: Actor, channel_id: str) -> None:
    await gw.db.write(delete_tx, gw.cipher, channel_id, actor, gw.now_iso())

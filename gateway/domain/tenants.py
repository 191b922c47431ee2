"""Tenants: create (the API key is returned once), update, enable/disable, rotate the key,
delete. Every change clears the API-key cache.

A tenant that is not ``active`` has no traffic anywhere: its API key, tokens, sockets, inbound
webhooks and receipts and its portal are refused, and its pending deliveries wait in the queue
(``store/queue.py`` claims only active tenants' rows). Disabling one closes its open sockets
(the hub's ``tenant:<id>`` topic); enabling it again wakes the delivery workers, and what waited
is sent then — nothing is lost."""

from __future__ import annotations

import sqlite3
from typing import Any

from adapters.webhook import valid_http_url
from store import tenants
from store.models import Tenant

from ..context import Gateway
from ..crypto import hint, new_api_key, sha256_hex
from .base import Actor, record, snap
from .errors import NotFound, ValidationFailed

STATUSES = ("active", "inactive", "suspended")
DISABLED = "tenant_disabled"  # the hub event every socket of the tenant closes on


def topic(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def check(name: Any, status: Any, alert_webhook_url: Any) -> dict[str, list[str]]:
    """The field rules; a field given as None is not checked (an update that leaves it)."""
    errs: dict[str, list[str]] = {}
    if name is not None and (not isinstance(name, str) or not name.strip()):
        errs["name"] = ["can't be blank"]
    elif name is not None and "\x00" in name:
        errs["name"] = ["is invalid"]
    if status is not None and status not in STATUSES:
        errs["status"] = ["is invalid"]
    if alert_webhook_url not in (None, "") and not valid_http_url(alert_webhook_url):
        errs["alert_webhook_url"] = ["must be a valid HTTP or HTTPS URL"]
    return errs


# -- transactions (run on the writer) ---------------------------------------------------------
def create_tx(conn: sqlite3.Connection, name: str, alert_webhook_url: str | None, status: str,
              actor: tuple[str, str], now: str) -> tuple[Tenant, str]:
    errs = check(name, status, alert_webhook_url)
    if errs:
        raise ValidationFailed(errs)
    api_key = new_api_key()
    tenant = tenants.create(
        conn, name=name.strip(), api_key_hash=sha256_hex(api_key), api_key_hint=hint(api_key),
        now=now, status=status, alert_webhook_url=alert_webhook_url or None,
    )
    record(conn, actor, "create", "tenant", tenant.id, now, tenant_id=tenant.id, after=snap(tenant))
    return tenant, api_key


def update_tx(conn: sqlite3.Connection, tenant_id: str, changes: dict[str, Any],
              actor: tuple[str, str], now: str) -> tuple[Tenant, Tenant]:
    """Returns (before, after)."""
    before = tenants.get(conn, tenant_id)
    if before is None:
        raise NotFound("tenant")
    errs = check(changes.get("name"), changes.get("status"), changes.get("alert_webhook_url"))
    if errs:
        raise ValidationFailed(errs)
    if "alert_webhook_url" in changes and not changes["alert_webhook_url"]:
        changes["alert_webhook_url"] = None
    after = tenants.update(conn, tenant_id, changes, now)
    assert after is not None
    action = "toggle_status" if set(changes) == {"status"} else "update"
    record(conn, actor, action, "tenant", tenant_id, now, tenant_id=tenant_id,
           before=snap(before), after=snap(after))
    return before, after


def rotate_key_tx(conn: sqlite3.Connection, tenant_id: str, actor: tuple[str, str],
                  now: str) -> tuple[Tenant, str]:
    if tenants.get(conn, tenant_id) is None:
        raise NotFound("tenant")
    api_key = new_api_key()
    tenant = tenants.update(
        conn, tenant_id, {"api_key_hash": sha256_hex(api_key), "api_key_hint": hint(api_key)}, now
    )
    assert tenant is not None
    record(conn, actor, "rotate_key", "tenant", tenant_id, now, tenant_id=tenant_id,
           after={"api_key_hint": tenant.api_key_hint})
    return tenant, api_key


def delete_tx(conn: sqlite3.Connection, tenant_id: str, actor: tuple[str, str], now: str) -> Tenant:
    before = tenants.get(conn, tenant_id)
    if before is None:
        raise NotFound("tenant")
    tenants.delete(conn, tenant_id)
    record(conn, actor, "delete", "tenant", tenant_id, now, before=snap(before))
    return before


# -- operations -------------------------------------------------------------------------------
def _changed(gw: Gateway) -> None:
    # A cached API key → tenant must not outlive a change of key or status.
    gw.tenant_cache.clear()


async def create(gw: Gateway, actor: Actor, *, name: str, alert_webhook_url: str | None = None,
                 status: str = "active") -> tuple[Tenant, str]:
    """A new tenant and its API key (shown once)."""
    tenant, key = await gw.db.write(create_tx, name, alert_webhook_url, status, actor, gw.now_iso())
    _changed(gw)
    return tenant, key


async def update(gw: Gateway, actor: Actor, tenant_id: str, changes: dict[str, Any]) -> Tenant:
    before, after = await gw.db.write(update_tx, tenant_id, changes, actor, gw.now_iso())
    _changed(gw)
    if after.active and not before.active:
        # Its deliveries waited in the queue while it was disabled: they are due now.
        await gw.delivery.enqueued(None, 0)
    elif before.active and not after.active:
        gw.hub.publish(topic(tenant_id), DISABLED, {"tenant_id": tenant_id})
    return after


async def set_status(gw: Gateway, actor: Actor, tenant_id: str, status: str) -> Tenant:
    return await update(gw, actor, tenant_id, {"status": status})


async def rotate_key(gw: Gateway, actor: Actor, tenant_id: str) -> tuple[Tenant, str]:
    tenant, key = await gw.db.write(rotate_key_tx, tenant_id, actor, gw.now_iso())
    _changed(gw)
    return tenant, key


async def delete(gw: Gateway, actor: Actor, tenant_id: str) -> None:
    await gw.db.write(delete_tx, tenant_id, actor, gw.now_iso())
    _changed(gw)
    gw.hub.publish(topic(tenant_id), DISABLED, {"tenant_id": tenant_id})

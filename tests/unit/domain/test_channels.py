"""Channels: the field rules in the original's order (errors collected), secrets encrypted and
masked (a masked value sent back keeps the stored one), a tenant's scope, the audit entries."""

from __future__ import annotations

import pytest

from gateway.context import Gateway
from gateway.domain import NotFound, ValidationFailed
from gateway.domain import channels as channel_ops
from gateway.domain import tenants as tenant_ops
from store import audit, channels

from .conftest import ADMIN

META = {"phone_number_id": "1", "access_token": "SECRET-TOKEN", "verify_token": "v",
        "app_secret": "APP-SECRET"}


async def _tenant(gw: Gateway, name: str = "acme") -> str:
    tenant, _ = await tenant_ops.create(gw, ADMIN, name=name)
    return tenant.id


async def test_create_seals_secrets_and_audits_them_masked(gw: Gateway) -> None:
    tid = await _tenant(gw)
    channel, secret = await channel_ops.create(gw, ADMIN, tenant_id=tid, name=" wa ",
                                               type="whatsapp_meta", config=META)
    assert channel.name == "wa" and channel.mode == "duplex" and secret
    stored = await gw.db.read(channels.get, channel.id)
    assert stored.config["access_token"] != "SECRET-TOKEN"
    assert gw.cipher.decrypt(stored.config["access_token"]) == "SECRET-TOKEN"
    assert channel_ops.masked_config(gw.cipher, stored.config)["access_token"] == channel_ops.MASK
    assert channel_ops.channel_info(gw.cipher, stored).secret == secret
    [entry], _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=channel.id))
    assert entry.action == "create" and "SECRET-TOKEN" not in str(entry.changes)
    assert "access_token" not in entry.changes["after"]["config"]  # redacted outright


async def test_errors_are_collected_in_order(gw: Gateway) -> None:
    tid = await _tenant(gw)
    with pytest.raises(ValidationFailed) as exc:
        await channel_ops.create(gw, ADMIN, tenant_id=tid, name="", type="carrier-pigeon",
                                 mode="sideways", config={}, status="maybe")
    assert exc.value.fields == {"type": ["is invalid"], "mode": ["is invalid"],
                                "status": ["is invalid"],
                                "config": ["unknown channel type: carrier-pigeon"],
                                "name": ["can't be blank"]}
    assert exc.value.detail == "type is invalid"


@pytest.mark.parametrize(("kwargs", "errors"), [
    ({"type": "echo", "mode": "inbound"}, {"mode": ["echo channels only support modes: outbound"]}),
    ({"type": "webhook", "config": {"url": "ftp://nope"}}, "config"),
    ({"type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}, "name": "a\x00b"},
     {"name": ["is invalid"]}),
])
async def test_field_rules(gw: Gateway, kwargs: dict, errors: object) -> None:
    tid = await _tenant(gw)
    with pytest.raises(ValidationFailed) as exc:
        await channel_ops.create(gw, ADMIN, tenant_id=tid, **{"name": "c", **kwargs})
    assert exc.value.fields == errors if isinstance(errors, dict) else list(exc.value.fields) == [errors]


async def test_unknown_tenant_and_duplicate_name(gw: Gateway) -> None:
    with pytest.raises(ValidationFailed) as exc:
        await channel_ops.create(gw, ADMIN, tenant_id="00000000-0000-4000-8000-000000000000",
                                 name="c", type="echo")
    assert exc.value.fields == {"tenant_id": ["does not exist"]}
    tid = await _tenant(gw)
    await channel_ops.create(gw, ADMIN, tenant_id=tid, name="same", type="echo")
    with pytest.raises(ValidationFailed) as exc:
        await channel_ops.create(gw, ADMIN, tenant_id=tid, name="same", type="echo")
    assert exc.value.fields == {"name": ["has already been taken"]}
    other = await _tenant(gw, "other")
    await channel_ops.create(gw, ADMIN, tenant_id=other, name="same", type="echo")  # per tenant


async def test_update_keeps_a_masked_secret_and_audits_before_and_after(gw: Gateway) -> None:
    tid = await _tenant(gw)
    channel, _ = await channel_ops.create(gw, ADMIN, tenant_id=tid, name="wa",
                                          type="whatsapp_meta", config=META)
    shown = channel_ops.masked_config(gw.cipher, channel.config)
    after = await channel_ops.update(gw, ADMIN, channel.id, {"config": {**shown, "verify_token": "w"}})
    opened = channel_ops.open_config(gw.cipher, after.config)
    assert opened["access_token"] == "SECRET-TOKEN" and opened["verify_token"] == "w"
    toggled = await channel_ops.set_status(gw, ADMIN, channel.id, "inactive")
    assert toggled.status == "inactive"
    items, _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=channel.id))
    assert [a.action for a in reversed(items)] == ["create", "update", "toggle_status"]
    assert items[0].changes["before"]["status"] == "active"


async def test_a_tenant_changes_only_its_channels(gw: Gateway) -> None:
    mine, theirs = await _tenant(gw, "mine"), await _tenant(gw, "theirs")
    channel, _ = await channel_ops.create(gw, ADMIN, tenant_id=theirs, name="c", type="echo")
    with pytest.raises(NotFound):
        await channel_ops.set_status(gw, ADMIN, channel.id, "inactive", tenant_id=mine)
    assert (await gw.db.read(channels.get, channel.id)).status == "active"


async def test_rotate_and_delete(gw: Gateway) -> None:
    tid = await _tenant(gw)
    channel, secret = await channel_ops.create(gw, ADMIN, tenant_id=tid, name="c", type="echo")
    _, new = await channel_ops.rotate_secret(gw, ADMIN, channel.id)
    assert new != secret
    await channel_ops.delete(gw, ADMIN, channel.id)
    assert await gw.db.read(channels.get, channel.id) is None
    with pytest.raises(NotFound):
        await channel_ops.delete(gw, ADMIN, channel.id)

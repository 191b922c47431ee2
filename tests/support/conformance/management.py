"""The checks of the protocol's newer members: ``handshake`` (in-band provider checks),
``actions``/``run_action``, ``config_fields`` and ``fetch_media``. An adapter that does not use
them keeps ``BaseAdapter``'s defaults and passes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec

from adapters.base import ActionResult, Adapter, ConfigField, MediaError, MediaFile

from .delivery import closed_port
from .profile import GARBAGE, Profile, show, variants

ODD_ATTACHMENTS: tuple[Any, ...] = (
    {}, {"type": None}, {"file_id": None}, {"file_id": [1]}, {"file_id": "x", "file_size": "big"},
    {"url": "nope"}, {"url_private": 5}, {"url_private_download": "http://[::1"},
    {"type": "image", "file_id": "x", "too_large": True}, {"size": -1, "url": "ftp://x"},
)


def check_handshake(adapter: Adapter, profile: Profile) -> None:
    """``handshake`` never raises and gives None or (status, JSON-encodable body); it never
    takes a message or a receipt sample for a handshake (the message would be lost)."""
    channel = profile.channel(adapter)
    samples = (*profile.inbound, *profile.statuses)
    for payload in (*GARBAGE, *samples, *(v for s in samples for v in variants(s))):
        try:
            answer = adapter.handshake(channel, payload)
        except Exception as exc:
            raise AssertionError(f"{adapter.type}.handshake raised {exc!r} for "
                                 f"{show(payload)}") from exc
        if answer is None:
            continue
        assert isinstance(answer, tuple) and len(answer) == 2 and type(answer[0]) is int \
            and 100 <= answer[0] <= 599, \
            f"{adapter.type}.handshake returned {show(answer)}, not (status, body)"
        try:
            msgspec.json.encode(answer[1])
        except (TypeError, msgspec.EncodeError) as exc:
            raise AssertionError(f"{adapter.type}.handshake body is not JSON: {exc}") from None
    for sample in samples:
        assert adapter.handshake(channel, sample) is None, \
            f"{adapter.type}.handshake took a message or receipt sample for a handshake: " \
            f"{show(sample)}"


def check_config_fields(adapter: Adapter, profile: Profile) -> None:
    """``actions`` is a tuple of names; ``config_fields`` are ConfigFields with distinct keys
    that cover every required key (when the adapter declares any)."""
    actions = adapter.actions
    assert isinstance(actions, tuple) and all(isinstance(a, str) and a for a in actions), \
        f"{adapter.type}: actions must be a tuple of non-empty str, got {actions!r}"
    fields = adapter.config_fields
    assert isinstance(fields, tuple) and all(isinstance(f, ConfigField) for f in fields), \
        f"{adapter.type}: config_fields must be a tuple of ConfigField"
    keys = [f.key for f in fields]
    assert len(keys) == len(set(keys)), f"{adapter.type}: config_fields repeat a key: {keys}"
    if fields:
        missing = set(profile.required) - set(keys)
        assert not missing, f"{adapter.type}: required keys without a form field: {missing}"
        flagged = {f.key for f in fields if f.required}
        assert flagged >= set(profile.required), \
            f"{adapter.type}: required keys not marked required in config_fields: " \
            f"{set(profile.required) - flagged}"


async def check_management(adapter: Adapter, profile: Profile, limit: float = 5.0) -> None:
    """``run_action`` (an unknown name, and every action against a provider that refuses the
    connection) and ``fetch_media`` (odd attachments) return values in time, never raise."""
    config = profile.secret_config if profile.secret_config is not None else profile.config
    if profile.point_at is not None:
        config = profile.point_at(dict(config), f"http://127.0.0.1:{closed_port()}")
    channel = profile.channel(adapter, config)
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name in ("no-such-action", *adapter.actions):
            try:
                result = await asyncio.wait_for(
                    adapter.run_action(session, channel, name, "https://gw.example/in"), limit)
            except Exception as exc:
                raise AssertionError(f"{adapter.type}.run_action({name!r}) raised {exc!r}") from exc
            assert isinstance(result, ActionResult), \
                f"{adapter.type}.run_action returned {show(result)}, not an ActionResult"
            assert not result.ok and isinstance(result.error, str) and result.error, \
                f"{adapter.type}.run_action({name!r}) must fail, saying why, when it cannot " \
                f"reach the provider (or knows no such action): {result}"
        for attachment in ODD_ATTACHMENTS:
            try:
                got = await asyncio.wait_for(
                    adapter.fetch_media(session, channel, attachment, 1024), limit)
            except Exception as exc:
                raise AssertionError(f"{adapter.type}.fetch_media raised {exc!r} for "
                                     f"{show(attachment)}") from exc
            assert isinstance(got, MediaError | MediaFile), \
                f"{adapter.type}.fetch_media returned {show(got)} for {show(attachment)}"
            if isinstance(got, MediaError):
                assert got.kind in ("unsupported", "too_large", "provider") and got.error, \
                    f"{adapter.type}.fetch_media: a MediaError needs a known kind and a " \
                    f"message: {got}"

"""A fake adapter and the conformance suite every adapter passes (tests/unit/adapters/
test_conformance.py runs it over ``adapters.REGISTRY``, so a new adapter cannot skip it).

``FakeAdapter`` (type ``fake``) implements the protocol in memory: it records what it was asked
to deliver and can be told to fail, to ask for a ``Retry-After`` or to be gone (a final,
non-retryable failure). Given a ``url`` in its config it posts instead, which makes it the
reference implementation the conformance suite must accept.

The conformance checks are plain functions and coroutines taking an adapter and a ``Profile``
(what the suite must know of a type: a valid config, one with its secrets, where its provider
lives, sample payloads). They raise ``AssertionError`` with a message naming the adapter and
the input. Every check is about the contract the gateway relies on: an adapter returns values or
raises ``InboundError`` — anything else escaping it is a 500, a lost message or a stuck worker.

Modules: ``fake`` (the fake), ``profile`` (``Profile``, the odd values, shared helpers),
``checks`` (attributes, config, parsing, verification), ``delivery`` (against a loopback
server), ``management`` (handshakes, actions, config fields, file downloads). Everything is re-exported here: ``from tests.support import conformance``.

Like every adapter, it never imports the gateway, the store, Sanic or a test framework: the
checks are ordinary code that raises ``AssertionError``.
"""

from __future__ import annotations

from adapters.base import Adapter

from .checks import (
    FORGED_HEADERS,
    QUERIES,
    bad_configs,
    check_attributes,
    check_inbound_value,
    check_parsing,
    check_status_value,
    check_validate_config,
    check_validate_value,
    check_verification,
    odd_configs,
)
from .delivery import Provider, check_deliver, closed_port
from .fake import Delivered, FakeAdapter
from .management import check_config_fields, check_handshake, check_management
from .media import check_media, check_media_declaration
from .profile import GARBAGE, WRONG, Headers, Profile, variants

__all__ = [
    "FORGED_HEADERS", "GARBAGE", "QUERIES", "WRONG", "Delivered", "FakeAdapter", "Headers",
    "Profile", "Provider", "bad_configs", "check_all", "check_attributes", "check_config_fields",
    "check_deliver", "check_handshake", "check_management",
    "check_inbound_value", "check_media", "check_media_declaration", "check_parsing", "check_status_value", "check_validate_config",
    "check_validate_value", "check_verification", "closed_port", "odd_configs", "variants",
]


async def check_all(adapter: Adapter, profile: Profile, key: str | None = None) -> None:
    """Every check, in order (``key``: the type's registry key, default its type)."""
    check_attributes(adapter, adapter.type if key is None else key)
    check_validate_config(adapter, profile)
    check_parsing(adapter, profile)
    check_verification(adapter, profile)
    check_handshake(adapter, profile)
    check_config_fields(adapter, profile)
    await check_deliver(adapter, profile)
    await check_media(adapter, profile)
    await check_management(adapter, profile)

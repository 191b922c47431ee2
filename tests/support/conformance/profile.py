"""What the suite must know of a type (``Profile``), the odd values it feeds adapters, and the
small helpers the checks share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from adapters.base import Adapter, ChannelInfo, OutboundActivity


@dataclass(frozen=True)
class Profile:
    """What the suite must know of one channel type to check it.

    ``config`` is valid; ``secret_config`` is valid and sets every secret field (default:
    ``config``); ``required`` are keys without which (or with None, a number or a list in their
    place) the config is invalid; ``bad_configs`` are more configs the adapter must refuse.
    Delivering types also give ``point_at(config, url)`` — the config with its provider's base
    URL set to a loopback URL —, ``set_timeout(config, seconds)`` when the type has its own
    timeout setting (otherwise the session's timeout applies), ``ok_body``, the JSON a provider
    answers a successful send with, and ``activity_metadata`` an activity needs to be sendable.
    ``inbound`` and ``statuses`` are sample payloads (a message, a receipt) the type parses;
    ``sign(channel, body)`` gives the headers a provider sends with a genuine request to the
    ``secret_config`` channel, for types that check one.
    """

    type: str
    config: dict[str, Any]
    secret_config: dict[str, Any] | None = None
    required: tuple[str, ...] = ()
    bad_configs: tuple[dict[str, Any], ...] = ()
    point_at: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    set_timeout: Callable[[dict[str, Any], float], dict[str, Any]] | None = None
    ok_body: Any = None
    activity_metadata: dict[str, Any] = field(default_factory=dict)
    inbound: tuple[Any, ...] = ()
    statuses: tuple[Any, ...] = ()
    sign: Callable[[ChannelInfo, bytes], dict[str, str]] | None = None
    # Types that send mail: the config pointed at an SMTP server on a loopback port (the
    # delivery checks then run against an SMTP stand-in instead of an HTTP one).
    smtp_point_at: Callable[[dict[str, Any], int], dict[str, Any]] | None = None

    def channel(self, adapter: Adapter, config: dict[str, Any] | None = None) -> ChannelInfo:
        """A channel of this type (duplex when the type allows it) with ``config``."""
        modes = adapter.supported_modes
        return ChannelInfo(
            id="ch-conformance", tenant_id="t-conformance", name="conformance",
            type=adapter.type, mode="duplex" if "duplex" in modes else modes[0],
            config=dict(self.config if config is None else config),
            secret="whsec_Y29uZm9ybWFuY2UtY29uZm9ybWFuY2UtY29uZm9ybWFuY2U=",
        )

    def activity(self, **overrides: Any) -> OutboundActivity:
        """A sendable activity (text, and the metadata the type needs)."""
        fields: dict[str, Any] = dict(
            id="act-conformance", type="message", sender="user", text="conformance check",
            attachments=[], metadata=dict(self.activity_metadata),
            conversation_id="conv-conformance", tenant_id="t-conformance",
            timestamp="2026-01-01T00:00:00.000000Z", seq=1, delivery_id="del-conformance",
        )
        fields.update(overrides)
        return OutboundActivity(**fields)


# Values of the wrong type put in place of every field of a sample payload or config.
WRONG: tuple[Any, ...] = (None, 5, -1.5, True, "", "x", [], {}, [None], {"": None})
GARBAGE: tuple[Any, ...] = (
    None, [], "x", "", 5, 0, -1, 1.5, float("nan"), True, False, 2**70, {}, {"": None},
    [[[]]], [None, 1, "a"], {"a": {"b": [1, {"c": None}]}}, "\x00\udcff", b"bytes",
    {"results": None}, {"results": [None, 1, "x", {}]}, {"entry": "x"}, {"entry": [{}]},
    {"object": 5, "entry": [{"changes": [{"value": None}]}]}, {"messages": {}}, {"statuses": [5]},
    {"status": 5}, {"status": "sent", "delivery_id": 5}, {"sender": [], "text": {}},
)
HUGE = "x" * 1_000_000
# What a required key may not be.
WRONG_REQUIRED: tuple[Any, ...] = (None, 5, [], {})


def show(value: Any) -> str:
    """A short repr for assertion messages."""
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "…"


def variants(sample: Any) -> Iterator[Any]:
    """The sample with each field (at any depth) removed, or replaced by each ``WRONG`` value."""
    if isinstance(sample, dict):
        for key, value in sample.items():
            yield {k: v for k, v in sample.items() if k != key}
            for wrong in WRONG:
                yield {**sample, key: wrong}
            for sub in variants(value):
                yield {**sample, key: sub}
    elif isinstance(sample, list):
        for i, value in enumerate(sample):
            yield sample[:i] + sample[i + 1:]
            for wrong in WRONG:
                yield [*sample[:i], wrong, *sample[i + 1:]]
            for sub in variants(value):
                yield [*sample[:i], sub, *sample[i + 1:]]


def well_typed(value: Any, cls: type[msgspec.Struct], what: str) -> None:
    """The value is a ``cls`` whose fields have their declared types and that encodes as JSON
    (the gateway stores it)."""
    assert isinstance(value, cls), f"{what}: expected a {cls.__name__}, got {show(value)}"
    try:
        msgspec.json.decode(msgspec.json.encode(value), type=cls)
    except (msgspec.ValidationError, msgspec.EncodeError, TypeError) as exc:
        raise AssertionError(f"{what}: {cls.__name__} with ill-typed fields ({exc}): "
                             f"{show(value)}") from None


def validated(adapter: Adapter, config: Any) -> str | None:
    """``adapter.validate_config(config)``, checked to be None or a message and not to raise."""
    try:
        result = adapter.validate_config(config)
    except Exception as exc:
        raise AssertionError(f"{adapter.type}.validate_config raised {exc!r} for "
                             f"{show(config)}; it must return an error message") from exc
    assert result is None or (isinstance(result, str) and result), \
        f"{adapter.type}.validate_config returned {result!r} for {show(config)}: None or a message"
    return result


class Headers(Mapping[str, str]):
    """Request headers as the gateway hands them over: names compared case-insensitively."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = {k.lower(): v for k, v in items.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

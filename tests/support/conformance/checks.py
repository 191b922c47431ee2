"""The checks that need no network: class attributes, config validation, parsing, verification.
Each raises ``AssertionError`` naming the adapter, the input and what was wrong."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from adapters.base import MODES, Adapter, ChannelInfo, InboundError, InboundMessage, StatusUpdate

from .profile import (
    GARBAGE,
    HUGE,
    WRONG_REQUIRED,
    Headers,
    Profile,
    show,
    validated,
    variants,
    well_typed,
)

# -- class attributes ---------------------------------------------------------------------------

def check_attributes(adapter: Adapter, key: str) -> None:
    """type, supported_modes, secret_fields and delivers are well-formed."""
    name = type(adapter).__name__
    assert isinstance(adapter.type, str) and adapter.type, f"{name}.type must be a non-empty str"
    assert adapter.type == key, f"{name}.type is {adapter.type!r} but it is registered as {key!r}"
    modes = adapter.supported_modes
    assert isinstance(modes, tuple) and modes, f"{key}: supported_modes must be a non-empty tuple"
    assert set(modes) <= set(MODES), f"{key}: supported_modes {modes} not within {MODES}"
    fields = adapter.secret_fields
    assert isinstance(fields, tuple) and all(isinstance(f, str) and f for f in fields), \
        f"{key}: secret_fields must be a tuple of non-empty str, got {fields!r}"
    assert isinstance(adapter.delivers, bool), f"{key}: delivers must be a bool"
    assert not adapter.delivers or {"outbound", "duplex"} & set(modes), \
        f"{key}: delivers, but supported_modes {modes} has neither outbound nor duplex"


# -- config -------------------------------------------------------------------------------------

def check_validate_value(adapter: Adapter, config: Any) -> None:
    """One config (any shape): a message or None comes back, nothing is raised."""
    validated(adapter, config)


def bad_configs(profile: Profile) -> Iterator[dict[Any, Any]]:
    """Configs that must be refused: the profile's own, and each required key missing, None,
    a number or a list."""
    yield from profile.bad_configs
    for key in profile.required:
        yield {k: v for k, v in profile.config.items() if k != key}
        for wrong in WRONG_REQUIRED:
            yield {**profile.config, key: wrong}


def odd_configs(profile: Profile) -> Iterator[dict[Any, Any]]:
    """Configs of odd shapes that may or may not be valid but must not break validation."""
    yield {}
    yield {1: "x", None: "y", (1, 2): "z", "": ""}
    yield {**profile.config, 1: "x", None: None}
    yield from variants(profile.config)
    for key in profile.config:
        yield {**profile.config, key: HUGE}
    yield {HUGE: HUGE}


def check_validate_config(adapter: Adapter, profile: Profile) -> None:
    """The valid configs pass, the bad ones are refused, none of the odd ones raise."""
    assert profile.type == adapter.type, f"profile {profile.type!r} used for {adapter.type!r}"
    assert validated(adapter, profile.config) is None, \
        f"{adapter.type}: the profile's valid config was refused"
    secret = profile.secret_config if profile.secret_config is not None else profile.config
    refused = validated(adapter, secret)
    assert refused is None, f"{adapter.type}: the profile's config with secrets was refused: {refused}"
    missing = [f for f in adapter.secret_fields if f not in secret]
    assert not missing, f"{adapter.type}: the profile's secret_config lacks secret fields {missing}"
    for config in bad_configs(profile):
        assert validated(adapter, config) is not None, \
            f"{adapter.type}.validate_config accepted a bad config {show(config)}"
    for config in odd_configs(profile):
        validated(adapter, config)


# -- inbound ------------------------------------------------------------------------------------

def check_inbound_value(adapter: Adapter, payload: Any) -> list[InboundMessage] | None:
    """parse_inbound of one payload: messages, or InboundError; nothing else."""
    try:
        result = adapter.parse_inbound(payload)
    except InboundError as exc:
        assert str(exc), f"{adapter.type}.parse_inbound raised an InboundError with no message"
        return None
    except Exception as exc:
        raise AssertionError(f"{adapter.type}.parse_inbound raised {exc!r} for {show(payload)}; "
                             "only InboundError may come out") from exc
    assert isinstance(result, list), \
        f"{adapter.type}.parse_inbound returned {show(result)}, not a list, for {show(payload)}"
    for message in result:
        well_typed(message, InboundMessage, f"{adapter.type}.parse_inbound({show(payload)})")
    return result


def check_status_value(adapter: Adapter, payload: Any) -> list[StatusUpdate] | None:
    """parse_status of one payload: None, updates, or InboundError; nothing else."""
    try:
        result = adapter.parse_status(payload)
    except InboundError:
        return None
    except Exception as exc:
        raise AssertionError(f"{adapter.type}.parse_status raised {exc!r} for {show(payload)}; "
                             "only InboundError may come out") from exc
    if result is None:
        return None
    assert isinstance(result, list), \
        f"{adapter.type}.parse_status returned {show(result)}, not None or a list"
    for update in result:
        # The status is kept as given (the webhook type passes any string through, as the
        # original did); the gateway ignores those it does not know.
        well_typed(update, StatusUpdate, f"{adapter.type}.parse_status({show(payload)})")
    return result


def check_parsing(adapter: Adapter, profile: Profile) -> None:
    """Samples parse; garbage, and the samples with fields removed or of the wrong type, give
    values or InboundError and nothing else."""
    for sample in profile.inbound:
        messages = check_inbound_value(adapter, sample)
        assert messages, f"{adapter.type}.parse_inbound found no message in the sample {show(sample)}"
        assert not check_status_value(adapter, sample), \
            f"{adapter.type}.parse_status took the inbound sample for a receipt: {show(sample)}"
    for sample in profile.statuses:
        assert check_status_value(adapter, sample), \
            f"{adapter.type}.parse_status found no update in the sample {show(sample)}"
    for payload in GARBAGE:
        check_inbound_value(adapter, payload)
        check_status_value(adapter, payload)
    for sample in (*profile.inbound, *profile.statuses):
        for payload in variants(sample):
            check_inbound_value(adapter, payload)
            check_status_value(adapter, payload)


# -- verification -------------------------------------------------------------------------------

FORGED_HEADERS: tuple[dict[str, str], ...] = (
    {},
    {"X-Hub-Signature-256": "sha256=00", "Authorization": "Basic Zm9vOmJhcg==",
     "webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA",
     "X-Fake-Token": "nope"},
    {"x-hub-signature-256": "", "authorization": "", "webhook-signature": "",
     "webhook-timestamp": "", "x-fake-token": ""},
    # Unicode digits pass str.isdigit() but not int().
    {"webhook-signature": "v1,é", "webhook-timestamp": "²", "webhook-id": "\x00",
     "X-Hub-Signature-256": "sha256=é", "Authorization": "Basic é"},
    # Sanic decodes header bytes that are not UTF-8 to lone surrogates.
    {"webhook-signature": "v2,x v1,\udcff", "webhook-timestamp": "٣٣", "webhook-id": "\udcff",
     "Authorization": "App \udcff", "X-Hub-Signature-256": "sha256=\udcff",
     "X-Fake-Token": "\udcff"},
)
BODIES = (b"", b"{}", b"\xff\xfe\x00")
QUERIES: tuple[dict[str, str], ...] = (
    {},
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "123"},
    {"hub.mode": "é", "hub.verify_token": "\udcff", "token": "\x00", "challenge": ""},
    {"hub.mode": "subscribe", "hub.verify_token": "\udcff", "token": "\udcff"},
)


def check_verification(adapter: Adapter, profile: Profile) -> None:
    """verify_signature never raises and never accepts a forged request; verify_challenge gives
    (status, text); addressed_to gives a bool, True for the type's own samples."""
    configs = [profile.config]
    if profile.secret_config is not None:
        configs.append(profile.secret_config)
    for config in configs:
        channel = profile.channel(adapter, config)
        for headers in FORGED_HEADERS:
            for body in BODIES:
                try:
                    verdict = adapter.verify_signature(channel, headers, body)
                except Exception as exc:
                    raise AssertionError(f"{adapter.type}.verify_signature raised {exc!r} for "
                                         f"headers {show(headers)}") from exc
                assert verdict is None or verdict is False, \
                    f"{adapter.type}.verify_signature returned {verdict!r} for forged headers " \
                    f"{show(headers)} (None or False expected)"
        for query in QUERIES:
            try:
                answer = adapter.verify_challenge(channel, query)
            except Exception as exc:
                raise AssertionError(f"{adapter.type}.verify_challenge raised {exc!r} for "
                                     f"{show(query)}") from exc
            assert isinstance(answer, tuple) and len(answer) == 2 \
                and type(answer[0]) is int and 100 <= answer[0] <= 599 \
                and isinstance(answer[1], str), \
                f"{adapter.type}.verify_challenge returned {show(answer)}, not (status, text)"
        _check_addressed(adapter, profile, channel)
    _check_genuine(adapter, profile)


def _check_genuine(adapter: Adapter, profile: Profile) -> None:
    """A genuine request verifies (whatever the header names' case); one with any of its
    headers altered does not."""
    if profile.sign is None:
        return
    channel = profile.channel(adapter, profile.secret_config)
    body = b'{"conformance": true}'
    genuine = profile.sign(channel, body)
    for headers in (Headers(genuine), Headers({k.upper(): v for k, v in genuine.items()})):
        verdict = adapter.verify_signature(channel, headers, body)
        assert verdict is True, \
            f"{adapter.type}.verify_signature returned {verdict!r} for a genuine request {genuine}"
    for key, value in genuine.items():
        altered = Headers({**genuine, key: value[:-1] + ("A" if value[-1:] != "A" else "B")})
        verdict = adapter.verify_signature(channel, altered, body)
        assert verdict is not True, \
            f"{adapter.type}.verify_signature accepted a request whose {key!r} was altered"


def _check_addressed(adapter: Adapter, profile: Profile, channel: ChannelInfo) -> None:
    odd = [
        InboundMessage(sender="x"),
        InboundMessage(sender="x", metadata={"to": [1], "phone_number_id": {"a": 1}}),
        InboundMessage(sender="x", metadata={"to": 5, "phone_number_id": None}),
        InboundMessage(sender="", metadata={"to": True, "phone_number_id": "\x00"}),
    ]
    own: list[InboundMessage] = []
    for sample in profile.inbound:
        own.extend(check_inbound_value(adapter, sample) or [])
    for message in (*odd, *own):
        try:
            answer = adapter.addressed_to(channel, message)
        except Exception as exc:
            raise AssertionError(f"{adapter.type}.addressed_to raised {exc!r} for "
                                 f"{show(message)}") from exc
        assert isinstance(answer, bool), \
            f"{adapter.type}.addressed_to returned {answer!r}, not a bool"
    for message in own:
        assert adapter.addressed_to(channel, message), \
            f"{adapter.type}: a sample message is not addressed to the profile's channel " \
            f"(config {channel.config}): {show(message)}"

"""A fake adapter and the conformance suite every adapter passes (house rule 11).

``FakeAdapter`` (type ``fake``) implements the protocol in memory: it records what it was asked
to deliver and can be told to fail, to ask for a ``Retry-After`` or to be gone (a final,
non-retryable failure). Given a ``url`` in its config it posts instead, which makes it the
reference implementation the conformance suite must accept.

The conformance checks are plain functions and coroutines taking an adapter and a ``Profile``
(what the suite must know of a type: a valid config, one with its secrets, where its provider
lives, sample payloads). They raise ``AssertionError`` with a message naming the adapter and
the input. Every check is about the contract the gateway relies on: an adapter returns values or
raises ``InboundError`` — anything else escaping it is a 500, a lost message or a stuck worker.

This module is imported by tests only, and (like every adapter) never imports the gateway, the
store, Sanic or a test framework: the checks are ordinary code.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
import msgspec
from aiohttp import web

from .base import (
    MAX_RETRY_AFTER,
    MODES,
    Adapter,
    BaseAdapter,
    ChannelInfo,
    DeliveryResult,
    InboundError,
    InboundMessage,
    OutboundActivity,
    StatusUpdate,
)
from .signing import header_bytes
from .webhook import retry_after_seconds, valid_http_url

# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------

FAKE_STATUSES = ("sent", "delivered", "read", "failed")


@dataclass
class Delivered:
    """One call of ``FakeAdapter.deliver``: the channel, the activity and what was answered."""

    channel: ChannelInfo
    activity: OutboundActivity
    result: DeliveryResult


class FakeAdapter(BaseAdapter):
    """An in-memory channel type for tests of the pipeline, and the suite's reference.

    Config: ``number`` (optional, the account messages are addressed to), ``token`` (optional,
    secret: when set, inbound requests must carry it in ``X-Fake-Token`` and the challenge
    must name it), ``url`` (optional: deliveries are POSTed there as JSON, with
    ``timeout_seconds``). Inbound payloads: ``{"messages": [{"from", "text"?, "id"?, "to"?}]}``;
    receipts: ``{"statuses": [{"id", "status"}]}``.
    """

    type: ClassVar[str] = "fake"
    supported_modes: ClassVar[tuple[str, ...]] = MODES
    secret_fields: ClassVar[tuple[str, ...]] = ("token",)
    delivers: ClassVar[bool] = True

    def __init__(self) -> None:
        self.delivered: list[Delivered] = []
        # Answers for the next in-memory deliveries, first first; then success.
        self.script: list[DeliveryResult] = []
        self._gone = False
        self._count = 0

    # -- telling it what to do ------------------------------------------------------------
    def fail(self, times: int = 1, *, error: str = "fake failure",
             retry_after: float | None = None) -> None:
        """The next ``times`` deliveries fail, retryably (after ``retry_after`` if given)."""
        self.script.extend(DeliveryResult(ok=False, error=error, retry_after=retry_after)
                           for _ in range(times))

    def gone(self) -> None:
        """Every delivery from now on fails for good, as a 410 would."""
        self._gone = True

    def reset(self) -> None:
        self.delivered.clear()
        self.script.clear()
        self._gone = False

    # -- the protocol ---------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        for key in ("number", "token"):
            value = config.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                return f"fake config '{key}' must be a non-empty string"
        url = config.get("url")
        if url is not None and not valid_http_url(url):
            return "fake config 'url' must be a valid HTTP/HTTPS URL"
        timeout = config.get("timeout_seconds")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not 0 < timeout <= 30):
            return "fake config 'timeout_seconds' must be a number between 0 and 30"
        return None

    async def deliver(self, session: Any, channel: ChannelInfo,
                      activity: OutboundActivity) -> DeliveryResult:
        if isinstance(channel.config.get("url"), str):
            result = await self._post(session, channel, activity)
        elif self._gone:
            result = DeliveryResult(ok=False, retryable=False, error="fake channel is gone")
        elif self.script:
            result = self.script.pop(0)
        else:
            self._count += 1
            result = DeliveryResult(ok=True, provider_message_id=f"fake-{self._count}")
        self.delivered.append(Delivered(channel, activity, result))
        return result

    async def _post(self, session: Any, channel: ChannelInfo,
                    activity: OutboundActivity) -> DeliveryResult:
        """The HTTP outcomes every delivering adapter maps the same way: 2xx sent, 410 gone for
        good, anything else (or no answer) retried, after ``Retry-After`` when given."""
        config = channel.config
        seconds = config.get("timeout_seconds")
        kw = {"timeout": aiohttp.ClientTimeout(total=float(seconds))} if seconds else {}
        body = {"id": activity.id, "text": activity.text, "to": activity.thread_sender}
        try:
            async with session.post(config["url"], json=body, **kw) as resp:
                raw = await resp.read()
                if 200 <= resp.status < 300:
                    answer = _json_or_none(raw)
                    message_id = answer.get("id") if isinstance(answer, dict) else None
                    return DeliveryResult(
                        ok=True, provider_message_id=message_id if isinstance(message_id, str) else None)
                return DeliveryResult(
                    ok=False, retryable=resp.status != 410,
                    error=f"fake provider returned {resp.status}",
                    retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
        except TimeoutError:
            return DeliveryResult(ok=False, error="fake provider request failed: timeout")
        except aiohttp.ClientError as exc:
            return DeliveryResult(ok=False, error=f"fake provider request failed: {exc!r}")

    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        items = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise InboundError("fake payload must be an object with a 'messages' list")
        out = [
            InboundMessage(
                sender=m["from"],
                text=m.get("text") if isinstance(m.get("text"), str) else None,
                external_id=m.get("id") if isinstance(m.get("id"), str) else None,
                metadata={"to": m["to"]} if isinstance(m.get("to"), str) else {},
            )
            for m in items
            if isinstance(m, dict) and isinstance(m.get("from"), str) and m["from"]
        ]
        if not out:
            raise InboundError("fake payload holds no messages")
        return out

    def parse_status(self, payload: Any) -> list[StatusUpdate] | None:
        items = payload.get("statuses") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            return None
        updates = [
            StatusUpdate(status=s["status"], provider_message_id=s["id"])
            for s in items
            if isinstance(s, dict) and isinstance(s.get("id"), str)
            and s.get("status") in FAKE_STATUSES
        ]
        return updates or None

    def verify_challenge(self, channel: ChannelInfo, query: Mapping[str, str]) -> tuple[int, str]:
        token = channel.config.get("token")
        if token and query.get("token") != token:
            return 403, "Verification failed"
        return 200, str(query.get("challenge") or "ok")

    def verify_signature(self, channel: ChannelInfo, headers: Mapping[str, str],
                         body: bytes) -> bool | None:
        token = channel.config.get("token")
        if not isinstance(token, str) or not token:
            return None
        given = headers.get("X-Fake-Token")
        # Constant time, and bytes made the way that survives Sanic's surrogate-escaped headers.
        return given is not None and hmac.compare_digest(header_bytes(given), header_bytes(token))

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        to = message.metadata.get("to")
        return to is None or to == channel.config.get("number")


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# The conformance suite
# ---------------------------------------------------------------------------------------------

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


def _show(value: Any) -> str:
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


def _well_typed(value: Any, cls: type[msgspec.Struct], what: str) -> None:
    """The value is a ``cls`` whose fields have their declared types and that encodes as JSON
    (the gateway stores it)."""
    assert isinstance(value, cls), f"{what}: expected a {cls.__name__}, got {_show(value)}"
    try:
        msgspec.json.decode(msgspec.json.encode(value), type=cls)
    except (msgspec.ValidationError, msgspec.EncodeError, TypeError) as exc:
        raise AssertionError(f"{what}: {cls.__name__} with ill-typed fields ({exc}): "
                             f"{_show(value)}") from None


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


# -- config -------------------------------------------------------------------------------------

def _validate(adapter: Adapter, config: Any) -> str | None:
    try:
        result = adapter.validate_config(config)
    except Exception as exc:
        raise AssertionError(f"{adapter.type}.validate_config raised {exc!r} for "
                             f"{_show(config)}; it must return an error message") from exc
    assert result is None or (isinstance(result, str) and result), \
        f"{adapter.type}.validate_config returned {result!r} for {_show(config)}: None or a message"
    return result


def check_validate_value(adapter: Adapter, config: Any) -> None:
    """One config (any shape): a message or None comes back, nothing is raised."""
    _validate(adapter, config)


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
    assert _validate(adapter, profile.config) is None, \
        f"{adapter.type}: the profile's valid config was refused"
    secret = profile.secret_config if profile.secret_config is not None else profile.config
    refused = _validate(adapter, secret)
    assert refused is None, f"{adapter.type}: the profile's config with secrets was refused: {refused}"
    missing = [f for f in adapter.secret_fields if f not in secret]
    assert not missing, f"{adapter.type}: the profile's secret_config lacks secret fields {missing}"
    for config in bad_configs(profile):
        assert _validate(adapter, config) is not None, \
            f"{adapter.type}.validate_config accepted a bad config {_show(config)}"
    for config in odd_configs(profile):
        _validate(adapter, config)


# -- inbound ------------------------------------------------------------------------------------

def check_inbound_value(adapter: Adapter, payload: Any) -> list[InboundMessage] | None:
    """parse_inbound of one payload: messages, or InboundError; nothing else."""
    try:
        result = adapter.parse_inbound(payload)
    except InboundError as exc:
        assert str(exc), f"{adapter.type}.parse_inbound raised an InboundError with no message"
        return None
    except Exception as exc:
        raise AssertionError(f"{adapter.type}.parse_inbound raised {exc!r} for {_show(payload)}; "
                             "only InboundError may come out") from exc
    assert isinstance(result, list), \
        f"{adapter.type}.parse_inbound returned {_show(result)}, not a list, for {_show(payload)}"
    for message in result:
        _well_typed(message, InboundMessage, f"{adapter.type}.parse_inbound({_show(payload)})")
    return result


def check_status_value(adapter: Adapter, payload: Any) -> list[StatusUpdate] | None:
    """parse_status of one payload: None, updates, or InboundError; nothing else."""
    try:
        result = adapter.parse_status(payload)
    except InboundError:
        return None
    except Exception as exc:
        raise AssertionError(f"{adapter.type}.parse_status raised {exc!r} for {_show(payload)}; "
                             "only InboundError may come out") from exc
    if result is None:
        return None
    assert isinstance(result, list), \
        f"{adapter.type}.parse_status returned {_show(result)}, not None or a list"
    for update in result:
        # The status is kept as given (the webhook type passes any string through, as the
        # original did); the gateway ignores those it does not know.
        _well_typed(update, StatusUpdate, f"{adapter.type}.parse_status({_show(payload)})")
    return result


def check_parsing(adapter: Adapter, profile: Profile) -> None:
    """Samples parse; garbage, and the samples with fields removed or of the wrong type, give
    values or InboundError and nothing else."""
    for sample in profile.inbound:
        messages = check_inbound_value(adapter, sample)
        assert messages, f"{adapter.type}.parse_inbound found no message in the sample {_show(sample)}"
        assert not check_status_value(adapter, sample), \
            f"{adapter.type}.parse_status took the inbound sample for a receipt: {_show(sample)}"
    for sample in profile.statuses:
        assert check_status_value(adapter, sample), \
            f"{adapter.type}.parse_status found no update in the sample {_show(sample)}"
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
                                         f"headers {_show(headers)}") from exc
                assert verdict is None or verdict is False, \
                    f"{adapter.type}.verify_signature returned {verdict!r} for forged headers " \
                    f"{_show(headers)} (None or False expected)"
        for query in QUERIES:
            try:
                answer = adapter.verify_challenge(channel, query)
            except Exception as exc:
                raise AssertionError(f"{adapter.type}.verify_challenge raised {exc!r} for "
                                     f"{_show(query)}") from exc
            assert isinstance(answer, tuple) and len(answer) == 2 \
                and type(answer[0]) is int and 100 <= answer[0] <= 599 \
                and isinstance(answer[1], str), \
                f"{adapter.type}.verify_challenge returned {_show(answer)}, not (status, text)"
        _check_addressed(adapter, profile, channel)
    _check_genuine(adapter, profile)


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
                                 f"{_show(message)}") from exc
        assert isinstance(answer, bool), \
            f"{adapter.type}.addressed_to returned {answer!r}, not a bool"
    for message in own:
        assert adapter.addressed_to(channel, message), \
            f"{adapter.type}: a sample message is not addressed to the profile's channel " \
            f"(config {channel.config}): {_show(message)}"


# -- delivery -----------------------------------------------------------------------------------

class Provider:
    """A provider stand-in on loopback answering every request as ``mode`` says: ``ok`` (200 and
    the profile's body), ``junk`` (200 and HTML), ``500`` (with an unreadable ``Retry-After``),
    ``502`` and ``503`` (asking to wait until the year 9999, or 10^399 s), ``410``, ``429`` (``Retry-After: 7``), ``drop`` (the connection closed, no answer) or
    ``slow`` (no answer until the server stops)."""

    def __init__(self, ok_body: Any) -> None:
        self.ok_body = ok_body
        self.mode = "ok"
        self.hits = 0
        self.port = 0
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Provider:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._release.set()  # a stalled handler finishes, so the runner stops at once
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.hits += 1
        if self.mode == "slow":
            try:
                await asyncio.wait_for(self._release.wait(), 10)
            except TimeoutError:
                pass
        if self.mode in ("ok", "slow"):
            return web.json_response({} if self.ok_body is None else self.ok_body)
        if self.mode == "junk":
            return web.Response(text="<html>not what the provider documents</html>")
        if self.mode == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if self.mode == "429":
            return web.Response(status=429, text="slow down", headers={"Retry-After": "7"})
        if self.mode == "500":
            return web.Response(status=500, text="trouble", headers={"Retry-After": "soon²"})
        if self.mode == "503":  # a wait beyond any date
            return web.Response(status=503, text="later", headers={"Retry-After": "9" * 400})
        if self.mode == "502":
            return web.Response(status=502, text="later",
                                headers={"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"})
        return web.Response(status=int(self.mode), text=f"provider says {self.mode}")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _deliver(adapter: Adapter, session: aiohttp.ClientSession, channel: ChannelInfo,
                   activity: OutboundActivity, when: str, limit: float = 5.0) -> DeliveryResult:
    try:
        result = await asyncio.wait_for(adapter.deliver(session, channel, activity), limit)
    except TimeoutError:
        raise AssertionError(f"{adapter.type}.deliver did not return within {limit:g} s when "
                             f"{when}: its timeout is not applied") from None
    except Exception as exc:
        raise AssertionError(f"{adapter.type}.deliver raised {exc!r} when {when}; it must "
                             "return a DeliveryResult") from exc
    assert isinstance(result, DeliveryResult), \
        f"{adapter.type}.deliver returned {_show(result)} when {when}, not a DeliveryResult"
    if result.ok:
        assert result.error is None, f"{adapter.type}: ok result with an error when {when}"
    else:
        assert isinstance(result.error, str) and result.error, \
            f"{adapter.type}: a failed delivery must say why (error) when {when}"
    assert result.retry_after is None or 0 <= result.retry_after <= MAX_RETRY_AFTER, \
        f"{adapter.type}: retry_after={result.retry_after} when {when}: it must be within " \
        f"[0, MAX_RETRY_AFTER] (base.capped_retry_after), or the next attempt's date overflows"
    return result


async def check_deliver(adapter: Adapter, profile: Profile, *, session_timeout: float = 1.0,
                        slow_timeout: float = 0.3) -> None:
    """Against a real server on loopback: 200 sends, 500 and 429 (with its Retry-After) are
    retried, 410 is final, a refused or dropped connection and a stall past the timeout are
    retried, an odd 200 and an activity it cannot send give a result; nothing raises. Types
    that do not deliver are skipped."""
    if not adapter.delivers:
        return
    assert profile.point_at is not None, f"{adapter.type} delivers: its profile needs point_at"
    timeout = aiohttp.ClientTimeout(total=session_timeout)
    async with Provider(profile.ok_body) as provider, aiohttp.ClientSession(timeout=timeout) as s:
        config = profile.point_at(dict(profile.config), provider.url)
        assert _validate(adapter, config) is None, \
            f"{adapter.type}: the profile's point_at config is refused"
        await _check_answers(adapter, profile, s, provider, profile.channel(adapter, config))
        await _check_odd_values(adapter, profile, s, config)
        await _check_no_answer(adapter, profile, s, provider, config, slow_timeout,
                               limit=session_timeout + 2)


async def _check_answers(adapter: Adapter, profile: Profile, s: aiohttp.ClientSession,
                         provider: Provider, channel: ChannelInfo) -> None:
    """What the provider answers becomes the right result."""
    activity = profile.activity()
    result = await _deliver(adapter, s, channel, activity, "the provider answers 200")
    assert result.ok, f"{adapter.type}: not ok when the provider answered 200: {result.error}"
    assert provider.hits == 1, \
        f"{adapter.type}: point_at did not send to the loopback provider ({provider.hits} requests)"
    for mode, retryable in (("500", True), ("502", True), ("503", True), ("410", False),
                            ("drop", True), ("429", True)):
        provider.mode = mode
        result = await _deliver(adapter, s, channel, activity, f"the provider answers {mode}")
        assert not result.ok, f"{adapter.type}: ok when the provider answered {mode}"
        assert result.retryable is retryable, \
            f"{adapter.type}: retryable={result.retryable} when the provider answered {mode}"
    assert result.retry_after is not None and result.retry_after >= 7, \
        f"{adapter.type}: Retry-After: 7 with a 429 gave retry_after={result.retry_after}"
    provider.mode = "junk"
    await _deliver(adapter, s, channel, activity, "the provider answers 200 with HTML")
    provider.mode = "ok"
    unsendable = profile.activity(text=None, metadata={}, attachments=[], thread_sender=None)
    await _deliver(adapter, s, channel, unsendable, "the activity has no text nor recipient")


ODD_VALUES = ("a\r\nb", "\x00", " spaced out ", "é/?#%")


async def _check_odd_values(adapter: Adapter, profile: Profile, s: aiohttp.ClientSession,
                            config: dict[str, Any]) -> None:
    """A config the adapter accepts can be used: a string value (or a header in a ``headers``
    object) with control characters, spaces or URL syntax is refused by validate_config or
    delivered without raising (aiohttp raises on a newline in a header)."""
    secret = profile.secret_config if profile.secret_config is not None else profile.config
    base = {**secret, **config}
    for key, value in base.items():
        for odd in ODD_VALUES:
            if isinstance(value, str):
                odd_config = {**base, key: value + odd}
            elif isinstance(value, dict):
                odd_config = {**base, key: {**value, "X-Odd": odd, odd: "x"}}
            else:
                continue
            if adapter.validate_config(odd_config) is None:
                await _deliver(adapter, s, profile.channel(adapter, odd_config),
                               profile.activity(), f"config {key!r} is {odd_config[key]!r}")


async def _check_no_answer(adapter: Adapter, profile: Profile, s: aiohttp.ClientSession,
                           provider: Provider, config: dict[str, Any], slow_timeout: float,
                           limit: float) -> None:
    """No answer (refused, or a stall past the timeout) is a retryable failure, in time."""
    assert profile.point_at is not None
    activity = profile.activity()
    refused = profile.channel(adapter, profile.point_at(
        dict(profile.config), f"http://127.0.0.1:{closed_port()}"))
    result = await _deliver(adapter, s, refused, activity, "the connection is refused")
    assert not result.ok and result.retryable, \
        f"{adapter.type}: a refused connection must be a retryable failure, got {result}"
    provider.mode = "slow"
    slow = profile.channel(adapter, config)
    if profile.set_timeout is not None:
        slow = profile.channel(adapter, profile.set_timeout(dict(config), slow_timeout))
        assert _validate(adapter, slow.config) is None, \
            f"{adapter.type}: the profile's set_timeout config is refused"
    result = await _deliver(adapter, s, slow, activity, "the provider stalls", limit=limit)
    assert not result.ok and result.retryable, \
        f"{adapter.type}: a stalled provider must be a retryable failure, got {result}"


async def check_all(adapter: Adapter, profile: Profile, key: str | None = None) -> None:
    """Every check, in order (``key``: the type's registry key, default its type)."""
    check_attributes(adapter, adapter.type if key is None else key)
    check_validate_config(adapter, profile)
    check_parsing(adapter, profile)
    check_verification(adapter, profile)
    await check_deliver(adapter, profile)

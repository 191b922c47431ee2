"""Every registered adapter (and the fake) passes the conformance suite in tests/support/conformance/.

A type in ``adapters.REGISTRY`` without a profile here fails: a new adapter cannot skip the
suite. The property tests feed arbitrary JSON-like values (and the samples with arbitrary parts)
to every adapter's parsers and config validation: only values or InboundError come out.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

import adapters
from adapters import email_sendgrid, signing, slack, whatsapp_meta
from adapters.base import Adapter, ChannelInfo, DeliveryResult, InboundError, InboundMessage
from tests.integration.slack.standins import sample as slack_sample
from tests.integration.sms.standins import sample as sms_sample
from tests.integration.telegram.standins import sample as telegram_sample
from tests.integration.whatsapp.standins import sample
from tests.support import conformance
from tests.support.conformance import FakeAdapter, Profile


def _standard(channel: ChannelInfo, body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {"webhook-id": "msg-1", "webhook-timestamp": str(stamp),
            "webhook-signature": signing.standard_signature(channel.secret, "msg-1", stamp, body)}


def _basic(channel: ChannelInfo, body: bytes) -> dict[str, str]:
    user, password = channel.config["webhook_username"], channel.config["webhook_password"]
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _with(**extra: Any) -> Any:
    """``point_at``/``set_timeout`` helper: the config with ``extra`` keys set from the value."""
    (key, make), = extra.items()
    return lambda config, value: {**config, key: make(value)}


META = {"phone_number_id": "106540352242922", "access_token": "EAAG-token",
        "verify_token": "verify-me"}
INFOBIP = {"base_url": "https://xyz.api.infobip.com", "api_key": "key", "sender": "447860099299"}
TELEGRAM = {"bot_token": "123456789:AAE-test_token", "secret_token": "tg-secret_1"}
SLACK = {"bot_token": "xoxb-1-2-test", "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5"}


def _slack_signed(channel: ChannelInfo, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": slack.sign(channel.config["signing_secret"], stamp, body)}

TWILIO = {"account_sid": "AC" + "0123456789abcdef" * 2, "auth_token": "twilio-token-1",
          "from": "+14155550100"}


def _twilio_signed(channel: ChannelInfo, body: bytes) -> dict[str, str]:
    """Signed by twilio's own RequestValidator, over the URL the request came to."""
    from urllib.parse import parse_qsl

    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    validator = RequestValidator(channel.config["auth_token"])
    return {"X-Twilio-Signature": validator.compute_signature(channel.request_url, params)}


EMAIL = {"from_address": "support@shop.example", "host": "smtp.shop.example"}
EMAIL_SAMPLES = Path(__file__).parents[2] / "integration" / "email" / "samples"


def _mail(name: str) -> dict[str, Any]:
    return {"raw": (EMAIL_SAMPLES / name).read_text(), "mail_from": "jane@customer.example",
            "rcpt_tos": ["support@shop.example"]}


def _sendgrid_json(name: str) -> Any:
    import json

    return json.loads((EMAIL_SAMPLES / name).read_text())


SG_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID = {"api_key": "SG.key.secret", "from_address": "support@shop.example",
            "inbound_address": "support@parse.shop.example", "webhook_username": "sg",
            "webhook_password": "parse-pw", "event_public_key": base64.b64encode(
                SG_KEY.public_key().public_bytes(Encoding.DER,
                                                 PublicFormat.SubjectPublicKeyInfo)).decode()}


def _sendgrid_signed(channel: ChannelInfo, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "X-Twilio-Email-Event-Webhook-Signature": email_sendgrid.sign_event(SG_KEY, stamp,
                                                                                body)}


VONAGE = {"from": "447700900000", "api_key": "abcd1234", "api_secret": "s3cret",
          "signature_secret": "vonage-signature-secret-0123456789"}


VONAGE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def _vonage_signed(channel: ChannelInfo, body: bytes) -> dict[str, str]:
    import hashlib

    import jwt

    token = jwt.encode({"iat": int(time.time()), "jti": "j1", "iss": "Vonage",
                        "payload_hash": hashlib.sha256(body).hexdigest()},
                       channel.config["signature_secret"], algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


PROFILES: dict[str, Profile] = {p.type: p for p in (
    Profile(type="echo", config={}),
    Profile(type="websocket", config={}),
    Profile(
        type="webhook",
        config={"url": "https://example.com/hook", "headers": {"X-Api-Key": "k"}},
        required=("url",),
        bad_configs=({"url": "ftp://example.com"}, {"url": "https://x.test", "method": "GET"},
                     {"url": "https://x.test", "headers": {"a": 1}}, {"url": "https://[::1"},
                     {"url": "https://x.test", "headers": {"a": "b\r\nc"}},
                     {"url": "https://x.test", "headers": {"": "b"}}),
        point_at=_with(url=lambda u: u + "/hook"),
        inbound=({"sender": "alice", "text": "hi", "message_id": "m1"},),
        statuses=({"delivery_id": "d1", "status": "delivered"},
                  {"provider_message_id": "p1", "status": "read", "error": None}),
        sign=_standard,
    ),
    Profile(
        type="whatsapp_meta",
        config=META,
        secret_config={**META, "app_secret": "app-secret"},
        required=("phone_number_id", "access_token", "verify_token"),
        bad_configs=({**META, "api_base_url": "nope"}, {**META, "api_version": "26"},
                     {**META, "timeout_seconds": 0}, {**META, "timeout_seconds": 31},
                     {**META, "timeout_seconds": True}, {**META, "app_secret": 5},
                     {**META, "access_token": "EAAG-token\n"}),
        point_at=_with(api_base_url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body=sample("meta_send_response.json"),
        activity_metadata={"recipient_phone": "16505551234"},
        inbound=tuple(sample(f"meta_inbound_{n}.json") for n in ("text", "image", "two_messages")),
        statuses=tuple(sample(f"meta_status_{n}.json")
                       for n in ("delivered", "read", "failed", "multi")),
        sign=lambda channel, body: {
            "X-Hub-Signature-256": whatsapp_meta.sign(channel.config["app_secret"], body)},
    ),
    Profile(
        type="whatsapp_infobip",
        config=INFOBIP,
        secret_config={**INFOBIP, "webhook_username": "ib", "webhook_password": "pw"},
        required=("base_url", "api_key", "sender"),
        bad_configs=({**INFOBIP, "base_url": "nope"}, {**INFOBIP, "webhook_username": "ib"},
                     {**INFOBIP, "webhook_username": "a:b", "webhook_password": "pw"},
                     {**INFOBIP, "timeout_seconds": -1}, {**INFOBIP, "api_key": "k\x00"}),
        point_at=_with(base_url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body=sample("infobip_send_response.json"),
        activity_metadata={"recipient_phone": "385919998888"},
        inbound=tuple(sample(f"infobip_inbound_{n}.json") for n in ("text", "mixed")),
        statuses=tuple(sample(f"infobip_{n}.json")
                       for n in ("delivery_report", "seen_report", "reports_multi")),
        sign=_basic,
    ),
    Profile(
        type="telegram",
        config=TELEGRAM,
        required=("bot_token", "secret_token"),
        bad_configs=({**TELEGRAM, "bot_token": "no-colon"}, {**TELEGRAM, "secret_token": "a b"},
                     {**TELEGRAM, "secret_token": "x" * 257}, {**TELEGRAM, "api_base_url": "nope"},
                     {**TELEGRAM, "default_chat_id": "chat"}, {**TELEGRAM, "timeout_seconds": 0},
                     {**TELEGRAM, "bot_token": "1:a/b"}),
        point_at=_with(api_base_url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body=telegram_sample("send_message_response.json"),
        activity_metadata={"telegram_chat_id": "1111111"},
        inbound=tuple(telegram_sample(f"update_{n}.json") for n in (
            "text", "reply", "edited", "photo", "document_large", "voice_location_contact",
            "channel_post", "callback_query")),
        sign=lambda channel, body: {
            "X-Telegram-Bot-Api-Secret-Token": channel.config["secret_token"]},
    ),
    Profile(
        type="slack",
        config=SLACK,
        required=("bot_token", "signing_secret"),
        bad_configs=({**SLACK, "bot_token": "xoxb 1"}, {**SLACK, "api_base_url": "ftp://x"},
                     {**SLACK, "default_channel": "#general"}, {**SLACK, "timeout_seconds": 99},
                     {**SLACK, "bot_token": "xoxb-1\n"}),
        point_at=_with(api_base_url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body=slack_sample("post_message_response.json"),
        activity_metadata={"slack_channel": "C024BE91L"},
        inbound=tuple(slack_sample(f"event_{n}.json") for n in (
            "message", "thread_reply", "im", "file_share")),
        sign=_slack_signed,
    ),
    Profile(
        type="sms_twilio",
        config=TWILIO,
        required=("account_sid", "auth_token"),
        bad_configs=({**TWILIO, "account_sid": "AC12"}, {**TWILIO, "from": "not a number!"},
                     {k: v for k, v in TWILIO.items() if k != "from"},
                     {**TWILIO, "messaging_service_sid": "MG1"}, {**TWILIO, "api_base_url": "x"},
                     {**TWILIO, "auth_token": "t\n"}, {**TWILIO, "timeout_seconds": 0}),
        point_at=_with(api_base_url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body=sms_sample("twilio_send_response.json"),
        activity_metadata={"recipient_phone": "+14155551234"},
        inbound=tuple(sms_sample(f"twilio_inbound_{n}.json") for n in ("sms", "mms")),
        statuses=tuple(sms_sample(f"twilio_status_{n}.json") for n in ("delivered", "undelivered")),
        sign=_twilio_signed,
    ),
    Profile(
        type="email_smtp",
        config=EMAIL,
        secret_config={**EMAIL, "username": "relay-user", "password": "relay-pass"},
        required=("from_address", "host"),
        bad_configs=({**EMAIL, "from_address": "not-an-address"}, {**EMAIL, "port": 0},
                     {**EMAIL, "security": "ssl3"}, {**EMAIL, "username": "only-user"},
                     {**EMAIL, "host": "smtp example"}, {**EMAIL, "max_message_bytes": 10},
                     {**EMAIL, "from_name": "Support\r\nBcc: x@y.z"},
                     {**EMAIL, "inbound_address": "x"}),
        smtp_point_at=lambda config, port: {**config, "host": "127.0.0.1", "port": port,
                                            "security": "none"},
        set_timeout=_with(timeout_seconds=float),
        activity_metadata={"email": "jane@customer.example"},
        inbound=tuple(_mail(n) for n in ("new_mail.eml", "with_attachment.eml",
                                         "html_only.eml")),
    ),
    Profile(
        type="email_sendgrid",
        config=SENDGRID,
        required=("api_key", "from_address", "webhook_username", "webhook_password",
                  "event_public_key"),
        bad_configs=({**SENDGRID, "from_address": "nope"}, {**SENDGRID, "event_public_key": "x"},
                     {**SENDGRID, "event_public_key": base64.b64encode(b"junk").decode()},
                     {**SENDGRID, "webhook_username": "a:b"}, {**SENDGRID, "api_key": "k\n"},
                     {**SENDGRID, "api_base_url": "ftp://x"}),
        point_at=_with(api_base_url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body={},
        activity_metadata={"email": "jane@customer.example"},
        inbound=(_sendgrid_json("sendgrid_parse.json"), _sendgrid_json("sendgrid_parse_raw.json")),
        statuses=(_sendgrid_json("sendgrid_events.json"),
                  _sendgrid_json("sendgrid_events_bounce.json")),
        sign=_sendgrid_signed,
    ),
    Profile(
        type="sms_vonage",
        config=VONAGE,
        secret_config={**VONAGE, "application_id": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
                       "private_key": VONAGE_KEY},
        required=("from", "signature_secret"),
        bad_configs=({**VONAGE, "from": "not a number!"}, {**VONAGE, "application_id": "x"},
                     {k: v for k, v in VONAGE.items() if k != "api_secret"},
                     {**VONAGE, "application_id": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
                      "private_key": "not a key"},
                     {**VONAGE, "api_key": "a:b"}, {**VONAGE, "api_secret": "s\n"},
                     {**VONAGE, "api_base_url": "x"}),
        point_at=_with(api_base_url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body=sms_sample("vonage_send_response.json"),
        activity_metadata={"recipient_phone": "447700900001"},
        inbound=(sms_sample("vonage_inbound_sms.json"),),
        statuses=(sms_sample("vonage_status_delivered.json"),
                  sms_sample("vonage_status_rejected.json")),
        sign=_vonage_signed,
    ),
    Profile(
        type="fake",
        config={"number": "+15550001111"},
        secret_config={"number": "+15550001111", "token": "t0k"},
        bad_configs=({"number": 5}, {"url": "nope"}, {"timeout_seconds": 0}, {"token": ""}),
        point_at=_with(url=str),
        set_timeout=_with(timeout_seconds=float),
        ok_body={"id": "fake-1"},
        inbound=({"messages": [{"from": "alice", "text": "hi", "id": "m1", "to": "+15550001111"}]},),
        statuses=({"statuses": [{"id": "fake-1", "status": "delivered"}]},),
        sign=lambda channel, body: {"X-Fake-Token": channel.config["token"]},
    ),
)}

KEYS = [*adapters.REGISTRY, FakeAdapter.type]


def subject(key: str) -> tuple[Adapter, Profile]:
    """The adapter registered as ``key`` and its profile; a type without one fails."""
    adapter = FakeAdapter() if key == FakeAdapter.type else adapters.REGISTRY[key]
    assert key in PROFILES, (
        f"adapter type {key!r} has no conformance profile: add one to PROFILES in "
        "tests/unit/adapters/test_conformance.py (see docs/adapters.md)")
    return adapter, PROFILES[key]


@pytest.mark.parametrize("key", KEYS)
def test_attributes(key: str) -> None:
    adapter, _ = subject(key)
    conformance.check_attributes(adapter, key)


@pytest.mark.parametrize("key", KEYS)
def test_validate_config(key: str) -> None:
    conformance.check_validate_config(*subject(key))


@pytest.mark.parametrize("key", KEYS)
def test_parsing(key: str) -> None:
    conformance.check_parsing(*subject(key))


@pytest.mark.parametrize("key", KEYS)
def test_verification(key: str) -> None:
    conformance.check_verification(*subject(key))


@pytest.mark.parametrize("key", KEYS)
async def test_deliver(key: str) -> None:
    await conformance.check_deliver(*subject(key))


@pytest.mark.parametrize("key", KEYS)
async def test_media(key: str) -> None:
    """What each adapter declares it can send (``media``) is sent; anything else fails at once."""
    await conformance.check_media(*subject(key))


@pytest.mark.parametrize("key", KEYS)
def test_handshake(key: str) -> None:
    conformance.check_handshake(*subject(key))


@pytest.mark.parametrize("key", KEYS)
def test_config_fields(key: str) -> None:
    conformance.check_config_fields(*subject(key))


@pytest.mark.parametrize("key", KEYS)
async def test_management(key: str) -> None:
    await conformance.check_management(*subject(key))


def test_no_profile_without_an_adapter() -> None:
    assert set(PROFILES) == set(KEYS)


# -- the suite has teeth: broken adapters fail it ------------------------------------------------

class _Raises(FakeAdapter):
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        return [InboundMessage(sender=payload["messages"][0]["from"])]


class _Misnamed(FakeAdapter):
    type = "fake2"


class _Crashes(FakeAdapter):
    async def deliver(self, session: Any, channel: Any, activity: Any) -> DeliveryResult:
        async with session.post(channel.config["url"], json={}) as resp:
            return DeliveryResult(ok=resp.status < 300)


class _InboundOnly(FakeAdapter):
    supported_modes: ClassVar[tuple[str, ...]] = ("inbound",)


class _Trusting(FakeAdapter):
    def verify_signature(self, channel: Any, headers: Any, body: bytes) -> bool | None:
        return True


async def test_the_suite_fails_broken_adapters() -> None:
    profile = PROFILES["fake"]
    with pytest.raises(AssertionError, match="only InboundError may come out"):
        conformance.check_parsing(_Raises(), profile)
    with pytest.raises(AssertionError, match="registered as 'fake'"):
        conformance.check_attributes(_Misnamed(), "fake")
    with pytest.raises(AssertionError, match="neither outbound nor duplex"):
        conformance.check_attributes(_InboundOnly(), "fake")
    with pytest.raises(AssertionError, match="forged headers"):
        conformance.check_verification(_Trusting(), profile)
    with pytest.raises(AssertionError, match="deliver"):
        await conformance.check_deliver(_Crashes(), profile)
    with pytest.raises(AssertionError, match="took a message or receipt sample for a handshake"):
        conformance.check_handshake(_Greedy(), profile)
    with pytest.raises(AssertionError, match="fetch_media raised"):
        await conformance.check_management(_Greedy(), profile)


class _Greedy(FakeAdapter):
    """Answers every payload as a handshake (messages would be lost) and crashes on files."""

    def handshake(self, channel: ChannelInfo, payload: Any) -> tuple[int, Any] | None:
        return 200, {"challenge": "x"}

    async def fetch_media(self, session: Any, channel: ChannelInfo, attachment: Any,
                          limit: int) -> Any:
        raise KeyError("file_id")


# -- the fake in memory --------------------------------------------------------------------------

async def test_fake_records_fails_and_goes() -> None:
    fake, profile = FakeAdapter(), PROFILES["fake"]
    channel, activity = profile.channel(fake), profile.activity()
    assert (await fake.deliver(None, channel, activity)).ok
    fake.fail(2, retry_after=7)
    first, second = [await fake.deliver(None, channel, activity) for _ in range(2)]
    assert not first.ok and first.retryable and first.retry_after == 7 and not second.ok
    assert (await fake.deliver(None, channel, activity)).provider_message_id == "fake-2"
    fake.gone()
    gone = await fake.deliver(None, channel, activity)
    assert not gone.ok and not gone.retryable
    assert [d.result.ok for d in fake.delivered] == [True, False, False, True, False]
    assert all(d.activity is activity for d in fake.delivered)
    fake.reset()
    assert fake.delivered == [] and (await fake.deliver(None, channel, activity)).ok
    waiting = asyncio.ensure_future(fake.wait_delivered(3))
    for _ in range(2):
        await asyncio.sleep(0)  # let the waiter wait: it must be woken, not find them there
        await fake.deliver(None, channel, activity)
    assert [d.result.provider_message_id for d in await waiting] == ["fake-1", "fake-2", "fake-3"]
    secret = profile.channel(fake, profile.secret_config)
    assert fake.verify_signature(secret, {"X-Fake-Token": "t0k"}, b"") is True
    assert fake.verify_challenge(secret, {"token": "t0k", "challenge": "c"}) == (200, "c")
    with pytest.raises(InboundError):
        fake.parse_inbound({"messages": []})


# -- properties: arbitrary JSON in, values or InboundError out -----------------------------------

SAMPLES = [s for p in PROFILES.values() for s in (*p.inbound, *p.statuses)]


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    out = [prefix]
    for k, v in items:
        out.extend(_paths(v, (*prefix, k)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    return [*value[:head], _replace(value[head], rest, new), *value[head + 1:]]


KNOWN_KEYS = sorted(_keys(SAMPLES) | {k for p in PROFILES.values() for k in p.config}
                    | {k for p in PROFILES.values() for k in p.secret_config or {}})
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=20,
)
MUTATED = st.sampled_from(SAMPLES).flatmap(
    lambda s: st.builds(_replace, st.just(s), st.sampled_from(_paths(s)), JSON))
PAYLOADS = JSON | MUTATED
CONFIGS = st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), JSON, max_size=6) | (
    st.sampled_from([p.config for p in PROFILES.values()] + [INFOBIP, META]).flatmap(
        lambda c: st.builds(lambda extra: {**c, **extra},
                            st.dictionaries(st.sampled_from(KNOWN_KEYS), JSON, max_size=3))))
# Derandomized: CI sees the same examples every run (3,000 per adapter ran clean when this was
# written); raise max_examples locally to explore.
PROPERTY = settings(max_examples=120, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("key", KEYS)
@PROPERTY
@given(payload=PAYLOADS)
def test_property_parsers(key: str, payload: Any) -> None:
    adapter, _ = subject(key)
    conformance.check_inbound_value(adapter, payload)
    conformance.check_status_value(adapter, payload)


@pytest.mark.parametrize("key", KEYS)
@PROPERTY
@given(config=CONFIGS)
def test_property_validate_config(key: str, config: dict[str, Any]) -> None:
    conformance.check_validate_value(subject(key)[0], config)


# Header and query values as the gateway may hand them over: any text, lone surrogates included
# (Sanic decodes bytes that are not UTF-8 with surrogateescape).
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=12)
HEADER_NAMES = ["webhook-id", "webhook-timestamp", "webhook-signature", "X-Hub-Signature-256",
                "Authorization", "X-Fake-Token", "hub.mode", "hub.verify_token", "hub.challenge",
                "token", "challenge"]
HEADER_VALUES = ANY_TEXT | st.sampled_from(["sha256=", "v1,", "Basic ", "App ", "subscribe",
                                            str(int(time.time())), "²", "verify-me"])
HEADER_MAPS = st.dictionaries(st.sampled_from(HEADER_NAMES) | ANY_TEXT, HEADER_VALUES, max_size=5)


@pytest.mark.parametrize("key", KEYS)
@PROPERTY
@given(headers=HEADER_MAPS, body=st.binary(max_size=32), secrets=st.booleans())
def test_property_verification(key: str, headers: dict[str, str], body: bytes,
                               secrets: bool) -> None:
    adapter, profile = subject(key)
    channel = profile.channel(adapter, profile.secret_config if secrets else None)
    verdict = adapter.verify_signature(channel, conformance.Headers(headers), body)
    assert verdict is None or verdict is False, (verdict, headers)
    status, text = adapter.verify_challenge(channel, headers)
    assert type(status) is int and isinstance(text, str)

"""``check_deliver``: a delivering adapter against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
from aiohttp import web

from adapters.base import MAX_RETRY_AFTER, Adapter, ChannelInfo, DeliveryResult, OutboundActivity

from .profile import Profile, show, validated

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
        f"{adapter.type}.deliver returned {show(result)} when {when}, not a DeliveryResult"
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
    if profile.smtp_point_at is not None:
        await check_deliver_smtp(adapter, profile)
        return
    assert profile.point_at is not None, f"{adapter.type} delivers: its profile needs point_at"
    timeout = aiohttp.ClientTimeout(total=session_timeout)
    async with Provider(profile.ok_body) as provider, aiohttp.ClientSession(timeout=timeout) as s:
        config = profile.point_at(dict(profile.config), provider.url)
        assert validated(adapter, config) is None, \
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
        assert validated(adapter, slow.config) is None, \
            f"{adapter.type}: the profile's set_timeout config is refused"
    result = await _deliver(adapter, s, slow, activity, "the provider stalls", limit=limit)
    assert not result.ok and result.retryable, \
        f"{adapter.type}: a stalled provider must be a retryable failure, got {result}"


async def check_deliver_smtp(adapter: Adapter, profile: Profile) -> None:
    """A mail-sending type against a real SMTP server on loopback: 250 sends, a 4xx reply is
    retried, a 5xx reply is final with the reply's text, a refused connection and a stall are
    retried, in time; nothing raises."""
    from tests.support.smtp import SmtpStandIn

    assert profile.smtp_point_at is not None
    async with SmtpStandIn() as relay, aiohttp.ClientSession() as s:
        channel = profile.channel(adapter, profile.smtp_point_at(dict(profile.config), relay.port))
        assert validated(adapter, channel.config) is None, \
            f"{adapter.type}: the profile's smtp_point_at config is refused"
        activity = profile.activity()
        result = await _deliver(adapter, s, channel, activity, "the relay answers 250")
        assert result.ok and len(relay.received) == 1, \
            f"{adapter.type}: not sent to the loopback relay: {result.error}"
        for reply, retryable in (("451 4.3.0 Try again later", True),
                                 ("550 5.1.1 No such user", False),
                                 ("554 5.7.1 Rejected", False)):
            relay.script = [reply]
            result = await _deliver(adapter, s, channel, activity, f"the relay answers {reply}")
            assert not result.ok and result.retryable is retryable, \
                f"{adapter.type}: {result} when the relay answered {reply}"
            assert result.error and reply.split()[0] in result.error, \
                f"{adapter.type}: the relay's reply is not in the error: {result.error}"
        relay.rcpt_script = ["550 5.1.1 No such user"]
        result = await _deliver(adapter, s, channel, activity, "the relay refuses the recipient")
        assert not result.ok and not result.retryable, f"{adapter.type}: {result}"
        refused = profile.channel(adapter, profile.smtp_point_at(dict(profile.config),
                                                                 closed_port()))
        result = await _deliver(adapter, s, refused, activity, "the connection is refused")
        assert not result.ok and result.retryable, f"{adapter.type}: {result}"
        if profile.set_timeout is not None:
            relay.script = ["stall"]
            slow = profile.channel(adapter, profile.set_timeout(dict(channel.config), 0.3))
            result = await _deliver(adapter, s, slow, activity, "the relay stalls", limit=5)
            assert not result.ok and result.retryable, f"{adapter.type}: {result}"
        unsendable = profile.activity(text=None, metadata={}, attachments=[], thread_sender=None)
        await _deliver(adapter, s, channel, unsendable, "the activity has no text nor recipient")

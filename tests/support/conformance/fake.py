"""``FakeAdapter`` (type ``fake``): the protocol in memory, for tests that need a channel type
they can steer, and the reference implementation the conformance suite must accept."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from adapters.base import (
    MODES,
    BaseAdapter,
    ChannelInfo,
    DeliveryResult,
    InboundError,
    InboundMessage,
    OutboundActivity,
    StatusUpdate,
    retry_after,
)
from adapters.signing import header_bytes
from adapters.webhook import valid_http_url

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
        self._arrived = asyncio.Event()

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
        """Forget what was delivered and scripted; deliver again."""
        self.delivered.clear()
        self.script.clear()
        self._gone = False
        self._count = 0

    async def wait_delivered(self, n: int, timeout: float = 5.0) -> list[Delivered]:
        """Wait (no polling) until ``n`` deliveries were attempted; they, in order."""
        async with asyncio.timeout(timeout):
            while len(self.delivered) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.delivered[:n]

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
        self._arrived.set()
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
                    retry_after=retry_after(resp.headers.get("Retry-After")))
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

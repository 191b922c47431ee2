"""What the provider adapters share (WhatsApp, SMS, Slack, Telegram, SendGrid): the config
checks every one of them makes, choosing the recipient, one timed JSON POST, and sorting a
provider's answer into a DeliveryResult (fail at once, or retry on the queue's schedule)."""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Mapping
from typing import Any

import aiohttp

from .base import DeliveryResult, MediaError, OutboundActivity, missing_strings, retry_after
from .webhook import valid_http_url

# A channel's own ``timeout_seconds`` is capped so that an attempt stays well inside the
# delivery lease (120 s): a request still running when its lease ran out could be sent twice.
MAX_TIMEOUT = 30.0
# Statuses that may succeed later; every other 4xx will fail the same way again.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
# How much of a provider's answer is kept in an error message.
BODY_LIMIT = 160


def recipient(activity: OutboundActivity) -> str | None:
    """Who a WhatsApp message goes to: ``metadata.recipient_phone``, else ``metadata.to``,
    else the person who began the conversation on this channel (``thread_sender``)."""
    for key in ("recipient_phone", "to"):
        value = activity.metadata.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if activity.thread_sender:
        return activity.thread_sender
    return None


def no_recipient(provider: str) -> DeliveryResult:
    return DeliveryResult(
        ok=False, retryable=False,
        error=f"activity metadata must include 'recipient_phone' or 'to' for {provider} delivery "
              "(and the conversation did not begin with an inbound message on this channel)",
    )


def missing(config: Mapping[str, Any], keys: tuple[str, ...], prefix: str) -> str | None:
    """An error naming the required string settings that are absent or empty, or None."""
    absent = missing_strings(config, keys)
    return f"{prefix} config missing: " + ", ".join(absent) if absent else None


def bad_url(config: Mapping[str, Any], key: str, prefix: str) -> str | None:
    """An error when the setting ``key``, if given, is not an HTTP(S) URL."""
    value = config.get(key)
    if value is not None and not valid_http_url(value):
        return f"{prefix} config '{key}' must be a valid HTTP/HTTPS URL"
    return None


def validate_common(config: Mapping[str, Any], prefix: str,
                    header_keys: tuple[str, ...] = ()) -> str | None:
    """The checks that close every provider's ``validate_config``: no control character in the
    settings sent in HTTP headers (``header_keys``), and the optional ``timeout_seconds``."""
    unsafe = header_unsafe(config, header_keys, prefix)
    if unsafe:
        return unsafe
    timeout = config.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT
    ):
        return f"{prefix} config 'timeout_seconds' must be a number between 0 and {MAX_TIMEOUT:g}"
    return None


def header_unsafe(config: Mapping[str, Any], keys: tuple[str, ...], prefix: str) -> str | None:
    """An error when a value sent in an HTTP header holds a control character (say the newline
    of a token pasted from a file): aiohttp refuses to send it, so every delivery would fail."""
    for key in keys:
        value = config.get(key)
        if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
            return f"{prefix} config '{key}' must not contain control characters (a pasted newline?)"
    return None


def timeout_of(config: Mapping[str, Any]) -> aiohttp.ClientTimeout | None:
    """The channel's ``timeout_seconds``; None (the session's own timeout, in the server
    ``CONVERGER_WEBHOOK_TIMEOUT``) when it sets none."""
    value = config.get("timeout_seconds")
    return aiohttp.ClientTimeout(total=float(value)) if value else None


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def clip(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + "…"


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout: aiohttp.ClientTimeout | None,
) -> tuple[int, Mapping[str, str], bytes] | str:
    """POST JSON; the status, headers and body of the answer, or the reason it never came.
    ``timeout`` None keeps the session's own."""
    return await _post(session, url, headers, timeout, json=body)


async def post_form(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    form: aiohttp.FormData | list[tuple[str, str]],
    timeout: aiohttp.ClientTimeout | None,
) -> tuple[int, Mapping[str, str], bytes] | str:
    """POST a form (``multipart/form-data`` for a FormData, urlencoded for a list of pairs),
    answered as by :func:`post_json`."""
    return await _post(session, url, headers, timeout, data=form)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout | None,
    **body: Any,
) -> tuple[int, Mapping[str, str], bytes] | str:
    kw: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
    try:
        async with session.post(url, headers=headers, allow_redirects=False, **body,
                                **kw) as resp:
            return resp.status, resp.headers, await resp.read()
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return no_answer(exc, session, timeout)


def no_answer(exc: BaseException, session: aiohttp.ClientSession,
              timeout: aiohttp.ClientTimeout | None) -> str:
    """Why a request got no answer: a timeout (with its length), or the client's error.
    ValueError: aiohttp refuses a header with a control character (a credential stored before
    validation refused them); the attempt fails instead of raising."""
    if isinstance(exc, TimeoutError):
        total = (timeout or session.timeout).total
        return f"timeout after {total:g}s" if total else "timeout"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def failure(
    label: str,
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    describe: Callable[[Any], tuple[str | None, bool | None]],
    auth_statuses: Container[int] = (),
) -> DeliveryResult:
    """A non-success answer as a result. ``describe(json_body)`` gives the provider's own
    message and, when the provider's error code says so, whether a retry can help. A status in
    ``auth_statuses`` means the provider refused the channel's credentials: the channel is
    marked unhealthy."""
    message, retryable_hint = describe(decode_json(raw))
    # The provider's own error message (parsed, clipped), never the raw body (issue 13).
    text = clip(message.encode()) if message else "(no error message)"
    if retryable_hint is not None:
        retryable = retryable_hint
    else:
        retryable = status >= 500 or status in RETRYABLE_STATUSES
    return DeliveryResult(
        ok=False,
        retryable=retryable,
        error=f"{label} returned {status}: {text}",
        retry_after=retry_after(headers.get("Retry-After")) if retryable else None,
        metadata={"http_status": status},
        channel_unhealthy=status in auth_statuses,
    )


def unreachable(label: str, reason: str) -> DeliveryResult:
    """No answer at all (timeout, refused, reset): worth another try later."""
    return DeliveryResult(ok=False, retryable=True, error=f"{label} request failed: {reason}")


def text_of(activity: OutboundActivity, provider: str) -> str | DeliveryResult:
    """The text to send, or a final failure: these adapters send text messages only."""
    if isinstance(activity.text, str) and activity.text.strip():
        return activity.text
    return DeliveryResult(
        ok=False, retryable=False,
        error=f"{provider} delivery needs a non-empty text (only text messages are sent)",
    )


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever the mapping's case rules."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, val in headers.items():
        if key.lower() == lower:
            return val
    return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


async def get_capped(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    limit: int,
    timeout: aiohttp.ClientTimeout | None,
) -> tuple[int, Mapping[str, str], bytes] | str | None:
    """GET a file of at most ``limit`` bytes: status, headers and body; None when it is
    larger (read no further); the reason when no answer came."""
    kw: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
    try:
        async with session.get(url, headers=headers, allow_redirects=False, **kw) as resp:
            if resp.content_length is not None and resp.content_length > limit:
                return None
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(65_536):
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
            return resp.status, resp.headers, b"".join(chunks)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return no_answer(exc, session, timeout)


async def download(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    limit: int,
    timeout: aiohttp.ClientTimeout | None,
    label: str,
) -> tuple[int, Mapping[str, str], bytes] | MediaError:
    """A provider's file for ``fetch_media`` (:func:`get_capped`): status, headers and body,
    or why not — ``too_large`` over ``limit`` bytes, ``provider`` when no answer came."""
    got = await get_capped(session, url, headers, limit, timeout)
    if got is None:
        return MediaError(kind="too_large", error=f"the file is over {limit} bytes")
    if isinstance(got, str):
        return MediaError(kind="provider", error=f"{label} download failed: {got}")
    return got

"""Refuse requests whose header values are not valid UTF-8.

Sanic decodes header bytes with ``surrogateescape``: a byte that is not UTF-8 becomes a lone
surrogate, which every later ``str.encode()`` (hashing an API key, storing an idempotency key,
comparing a signature or a session cookie) turns into a ``UnicodeEncodeError`` — a 500. One
check before anything reads the headers answers them all with a 400 instead.
"""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from . import errors


def undecodable(value: str) -> bool:
    """True when ``value`` carries bytes that were not UTF-8 (as lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return True
    return False


def install(app: Sanic) -> None:
    @app.on_request(priority=95)  # type: ignore[call-arg]  # after the request id (100), before any guard or handler
    async def _valid_headers(request: Request) -> HTTPResponse | None:
        for name, value in request.headers.items():
            if undecodable(value) or undecodable(name):
                return errors.problem_response(errors.bad_request(
                    "a header value is not valid UTF-8", "invalid_header"))
        return None

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
    @app.ctx.hooks.request(priority=95)  # after the request id (100), before any guard or handler
    def _valid_headers(request: Request) -> HTTPResponse | None:
        # The header block as received (the request line left out): its names and values are
        # all valid UTF-8 exactly when the block is. One C call, and no walk over the parsed
        # headers (iterating a multidict's names builds a cache of them that lives as long as
        # the request: ~0.9 KiB per open WebSocket, docs/performance.md §6).
        head = request.head
        if head:
            try:
                head.partition(b"\r\n")[2].decode()
            except UnicodeDecodeError:
                return _refused()
            return None
        for name, value in request.headers.items():  # a request made up for an error
            if undecodable(value) or undecodable(name):
                return _refused()
        return None


def _refused() -> HTTPResponse:
    return errors.problem_response(errors.bad_request(
        "a header value is not valid UTF-8", "invalid_header"))

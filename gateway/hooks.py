"""The app's request and response hooks, run by one Sanic middleware each.

Sanic runs every middleware function through its own machinery — a wrapper call, an awaitable
check, a coroutine per function, per request — and the gateway has ten of them on every
request (request id, CORS, header check, page guard, traces; CORS, version header, session,
rate-limit headers, metrics). The modules register them here instead (``app.ctx.hooks``), with
the priorities they had as Sanic middleware, and :func:`install` adds the two Sanic middleware
that run them, in Sanic's order: request hooks by priority, highest first, then in the order
they were registered; response hooks by priority, lowest first, then the later registered
first. App-wide only: a blueprint's own middleware stays Sanic's (it runs after the request
hooks and before the response hooks, as its priority 0 put it before).

A hook is a plain function (no coroutine made: most of them) or an async one. A request hook
returns None to go on, or the answer (an ``HTTPResponse``, or an awaitable of one or of None);
a response hook returns None, or what Sanic would take from a middleware: a response that
replaces the answer, after which no further response hook runs.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import isawaitable
from itertools import count
from typing import Any, TypeVar

H = TypeVar("H", bound=Callable[..., Any])

# The two Sanic middleware: the request hooks before any blueprint's (priority 0) and the
# response hooks after them, as their own priorities (5 to 200) placed them.
REQUEST_PRIORITY = 1_000
RESPONSE_PRIORITY = 1


class Hooks:
    """The registered hooks, each list kept in the order it runs."""

    def __init__(self) -> None:
        self._order = count()
        self._request: list[tuple[int, int, Callable[..., Any]]] = []
        self._response: list[tuple[int, int, Callable[..., Any]]] = []
        self.request_chain: tuple[Callable[..., Any], ...] = ()
        self.response_chain: tuple[Callable[..., Any], ...] = ()

    def request(self, priority: int = 0) -> Callable[[H], H]:
        """Decorator: run ``fn(request)`` before the handler (as ``app.on_request``)."""

        def add(fn: H) -> H:
            self._request.append((priority, next(self._order), fn))
            self._request.sort(key=lambda h: (-h[0], h[1]))
            self.request_chain = tuple(h[2] for h in self._request)
            return fn

        return add

    def response(self, priority: int = 0) -> Callable[[H], H]:
        """Decorator: run ``fn(request, response)`` after the handler (as ``app.on_response``)."""

        def add(fn: H) -> H:
            self._response.append((priority, next(self._order), fn))
            self._response.sort(key=lambda h: (h[0], -h[1]))
            self.response_chain = tuple(h[2] for h in self._response)
            return fn

        return add

    async def run_request(self, request: Any) -> Any:
        for hook in self.request_chain:
            out = hook(request)
            if out is not None:
                if isawaitable(out):
                    out = await out
                    if out is None:
                        continue
                return out
        return None

    async def run_response(self, request: Any, response: Any) -> Any:
        for hook in self.response_chain:
            out = hook(request, response)
            if out is not None:
                if isawaitable(out):
                    out = await out
                if out:
                    return out
        return None


def install(app: Any) -> None:
    """The two Sanic middleware that run ``app.ctx.hooks``."""
    hooks: Hooks = app.ctx.hooks
    app.register_middleware(hooks.run_request, "request", priority=REQUEST_PRIORITY)
    app.register_middleware(hooks.run_response, "response", priority=RESPONSE_PRIORITY)

"""The app's request and response hooks (gateway/hooks.py) run in the order Sanic ran them as
middleware — the same priorities and registrations give the same order — and answer, stop and
await as Sanic's middleware did."""

from __future__ import annotations

import asyncio
from itertools import count
from typing import Any

from sanic import Sanic
from sanic.response import HTTPResponse, text

from gateway.hooks import Hooks

# (priority, name) in registration order: ties, both directions, the gateway's own priorities.
REQUEST = [(100, "rid"), (200, "cors"), (95, "headers"), (90, "trace"), (90, "guard"), (0, "late"),
           (90, "third")]
_APPS = count()
RESPONSE = [(90, "cors"), (10, "metrics"), (90, "version"), (50, "ratelimit"), (90, "session"),
            (100, "rid"), (5, "worker")]


def _sanic_order() -> tuple[list[str], list[str]]:
    """The order Sanic itself runs these registrations in, as app middleware of one route."""
    app = Sanic(f"hooks_order_reference_{next(_APPS)}")
    ran: list[str] = []

    def request_mw(name: str) -> Any:
        async def mw(request: Any) -> None:
            ran.append(name)
        mw.__name__ = f"req_{name}"
        return mw

    def response_mw(name: str) -> Any:
        async def mw(request: Any, response: Any) -> None:
            ran.append(name)
        mw.__name__ = f"resp_{name}"
        return mw

    for priority, name in REQUEST:
        app.register_middleware(request_mw(name), "request", priority=priority)
    for priority, name in RESPONSE:
        app.register_middleware(response_mw(name), "response", priority=priority)

    @app.get("/")
    async def index(request: Any) -> HTTPResponse:
        return text("")

    app.router.finalize()
    app.finalize_middleware()
    route = next(iter(app.router.routes))
    requests = [m.func.__name__[4:] for m in route.extra.request_middleware]
    responses = [m.func.__name__[5:] for m in route.extra.response_middleware]
    return requests, responses


def test_hooks_run_in_sanics_middleware_order() -> None:
    hooks = Hooks()
    ran: list[str] = []
    for priority, name in REQUEST:
        hooks.request(priority)(lambda request, name=name: ran.append(name))
    for priority, name in RESPONSE:
        hooks.response(priority)(lambda request, response, name=name: ran.append(name))

    asyncio.run(hooks.run_request(object()))
    requests, ran[:] = list(ran), []
    asyncio.run(hooks.run_response(object(), object()))

    assert (requests, ran) == _sanic_order()
    assert requests[0] == "cors" and ran[0] == "worker"  # highest first; lowest first


def test_a_request_hook_answers_and_the_rest_do_not_run() -> None:
    hooks = Hooks()
    ran: list[str] = []
    answer = text("stop", status=403)
    hooks.request(200)(lambda request: ran.append("first"))
    hooks.request(100)(lambda request: answer)
    hooks.request(90)(lambda request: ran.append("never"))
    assert asyncio.run(hooks.run_request(object())) is answer
    assert ran == ["first"]


def test_async_hooks_and_returned_awaitables_are_awaited() -> None:
    hooks = Hooks()
    ran: list[str] = []
    answer = text("from the guard")

    async def checks_and_goes_on(request: Any) -> None:
        ran.append("async")

    async def guard(request: Any) -> HTTPResponse | None:
        ran.append("guard")
        return answer if request == "page" else None

    hooks.request(100)(checks_and_goes_on)
    hooks.request(90)(lambda request: guard(request))  # a plain hook handing back a coroutine
    hooks.request(80)(lambda request: ran.append("after"))

    assert asyncio.run(hooks.run_request("api")) is None
    assert ran == ["async", "guard", "after"]
    ran.clear()
    assert asyncio.run(hooks.run_request("page")) is answer
    assert ran == ["async", "guard"]


def test_a_response_hook_that_returns_a_response_replaces_it_and_ends_the_chain() -> None:
    hooks = Hooks()
    ran: list[str] = []
    other = text("replaced")

    async def replace(request: Any, response: Any) -> HTTPResponse:
        ran.append("replace")
        return other

    hooks.response(10)(lambda request, response: ran.append("first"))
    hooks.response(20)(replace)
    hooks.response(30)(lambda request, response: ran.append("never"))
    assert asyncio.run(hooks.run_response(object(), text("original"))) is other
    assert ran == ["first", "replace"]

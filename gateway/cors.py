"""CORS as the original answered it (docs/operations.md), with the original's two holes fixed: the origins come
from ``CORS_ORIGINS`` at run time, and ``x-idempotency-key`` is an allowed header.

Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered here, before
routing, for any path: 204 with the allow headers when the origin matches, a bare 204 when it
does not. Other responses from an allowed origin get ``Access-Control-Allow-Origin`` and
``-Credentials``; a non-matching origin gets no CORS headers at all.

CORS belongs to the API only: the server-rendered pages (``/admin``, ``/portal``, their
``/ui`` assets) and ``/metrics`` never answer cross-origin, whatever ``CORS_ORIGINS`` says —
an allowed origin on the same site as the gateway would otherwise read them with the admin's
session cookie (issue 13). Their state-changing requests are also refused (403) when the
browser says they come from elsewhere: ``Sec-Fetch-Site`` other than ``same-origin``/``none``,
or an ``Origin`` that is not the gateway's own.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import urlsplit

from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

ALLOW_METHODS = "GET,POST,PUT,PATCH,DELETE,OPTIONS"
ALLOW_HEADERS = (
    "x-channel-token,x-api-key,x-idempotency-key,authorization,Authorization,Content-Type,Accept,"
    "Origin,User-Agent,DNT,Cache-Control,X-Mx-ReqToken,Keep-Alive,X-Requested-With,"
    "If-Modified-Since,X-CSRF-Token,"
    # What botframework-directlinejs and Web Chat send on every Direct Line call.
    "x-ms-bot-agent"
)
# Headers a browser script may read on actual responses (preflights expose none, as the original).
EXPOSE_HEADERS = "x-request-id,retry-after,ratelimit,ratelimit-policy"
MAX_AGE = "1728000"


# Paths that never answer cross-origin (the pages, their assets, metrics).
PAGES = ("/admin", "/portal", "/ui/", "/metrics")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_PAGE_PATHS = frozenset(p.rstrip("/") for p in PAGES)
_PAGE_PREFIXES = tuple(p.rstrip("/") + "/" for p in PAGES)


def is_page(path: str) -> bool:
    return path in _PAGE_PATHS or path.startswith(_PAGE_PREFIXES)


def same_origin(request: Request, public_url: str) -> bool:
    """False when the browser says the request comes from another origin: ``Sec-Fetch-Site``
    other than ``same-origin``/``none`` (typed or bookmarked), or an ``Origin`` whose host is
    neither the request's ``Host`` nor ``CONVERGER_PUBLIC_URL``'s. A client that sends neither
    header (curl, the tests' HTTP client) is judged by its CSRF token alone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = urlsplit(origin).netloc.lower()
    if not host:  # "null": a sandboxed frame, a data: URL, a redirect across origins
        return False
    own = {request.headers.get("host", "").lower()}
    if public_url:
        own.add(urlsplit(public_url).netloc.lower())
    return host in own


def parse_origins(spec: str) -> frozenset[str]:
    """``"https://a.example, https://b.example/"`` → the set of normalised origins."""
    return frozenset(o.strip().rstrip("/") for o in spec.split(",") if o.strip())


def allowed(origin: str, origins: frozenset[str]) -> bool:
    return "*" in origins or origin.rstrip("/") in origins


def _vary(response: HTTPResponse) -> None:
    current = response.headers.get("vary")
    if not current:
        response.headers["vary"] = "Origin"
    elif "origin" not in current.lower():
        response.headers["vary"] = current + ", Origin"


def preflight(origin: str | None, origins: frozenset[str]) -> HTTPResponse:
    """The answer to a preflight request."""
    response = HTTPResponse(status=204)
    if origin and allowed(origin, origins):
        response.headers.update({
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "access-control-expose-headers": "",
            "access-control-max-age": MAX_AGE,
            "access-control-allow-methods": ALLOW_METHODS,
            "access-control-allow-headers": ALLOW_HEADERS,
        })
    _vary(response)
    return response


def install(app: Sanic) -> None:
    origins = parse_origins(app.ctx.settings.cors_origins)
    app.ctx.cors_origins = origins
    public_url = app.ctx.settings.public_url

    # Priority above the request-id middleware's 100: a preflight is answered before anything.
    async def _answer_preflight(request: Request) -> HTTPResponse:
        # Read the (empty) body first: answering before it logged a Sanic error,
        # "body not consumed", on every browser preflight.
        await request.receive_body()
        if is_page(request.path):
            return preflight(None, origins)  # a bare 204: pages never answer cross-origin
        return preflight(request.headers.get("origin"), origins)

    @app.ctx.hooks.request(priority=200)
    def _preflight(request: Request) -> HTTPResponse | Awaitable[HTTPResponse] | None:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return _answer_preflight(request)  # awaited by the hooks' runner
        if request.method not in SAFE_METHODS and is_page(request.path) and not same_origin(
                request, public_url):
            return text("Forbidden: cross-origin request", status=403)
        return None

    @app.ctx.hooks.response(priority=90)
    def _cors(request: Request, response: HTTPResponse) -> None:
        origin = request.headers.get("origin")
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return  # answered by _preflight, headers already set
        if origin is None:
            return
        _vary(response)
        if is_page(request.path):
            return
        if allowed(origin, origins):
            response.headers["access-control-allow-origin"] = origin
            response.headers["access-control-allow-credentials"] = "true"
            response.headers["access-control-expose-headers"] = EXPOSE_HEADERS

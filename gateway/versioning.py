"""The API versioning policy in code (docs/api-versioning.md).

- Every response carries ``API-Version``: the version of the path it answered (``/api/v2/…``
  → ``2``), else the current version, :data:`API_VERSION`.
- A deprecated route answers with ``Deprecation`` (RFC 9745: ``@<unix seconds>``), ``Sunset``
  (RFC 8594: an HTTP-date) when a removal date is set, and ``Link`` (``rel="deprecation"``) to
  its notice when there is one; the OpenAPI document marks its operation ``deprecated``.

Routes are marked deprecated in :data:`DEPRECATED` (in the code, with the release that deprecates
them) or by the operator with ``CONVERGER_DEPRECATED_ROUTES``: entries separated by ``;``, each
``METHOD /path/{param} SINCE [SUNSET [LINK]]``, dates ISO 8601 (a date is midnight UTC), the path
as the OpenAPI document writes it (parameter names
need not match).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from sanic import Request, Sanic
    from sanic.response import HTTPResponse

API_VERSION = "1"
HEADER = "API-Version"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_VERSIONED = re.compile(r"^/api/v(\d+)(?:/|$)")
_SANIC_PARAM = re.compile(r"<([^:>]+)(?::[^>]*)?>")
_OPENAPI_PARAM = re.compile(r"\{[^}]*\}")


class Deprecation(NamedTuple):
    method: str
    path: str  # OpenAPI form: /api/v1/conversations/{conversation_id}
    since: datetime
    sunset: datetime | None = None
    link: str | None = None

    def headers(self) -> dict[str, str]:
        out = {"Deprecation": f"@{int(self.since.timestamp())}"}
        if self.sunset is not None:
            out["Sunset"] = format_datetime(self.sunset, usegmt=True)
        if self.link:
            out["Link"] = f'<{self.link}>; rel="deprecation"'
        return out


# Routes the project deprecates, e.g.
# Deprecation("GET", "/api/v1/example", datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 7, 1, tzinfo=UTC),
#             "https://github.com/…/docs/api-versioning.md#deprecated-routes")
DEPRECATED: tuple[Deprecation, ...] = ()


def _date(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def parse(spec: str) -> tuple[Deprecation, ...]:
    """``CONVERGER_DEPRECATED_ROUTES``; ``ValueError`` names what is wrong."""
    out: list[Deprecation] = []
    for raw in spec.split(";"):
        parts = raw.split()
        if not parts:
            continue
        if not 3 <= len(parts) <= 5:
            raise ValueError(f"{raw.strip()!r}: expected 'METHOD /path SINCE [SUNSET [LINK]]'")
        method, path = parts[0].upper(), parts[1]
        if method not in _METHODS or not path.startswith("/"):
            raise ValueError(f"{raw.strip()!r}: expected an HTTP method and a path starting with /")
        try:
            since = _date(parts[2])
            sunset = _date(parts[3]) if len(parts) > 3 else None
        except ValueError:
            raise ValueError(f"{raw.strip()!r}: dates must be ISO 8601 (2027-01-31)") from None
        if sunset is not None and sunset < since:
            raise ValueError(f"{raw.strip()!r}: the sunset comes before the deprecation")
        link = parts[4] if len(parts) > 4 else None
        if link is not None and not link.startswith(("https://", "http://")):
            raise ValueError(f"{raw.strip()!r}: the link must be an http(s) URL")
        out.append(Deprecation(method, path.rstrip("/") or "/", since, sunset, link))
    return tuple(out)


def deprecations(spec: str) -> tuple[Deprecation, ...]:
    """The code's :data:`DEPRECATED` and the operator's, the operator's winning per route."""
    merged = {route_key(d.method, d.path): d for d in DEPRECATED}
    merged.update({route_key(d.method, d.path): d for d in parse(spec)})
    return tuple(merged.values())


def route_key(method: str, path: str) -> tuple[str, str]:
    """What a mark is matched on: the method and the path with its parameters unnamed
    (``/api/v1/routing_rules/{id}`` marks ``/api/v1/routing_rules/{rule_id}``)."""
    return method.upper(), _OPENAPI_PARAM.sub("{}", path.rstrip("/") or "/")


def version_of(path: str) -> str:
    match = _VERSIONED.match(path)
    return match.group(1) if match else API_VERSION


def openapi_path(sanic_path: str) -> str:
    """Sanic's route template (``api/v1/x/<id:str>``) in OpenAPI form (``/api/v1/x/{id}``)."""
    return "/" + _SANIC_PARAM.sub(r"{\1}", sanic_path.lstrip("/")).rstrip("/")


def install(app: Sanic, marked: Iterable[Deprecation]) -> None:
    by_route = {route_key(d.method, d.path): d.headers() for d in marked}
    cache: dict[tuple[str, str], dict[str, str] | None] = {}

    @app.ctx.hooks.response(priority=90)
    def _version(request: Request, response: HTTPResponse) -> None:
        response.headers[HEADER] = version_of(request.path)
        if not by_route or request.route is None:
            return
        key = (request.method, request.route.path)
        if key not in cache:
            cache[key] = by_route.get(route_key(request.method, openapi_path(request.route.path)))
        extra = cache[key]
        if extra:
            response.headers.update(extra)

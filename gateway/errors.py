"""One error shape: RFC 9457 ``application/problem+json`` with a stable ``code``, which also
carries the original's member (``errors`` or ``error``, see docs/hardening.md) so old clients
parse it. The domain raises plain exceptions (gateway/domain/errors.py); ``problem`` is the one
place they become HTTP."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
from sanic import Request
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse

from .domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    TooLarge,
    Unprocessable,
    ValidationFailed,
)

_encode = msgspec.json.Encoder().encode

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


class ApiError(Exception):
    """An error a client should see. ``legacy`` is the original's body member(s)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        legacy: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.legacy = legacy if legacy is not None else {"errors": {"detail": TITLES.get(status, "Error")}}
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:converger:problem:{self.code}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        body.update(self.legacy)
        return body


# Constructors for the shapes the original used -------------------------------------------
def not_found(detail: str = "Not Found", code: str = "not_found") -> ApiError:
    return ApiError(404, code, detail, legacy={"errors": {"detail": "Not Found"}})


def bad_request(detail: str, code: str = "bad_request", *, plain: bool = False) -> ApiError:
    """400. ``plain`` uses the original's ``{"error": detail}`` member."""
    legacy = {"error": detail} if plain else {"errors": {"detail": "Bad Request"}}
    return ApiError(400, code, detail, legacy=legacy)


def unauthorized(detail: str, code: str = "unauthorized", *, style: str = "errors") -> ApiError:
    legacy: dict[str, Any]
    if style == "tenant":
        legacy = {"error": f"Unauthorized: {detail}"}
    elif style == "converger":
        legacy = {"error": {"code": "Unauthorized", "message": detail}}
    else:
        legacy = {"errors": {"detail": "Unauthorized"}}
    return ApiError(401, code, detail, legacy=legacy)


def forbidden(detail: str = "Forbidden", code: str = "forbidden", *, style: str = "errors") -> ApiError:
    legacy: dict[str, Any]
    if style == "converger":
        legacy = {"error": {"code": "Forbidden", "message": detail}}
    else:
        legacy = {"errors": {"detail": "Forbidden"}}
    return ApiError(403, code, detail, legacy=legacy)


def validation(errors: dict[str, list[str]], detail: str | None = None) -> ApiError:
    if detail is None:
        first = next(iter(errors.items()))
        detail = f"{first[0]} {first[1][0]}"
    return ApiError(422, "validation_failed", detail, legacy={"errors": errors})


def conflict(detail: str, code: str = "conflict") -> ApiError:
    return ApiError(409, code, detail, legacy={"error": detail})


# Direct Line 3.0 (/v3/directline): Microsoft's ErrorResponse ``{"error": {"code", "message"}}``
# inside the problem body, and 403 — not 401 — for a token that is invalid or expired: the
# official client recovers (status ``ExpiredToken``) from a 403 only.
DIRECTLINE_PREFIX = "/v3/directline"
DIRECTLINE_CODES = ("BadArgument", "TokenExpired", "TooManyRequests", "ServiceError",
                    "BotNotAvailable")


def directline(status: int, code: str, detail: str, dl_code: str = "BadArgument",
               headers: dict[str, str] | None = None) -> ApiError:
    return ApiError(status, code, detail, legacy={"error": {"code": dl_code, "message": detail}},
                    headers=headers)


def as_directline(err: ApiError) -> ApiError:
    """An error raised by a handler shared with the Converger API, in Direct Line's shape."""
    current = err.legacy.get("error")
    if isinstance(current, dict) and current.get("code") in DIRECTLINE_CODES:
        return err
    status = err.status
    if status == 401 and err.code != "missing_credentials":
        status = 403
    elif status == 422:  # Direct Line documents 400 for any malformed or incorrect request
        status = 400
    dl_code = ("TooManyRequests" if status == 429 else "ServiceError" if status >= 500
               else "BadArgument")
    shaped = directline(status, err.code, err.detail, dl_code, err.headers)
    shaped.extra = err.extra
    return shaped


def _shaped(request: Request, err: ApiError) -> HTTPResponse:
    if request.path.startswith(DIRECTLINE_PREFIX):
        err = as_directline(err)
    return problem_response(err)


def problem(exc: DomainError) -> ApiError:
    """The HTTP answer to a refused domain operation, with the original's members."""
    if isinstance(exc, ValidationFailed):
        return validation(exc.fields, exc.detail)
    if isinstance(exc, NotFound):
        return not_found()
    if isinstance(exc, Conflict):
        return conflict(exc.detail, exc.code)
    if isinstance(exc, Forbidden):
        return forbidden(exc.detail, exc.code)
    if isinstance(exc, TooLarge):
        return ApiError(413, exc.code, exc.detail, legacy={"error": "Request body too large"})
    if isinstance(exc, Unprocessable):
        return ApiError(422, exc.code, exc.detail, legacy={"error": exc.detail})
    return ApiError(400, "bad_request", str(exc))


def problem_response(err: ApiError) -> HTTPResponse:
    headers = dict(err.headers)
    return HTTPResponse(
        _encode(err.body()), status=err.status, headers=headers,
        content_type="application/problem+json",
    )


_SANIC_CODES = {
    404: "route_not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    400: "bad_request",
    408: "request_timeout",
    503: "unavailable",
}


# SQLite result codes that mean "the storage under the database", not "a bug here".
_STORAGE_FULL = {"SQLITE_FULL"}
_STORAGE_UNAVAILABLE_PREFIXES = ("SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")


def storage_error(exc: sqlite3.OperationalError) -> ApiError | None:
    """The problem a client sees when the disk is full (507 ``storage_full``) or the database
    cannot be written (503 ``storage_unavailable``); None for any other SQLite error."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name in _STORAGE_FULL:
        return ApiError(507, "storage_full",
                        "The database is full; nothing was written. Reads still work.",
                        legacy={"errors": {"detail": TITLES[507]}}, headers={"retry-after": "30"})
    if name.startswith(_STORAGE_UNAVAILABLE_PREFIXES):
        return ApiError(503, "storage_unavailable",
                        "The database cannot be written right now; nothing was written.",
                        legacy={"errors": {"detail": TITLES[503]}}, headers={"retry-after": "5"})
    return None


def register(app: Any) -> None:
    """Install the handlers that turn every exception into a problem response."""

    @app.exception(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> HTTPResponse:
        return _shaped(request, exc)

    @app.exception(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> HTTPResponse:
        return _shaped(request, problem(exc))

    @app.exception(SanicException)
    async def _sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 500) or 500
        code = _SANIC_CODES.get(status, "http_error")
        detail = str(exc) or TITLES.get(status, "Error")
        if status >= 500:
            app.ctx.log.exception("unhandled error", exc_info=exc)
            detail = "Internal Server Error"
        err = ApiError(status, code, detail, legacy={"errors": {"detail": TITLES.get(status, "Error")}})
        resp = _shaped(request, err)
        if status == 405 and getattr(exc, "headers", None):
            resp.headers.update(exc.headers)
        return resp

    @app.exception(sqlite3.IntegrityError)
    async def _constraint(request: Request, exc: sqlite3.IntegrityError) -> HTTPResponse:
        # A safety net: input that slipped past validation and broke a schema constraint is
        # the client's conflict, not a server error. Logged, since validation should catch it.
        app.ctx.log.warning("constraint failed on %s %s: %s", request.method, request.path, exc)
        return _shaped(request, conflict("the request conflicts with a constraint on stored data",
                                         "constraint_failed"))

    @app.exception(sqlite3.OperationalError)
    async def _storage(request: Request, exc: sqlite3.OperationalError) -> HTTPResponse:
        err = storage_error(exc)
        if err is None:
            return await _unhandled(request, exc)
        # One line, no traceback: the condition is the environment's, and a full disk would
        # otherwise fill what is left of it with stack traces.
        app.ctx.log.error("storage: %s on %s %s: %s", err.code, request.method, request.path, exc)
        return _shaped(request, err)

    @app.exception(Exception)
    async def _unhandled(request: Request, exc: Exception) -> HTTPResponse:
        app.ctx.log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return _shaped(request,
            ApiError(500, "internal_error", "Internal Server Error",
                     legacy={"errors": {"detail": "Internal Server Error"}})
        )

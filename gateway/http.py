"""Request decoding and response encoding helpers shared by every route module."""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar, cast

import msgspec
from sanic import Request
from sanic.response import HTTPResponse

from . import errors, forms
from .context import Gateway

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_PATH_RE = re.compile(r"at `\$\.?([^`]*)`")
MAX_DEPTH = 32
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def gw(request: Request) -> Gateway:
    """The request's ``Gateway`` (``app.ctx``), typed."""
    return cast(Gateway, request.app.ctx)


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(_encoder.encode(body), status=status, headers=headers,
                        content_type="application/json")


def empty(status: int = 204) -> HTTPResponse:
    return HTTPResponse(status=status)


def _decoder(cls: Any) -> msgspec.json.Decoder[Any]:
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    return dec


def _depth(value: Any, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit``."""
    stack = [(value, 0)]
    while stack:
        item, d = stack.pop()
        if d > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return False


def _sized_body(request: Request) -> bytes:
    body = request.body or b""
    limit = request.app.ctx.settings.max_body_bytes
    if len(body) > limit:
        raise errors.ApiError(413, "payload_too_large", f"request body exceeds {limit} bytes",
                              legacy={"error": "Request body too large"})
    return body


def _decode_raw(body: bytes, plain: bool) -> Any:
    raw = loads(body, plain=plain)
    if _depth(raw, MAX_DEPTH):
        raise errors.bad_request(f"JSON nests deeper than {MAX_DEPTH} levels", "json_too_deep",
                                 plain=plain)
    return raw


def decode_any(request: Request, *, plain: bool = False) -> Any:
    """The JSON body as plain values (any shape), with :func:`decode`'s size, syntax and depth
    checks; an empty body is ``{}``. For payloads whose shape an adapter decides (inbound)."""
    body = _sized_body(request)
    if body.strip() and forms.is_form(request):
        return _form_params(request, plain)
    return _decode_raw(body, plain) if body.strip() else {}


def _form_params(request: Request, plain: bool) -> dict[str, Any]:
    """A form body as parameters (gateway/forms.py), with the JSON path's nesting limit."""
    try:
        raw = forms.params(request)
    except forms.FormError as exc:
        raise errors.bad_request(str(exc), "malformed_form", plain=plain) from None
    if _depth(raw, MAX_DEPTH):
        raise errors.bad_request(f"form parameters nest deeper than {MAX_DEPTH} levels",
                                 "json_too_deep", plain=plain)
    return raw


def _decode_form(request: Request, cls: type[T], plain: bool) -> T:
    """A form into ``cls``: the same validation as JSON, values converted from their text."""
    raw = _form_params(request, plain)
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FORM_FIELDS = 1000


def decode_inbound(request: Request, *, plain: bool = False) -> Any:
    """A provider's inbound body: a form (Twilio, SendGrid Inbound Parse) as a dict of field →
    first value, a multipart form's files as ``{"filename", "content_type", "content"}``;
    anything else as JSON (:func:`decode_any`). A form that cannot be parsed → 400."""
    ctype = (request.content_type or "").split(";", 1)[0].strip().lower()
    if ctype not in FORM_TYPES:
        return decode_any(request, plain=plain)
    _sized_body(request)
    try:
        form = request.get_form(keep_blank_values=True)
        files = request.files if ctype == "multipart/form-data" else None
    except Exception:  # Sanic's parsers raise several kinds on broken forms
        form, files = None, None
    if form is None:
        raise errors.bad_request("malformed form body", "malformed_form", plain=plain)
    out: dict[str, Any] = {}
    for name, values in form.items():
        if values and len(out) < MAX_FORM_FIELDS:
            out[name] = values[0]
    for name, items in (files or {}).items():
        if items and len(out) < MAX_FORM_FIELDS:
            f = items[0]
            out[name] = {"filename": f.name or "", "content_type": f.type or "",
                         "content": bytes(f.body or b"")}
    return out


def decode(request: Request, cls: type[T], *, empty_ok: bool = True, plain: bool = False) -> T:
    """Decode and validate the JSON body into ``cls``.

    Malformed JSON → 400; the wrong shape or types → 422 with the field named; an oversize body
    → 413. An empty body decodes as ``{}`` when ``empty_ok``.
    """
    body = _sized_body(request)
    if body.strip() and forms.is_form(request):
        return _decode_form(request, cls, plain)
    if not body.strip():
        if not empty_ok:
            raise errors.bad_request("request body is required", "body_required", plain=plain)
        body = b"{}"
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        # Fast path (the hot write path): too few brackets to nest too deep, so decode straight
        # into the Struct. Any failure is re-run on the slow path below for the exact error.
        try:
            return _decoder(cls).decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
    raw = _decode_raw(body, plain)
    if not isinstance(raw, dict):
        raise errors.bad_request("request body must be a JSON object", "body_not_object", plain=plain)
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def loads(body: bytes, *, plain: bool = False) -> Any:
    """Parse JSON of any shape: malformed → 400 ``malformed_json``; nested so deep that the
    parser gives up (``RecursionError``, a 500 before) → 400 ``json_too_deep``."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise errors.bad_request(f"malformed JSON: {exc}", "malformed_json", plain=plain) from None
    except UnicodeDecodeError:  # a string that is not UTF-8 (a 500 before)
        raise errors.bad_request("malformed JSON: a string is not valid UTF-8", "malformed_json",
                                 plain=plain) from None
    except RecursionError:
        raise errors.bad_request(f"JSON nests deeper than {MAX_DEPTH} levels", "json_too_deep",
                                 plain=plain) from None


def validation_error(exc: msgspec.ValidationError) -> errors.ApiError:
    message = str(exc)
    match = _PATH_RE.search(message)
    field = match.group(1) if match else "body"
    field = field.split(".")[0].split("[")[0] or "body"
    short = message.split(" - at ")[0]
    if short.startswith("Object contains unknown field"):
        return errors.validation({_missing(short): ["is not a known field"]}, detail=short)
    if short.startswith("Object missing required field"):
        return errors.validation({field if field != "body" else _missing(short): ["can't be blank"]},
                                 detail=short)
    return errors.validation({field: ["is invalid"]}, detail=f"{short} (at {field})")


def _missing(message: str) -> str:
    m = re.search(r"`([^`]+)`", message)
    return m.group(1) if m else "body"


def uuid_param(value: str, name: str = "id") -> str:
    """A path id must be a UUID: a malformed one is 400, never a 404 or a 500."""
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value  # already canonical: skip the (ten times slower) uuid.UUID round trip
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise errors.bad_request(f"{name} is not a valid UUID", "invalid_uuid") from None


def int_arg(request: Request, name: str, default: int, lo: int = 1, hi: int = 500) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer", "invalid_query") from None
    if not lo <= value <= hi:
        raise errors.bad_request(f"{name} must be between {lo} and {hi}", "invalid_query")
    return value


def set_fields(struct: Any) -> dict[str, Any]:
    """The fields of a PATCH body that were given (not ``UNSET``)."""
    return {
        f: getattr(struct, f)
        for f in struct.__struct_fields__
        if getattr(struct, f) is not msgspec.UNSET
    }


def public_base(request: Request, *, websocket: bool = False) -> str:
    """This gateway's public origin (and path prefix): ``CONVERGER_PUBLIC_URL`` when set (the
    original put its internal host and port in the URLs it handed out, which behind a proxy
    clients could not reach), else the request's scheme and host;
    ``ws(s)://`` for a socket URL."""
    public = request.app.ctx.settings.public_url.rstrip("/")
    if public:
        scheme, sep, rest = public.partition("://")
        if not sep:
            scheme, rest = "http", public
    else:
        secure = request.scheme in ("https", "wss")
        scheme, rest = ("https" if secure else "http"), request.host
    scheme = scheme.lower()
    if websocket:
        scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{scheme}://{rest}"

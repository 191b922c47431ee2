"""The original's HTTP parsers (Phoenix/Plug), so clients written against it keep working:

* **form bodies** — ``application/x-www-form-urlencoded`` and ``multipart/form-data`` are
  accepted wherever JSON is, with Plug's nested names (``activity[text]=hi``,
  ``activity[metadata][k]=v``, ``ids[]=1&ids[]=2``) and then the very same validation
  (:func:`gateway.http.decode`): the size limit, the nesting limit, the field types (form values
  are strings: ``"3"`` is taken as 3, ``"true"`` as true where the field wants them);
* **HEAD** on every GET route (the GET handler runs; the server sends its headers only);
* **method override** — a ``POST`` whose form carries ``_method`` (Plug.MethodOverride), or
  that has an ``X-HTTP-Method-Override`` header, is routed as ``PUT``, ``PATCH`` or ``DELETE``.
"""

from __future__ import annotations

import re
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import MethodNotAllowed, NotFound

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
OVERRIDES = frozenset({"PUT", "PATCH", "DELETE"})
MAX_FIELDS = 1000
_KEY = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """The form cannot be read as parameters."""


def is_form(request: Request) -> bool:
    ctype = (request.content_type or "").split(";", 1)[0].strip().lower()
    return ctype in FORM_TYPES


def _path(name: str) -> list[str]:
    """``"a[b][]"`` → ``["a", "b", ""]`` (``""``: append to a list)."""
    head = name.split("[", 1)[0]
    rest = name[len(head):]
    parts = [head]
    while rest:
        m = _KEY.match(rest)
        if m is None:  # "a[b" and the like: the rest is part of the name, as Plug does
            parts[-1] += rest
            break
        parts.append(m.group(1))
        rest = rest[m.end():]
    return parts


def _put(target: dict[str, Any], parts: list[str], value: Any) -> None:
    node: Any = target
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            child: Any = [] if nxt == "" else {}
            node.append(child)
            node = child
            continue
        if part not in node or not isinstance(node[part], list | dict):
            node[part] = [] if nxt == "" else {}
        node = node[part]
        if nxt == "" and not isinstance(node, list) or nxt != "" and not isinstance(node, dict):
            raise FormError(f"parameter {parts[0]!r} is both a list and a map")
    last = parts[-1]
    if isinstance(node, list):
        node.append(value)
    else:
        node[last] = value


def params(request: Request) -> dict[str, Any]:
    """The form as nested parameters (Plug's rules); uploaded files are ignored here (the upload
    routes read them). ``_method`` and ``_csrf`` are the transport's, not the resource's."""
    try:
        form = request.get_form(keep_blank_values=True)
    except Exception as exc:  # Sanic's parsers raise several kinds on broken forms
        raise FormError("malformed form body") from exc
    if form is None:
        raise FormError("malformed form body")
    out: dict[str, Any] = {}
    count = 0
    for name, values in form.items():
        if name in ("_method", "_csrf") or not name:
            continue
        parts = _path(name)
        for value in values:
            count += 1
            if count > MAX_FIELDS:
                raise FormError(f"more than {MAX_FIELDS} form fields")
            _put(out, parts, value)
    return out


def install(app: Sanic) -> None:
    """HEAD on GET routes and method overrides, decided before routing: ``_route_as`` becomes
    ``app.ctx.before_routing``, which the server's protocol (``gateway/connlimit.py``) awaits
    for a ``POST`` or ``HEAD`` before Sanic routes it. (Sanic's ``http.routing.before`` signal
    did the same at the cost of a signal dispatch on every request: ~10% of the event loop's
    time on the activity write path, docs/performance.md §1.)"""

    async def _route_as(request: Request) -> None:
        method = request.method
        if method == "POST":
            wanted = request.headers.get("x-http-method-override")
            if wanted is None and is_form(request):
                await request.receive_body()  # the router needs _method; the body is kept
                try:
                    form = request.get_form(keep_blank_values=True)
                except Exception:  # a broken form: routed as POST, refused by its parser
                    form = None
                wanted = form.get("_method") if form else None
            if wanted and wanted.upper() in OVERRIDES:
                request.method = wanted.upper()
        elif method == "HEAD":
            host = request.headers.getone("host", None)
            try:
                app.router.get(request.path, "HEAD", host)
            except MethodNotAllowed:
                try:
                    app.router.get(request.path, "GET", host)
                except (MethodNotAllowed, NotFound):
                    return
                request.method = "GET"  # the GET handler answers; only its headers are sent
            except NotFound:
                return

    app.ctx.before_routing = _route_as

"""WhatsApp template (HSM) messages: how an activity names one, and the check of its parameters
against a template synced from the provider (docs/whatsapp.md, "Templates").

An activity of ``type: "template"`` carries the template in ``metadata.template`` (or, from a
Direct Line client, ``value``)::

    {"name": "order_update", "language": "en_US",
     "components": [{"type": "header", "parameters": [{"type": "image", "image": {"link": "…"}}]},
                    {"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}]}

``components`` are the Cloud API's own shape; the Infobip adapter translates them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from .base import OutboundActivity

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
HEADER_MEDIA = ("IMAGE", "VIDEO", "DOCUMENT")


class TemplateUse(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    language: str
    components: list[dict[str, Any]] = []


def read(value: Any) -> TemplateUse | str:
    """A template use from its JSON form, or why it is not one."""
    if not isinstance(value, dict):
        return "a template activity needs metadata.template: {name, language, components}"
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return "template.name must be a non-empty string"
    language = value.get("language")
    if isinstance(language, dict):
        language = language.get("code")
    if not isinstance(language, str) or not language:
        return "template.language must be a language code such as 'en_US'"
    components = value.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        return "template.components must be a list of objects"
    for c in components:
        if not isinstance(c.get("type"), str):
            return "every template component needs a type (header, body, button)"
        params = c.get("parameters", [])
        if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
            return f"template {c['type']} parameters must be a list of objects"
    return TemplateUse(name=name, language=language, components=components)


def template_of(activity: OutboundActivity) -> TemplateUse | str:
    meta = activity.metadata.get("template")
    return read(meta if meta is not None else activity.extra.get("value"))


def parameters(use: TemplateUse, kind: str) -> list[dict[str, Any]]:
    for c in use.components:
        if str(c.get("type", "")).lower() == kind:
            return list(c.get("parameters", []))
    return []


def expected(definition: Mapping[str, Any], kind: str) -> tuple[int, str | None]:
    """How many parameters the synced template's ``kind`` component takes, and its header
    format (TEXT, IMAGE, …) when it is the header."""
    for c in definition.get("components", []) or []:
        if not isinstance(c, dict) or str(c.get("type", "")).lower() != kind:
            continue
        fmt = c.get("format") if isinstance(c.get("format"), str) else None
        if kind == "header" and fmt and fmt.upper() in HEADER_MEDIA:
            return 1, fmt.upper()
        text = c.get("text")
        count = len(set(_PLACEHOLDER.findall(text))) if isinstance(text, str) else 0
        return count, (fmt.upper() if fmt else None)
    return 0, None


def check(use: TemplateUse, definition: Mapping[str, Any]) -> str | None:
    """Why ``use`` does not fit the synced template ``definition`` (Meta's
    ``message_templates`` entry: name, language, status, components), or None."""
    status = str(definition.get("status", "")).upper()
    if status and status != "APPROVED":
        return f"template {use.name!r} ({use.language}) is {status}, not APPROVED"
    for kind in ("header", "body"):
        want, fmt = expected(definition, kind)
        got = parameters(use, kind)
        if len(got) != want:
            return (f"template {use.name!r} {kind} takes {want} parameter(s); "
                    f"{len(got)} given")
        if kind == "header" and fmt in HEADER_MEDIA and got:
            p = got[0]
            ptype = str(p.get("type", "")).upper()
            found = p.get(ptype.lower())
            media: dict[str, Any] = found if isinstance(found, dict) else {}
            if ptype != fmt or not (media.get("link") or media.get("id")):
                return (f"template {use.name!r} header is {fmt}: give "
                        f"{{\"type\": \"{fmt.lower()}\", \"{fmt.lower()}\": {{\"link\": …}}}}")
        for p in got:
            if str(p.get("type", "")).lower() == "text" and not isinstance(p.get("text"), str):
                return f"template {use.name!r} {kind} text parameters need a 'text' string"
    return None

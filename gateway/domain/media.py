"""Attachments on their way out (adapters/media.py has the model): a file in the gateway's
upload store is named by a relative ``/uploads/<tenant>/<file>`` URL, which a provider cannot
fetch, so before an adapter sees the activity it becomes an absolute signed URL (good for an
hour without credentials: ``Tokens.signed_upload_url``) on the server's public address."""

from __future__ import annotations

from typing import Any

from ..context import Gateway


def base_url(gw: Gateway) -> str:
    s = gw.settings
    return s.public_url.rstrip("/") or f"http://{s.host}:{s.port}"


def public_links(gw: Gateway, tenant_id: str, attachments: list[Any]) -> list[Any]:
    """``attachments`` with this tenant's ``/uploads/…`` URLs made absolute and signed."""
    prefix = f"/uploads/{tenant_id}/"
    out: list[Any] = []
    for att in attachments:
        url = att.get("contentUrl") if isinstance(att, dict) else None
        if isinstance(url, str) and url.startswith(prefix) and "/" not in url[len(prefix):] \
                and "?" not in url:
            att = {**att, "contentUrl": gw.tokens.signed_upload_url(base_url(gw), url)}
        out.append(att)
    return out

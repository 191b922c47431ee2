"""``check_media``: what an adapter declares it can send (``Adapter.media``) is well-formed and
true. Each declared type within its limits is sent (one request to the loopback provider);
over its size, of a content type it does not list, or of an undeclared type, the delivery
fails at once (not retryable) with a reason and no request."""

from __future__ import annotations

from typing import Any

import aiohttp

from adapters.base import Adapter
from adapters.media import MediaSpec

from .delivery import Provider, _deliver
from .profile import Profile


def check_media_declaration(adapter: Adapter) -> None:
    media = adapter.media
    assert hasattr(media, "items"), f"{adapter.type}: media must be a mapping, got {media!r}"
    for kind, spec in media.items():
        assert isinstance(kind, str) and kind, f"{adapter.type}: media key {kind!r}"
        assert isinstance(spec, MediaSpec), f"{adapter.type}: media[{kind!r}] is not a MediaSpec"
        assert spec.max_bytes > 0, f"{adapter.type}: media[{kind!r}].max_bytes must be > 0"
        assert all("/" in c for c in spec.content_types), \
            f"{adapter.type}: media[{kind!r}] content types must be type/subtype"
    assert not media or adapter.delivers, f"{adapter.type}: declares media but does not deliver"


def _attachment(kind: str, spec: MediaSpec, **over: Any) -> dict[str, Any]:
    ctype = sorted(spec.content_types)[0] if spec.content_types else "application/pdf"
    return {"type": kind, "contentType": ctype, "name": f"file.{kind}", "size": 1024,
            "contentUrl": "https://files.example.com/f", **over}


async def check_media(adapter: Adapter, profile: Profile) -> None:
    check_media_declaration(adapter)
    if not adapter.media:
        return
    assert profile.point_at is not None
    timeout = aiohttp.ClientTimeout(total=2)
    async with Provider(profile.ok_body) as provider, aiohttp.ClientSession(timeout=timeout) as s:
        channel = profile.channel(adapter, profile.point_at(dict(profile.config), provider.url))
        for kind, spec in adapter.media.items():
            before = provider.hits
            text = "a caption" if spec.caption else None
            act = profile.activity(text=text, attachments=[_attachment(kind, spec)])
            result = await _deliver(adapter, s, channel, act, f"sending a {kind}")
            assert result.ok, f"{adapter.type}: a declared {kind} was not sent: {result.error}"
            assert provider.hits == before + 1, f"{adapter.type}: a {kind} took " \
                f"{provider.hits - before} requests"
            bad: list[tuple[str, dict[str, Any]]] = [
                ("over its size limit", _attachment(kind, spec, size=spec.max_bytes + 1))]
            if spec.content_types:
                bad.append(("of an undeclared content type",
                            _attachment(kind, spec, contentType="application/x-unlisted")))
            bad.append(("of an undeclared type", _attachment("hologram", spec)))
            for what, att in bad:
                before = provider.hits
                result = await _deliver(adapter, s, channel,
                                        profile.activity(text=text, attachments=[att]),
                                        f"sending a {kind} {what}")
                assert not result.ok and not result.retryable, \
                    f"{adapter.type}: a {kind} {what} must fail at once, got {result}"
                assert provider.hits == before, \
                    f"{adapter.type}: a {kind} {what} reached the provider"

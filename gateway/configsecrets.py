"""Credentials inside a channel's config (issue 13, holes 4 and 11).

Every credential-like value is a secret: the adapter's ``secret_fields``, any top-level key
whose name says it is one (``verify_token``, ``api_key``, ``…password``, ``…secret``…) and the
credential-like entries of a webhook's ``headers`` (``authorization``, ``x-api-key``,
``cookie``…). Secrets are encrypted at rest, shown as ``****`` (API, pages, audit log) and sent
back as ``****`` to keep them.

Keeping a stored secret is refused when the same change moves where it is sent (a key holding
a URL — ``url``, ``api_base_url``, ``base_url`` — changes): whoever can edit a channel could
otherwise point it at their own host and receive the credential the API never shows. The
credential must be re-entered with the new destination.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

MASK = "****"
_CREDENTIAL = re.compile(r"auth|token|secret|passw|key|cookie|credential|signature", re.I)
NESTED = ("headers",)  # config keys holding a name → value map of possible credentials


class _Cipher(Protocol):
    def encrypt(self, value: str) -> str: ...
    def decrypt(self, value: str) -> str: ...
    def is_encrypted(self, value: Any) -> bool: ...


def credential_name(name: str) -> bool:
    return bool(_CREDENTIAL.search(name))


def _seal_value(cipher: _Cipher, value: Any) -> Any:
    if isinstance(value, str) and value and not cipher.is_encrypted(value):
        return cipher.encrypt(value)
    return value


def seal(cipher: _Cipher, secret_fields: Iterable[str], config: dict[str, Any]) -> dict[str, Any]:
    """Encrypt every secret of ``config`` for storage."""
    fields = set(secret_fields)
    out = dict(config)
    for key, value in config.items():
        if key in NESTED and isinstance(value, dict):
            out[key] = {h: _seal_value(cipher, v) if credential_name(h) else v
                        for h, v in value.items()}
        elif key in fields or credential_name(key):
            out[key] = _seal_value(cipher, value)
    return out


def open_(cipher: _Cipher, config: dict[str, Any]) -> dict[str, Any]:
    """The config with every secret decrypted (what an adapter sees)."""

    def plain(v: Any) -> Any:
        return cipher.decrypt(v) if cipher.is_encrypted(v) else v

    return {k: {h: plain(x) for h, x in v.items()} if k in NESTED and isinstance(v, dict)
            else plain(v) for k, v in config.items()}


def masked(cipher: _Cipher, config: dict[str, Any]) -> dict[str, Any]:
    """The config as shown: every secret is ``****`` (encrypted ones, and credential-named
    values stored before they were encrypted)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in NESTED and isinstance(value, dict):
            out[key] = {h: MASK if cipher.is_encrypted(v) or (credential_name(h) and v) else v
                        for h, v in value.items()}
        elif cipher.is_encrypted(value) or (credential_name(key) and isinstance(value, str)
                                            and value):
            out[key] = MASK
        else:
            out[key] = value
    return out


def merge(before: dict[str, Any], sent: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``sent`` with each ``****`` replaced by the stored value; and the names of the values
    so kept (``headers.authorization`` for a nested one)."""
    kept: list[str] = []
    out: dict[str, Any] = {}
    for key, value in sent.items():
        old = before.get(key)
        if key in NESTED and isinstance(value, dict):
            old_map = old if isinstance(old, dict) else {}
            inner = {}
            for h, v in value.items():
                if v == MASK and h in old_map:
                    inner[h] = old_map[h]
                    kept.append(f"{key}.{h}")
                else:
                    inner[h] = v
            out[key] = inner
        elif value == MASK and key in before:
            out[key] = old
            kept.append(key)
        else:
            out[key] = value
    return out, kept


def destination(config: dict[str, Any]) -> dict[str, Any]:
    """Where the channel's credentials are sent: every key that holds a URL."""
    return {k: v for k, v in config.items() if "url" in k.lower() or k.lower() == "host"}


def reentry_errors(before: dict[str, Any], merged: dict[str, Any],
                   kept: list[str]) -> dict[str, list[str]]:
    """Field errors when stored secrets would be kept while the destination changes."""
    if not kept or destination(before) == destination(merged):
        return {}
    return {f"config.{name}": ["must be re-entered when the destination URL changes"]
            for name in kept}

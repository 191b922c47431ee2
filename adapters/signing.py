"""Signatures on webhooks, both directions.

Outbound deliveries carry the Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``), keyed by the bytes the
channel secret encodes (``whsec_`` + base64), exactly as the ``standardwebhooks``/``svix``
libraries expect; and ``x-converger-signature: sha256=<hex HMAC-SHA256 of the body>`` keyed by
the secret string's UTF-8 bytes, as the original computed it for inbound requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


def header_bytes(value: str) -> bytes:
    """A received header value as bytes to compare. Sanic decodes header bytes that are not
    UTF-8 to lone surrogates (``surrogateescape``); a plain ``encode()`` would raise on them."""
    return value.encode("utf-8", "surrogatepass")


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (the base64 part after ``whsec_``)."""
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX):], validate=True)
        except ValueError:
            pass
    # A secret not in the standard form (made by hand): its own bytes are the key.
    return secret.encode()


def standard_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """``v1,<base64 signature>`` for the ``webhook-signature`` header."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def converger_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` for the ``x-converger-signature`` header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_converger_signature(secret: str, body: bytes, header: str) -> bool:
    """Constant-time comparison of a received ``x-converger-signature``."""
    return hmac.compare_digest(converger_signature(secret, body).encode(), header_bytes(header))


def check_standard_signature(
    secret: str, msg_id: str, timestamp: str, body: bytes, header: str
) -> bool:
    """True when any ``v1,`` signature in a (space-separated) ``webhook-signature`` matches."""
    expected = standard_signature(secret, msg_id, timestamp, body).encode()
    return any(
        hmac.compare_digest(expected, header_bytes(candidate))
        for candidate in header.split()
        if candidate.startswith("v1,")
    )

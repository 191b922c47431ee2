"""Secrets: random keys, hashes for lookup, constant-time checks, and encryption at rest."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import Settings


def new_api_key() -> str:
    return "cvk_" + secrets.token_urlsafe(32)


def new_admin_token() -> str:
    return "cva_" + secrets.token_urlsafe(32)


def new_channel_secret() -> str:
    """Standard Webhooks form, so receivers verify with standardwebhooks/svix as they are."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hint(value: str) -> str:
    """Enough of a secret to recognise it in a list, never enough to use it."""
    return value[:8] + "…" + value[-4:]


def equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Cipher:
    """Encrypts secrets at rest with a key derived from the server's secret key."""

    PREFIX = "enc:v1:"

    def __init__(self, secret_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"converger-at-rest", info=b"fernet"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        return self.PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith(self.PREFIX):
            return token
        try:
            return self._fernet.decrypt(token[len(self.PREFIX):].encode()).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: wrong CONVERGER_SECRET_KEY?") from exc

    def is_encrypted(self, value: object) -> bool:
        return isinstance(value, str) and value.startswith(self.PREFIX)


def secret_key(settings: Settings) -> str:
    """The configured key, or the one kept in the data directory (made once, mode 0600)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


# -- passwords (the pages' users) -------------------------------------------------------------
MIN_PASSWORD = 8
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so a miss costs as much as a wrong password.
    Made on first use, not at import: an argon2 hash takes 0.2 s and 64 MiB, and start-up
    should not pay for it."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False

"""JSON-lines logging on stdout, with secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
SECRET_KEYS = ("api_key", "secret", "token", "password", "x-api-key", "x-channel-token",
               "authorization", "access_token", "app_secret")
_PATTERN = re.compile(
    r"(?i)(" + "|".join(re.escape(k) for k in SECRET_KEYS) + r")([\"']?\s*[:=]\s*[\"']?)([^\s\"',}&]+)"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_KNOWN = re.compile(r"\b(cvk_|cva_|whsec_)[A-Za-z0-9_\-+/=]+")
# Any JWT, wherever it is (a Direct Line streamUrl carries one as ``t=``).
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    # Bearer first: "Authorization: Bearer x" would otherwise lose only the word "Bearer".
    text = _BEARER.sub(lambda m: m.group(1) + "[REDACTED]", text)
    text = _PATTERN.sub(lambda m: m.group(1) + m.group(2) + "[REDACTED]", text)
    text = _JWT.sub("[REDACTED]", text)
    return _KNOWN.sub(lambda m: m.group(1) + "[REDACTED]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return _encode(entry).decode()


class ClientFormErrors(logging.Filter):
    """Sanic logs a body it cannot parse as a form (multipart without a boundary, urlencoded
    bytes that are not UTF-8) with ``error_logger.exception``: an ERROR with a traceback for a
    client's mistake, which pages whoever alerts on errors. The request itself is answered 400
    by the route; the log line becomes one INFO line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Failed when parsing form" and record.levelno >= logging.ERROR:
            exc = record.exc_info[1] if record.exc_info else None
            record.msg = "malformed form body from a client: %s"
            record.args = (f"{type(exc).__name__}: {exc}" if exc else "unreadable",)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


def configure(level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("sanic.error").addFilter(ClientFormErrors())
    for name in ("converger", "sanic.root", "sanic.error", "sanic.access", "sanic.server"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level.upper())
    return logging.getLogger("converger")

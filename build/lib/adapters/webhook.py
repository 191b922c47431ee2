"""Webhook: POST (or the configured method) the activity as JSON to a URL, signed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .base import BaseAdapter


def valid_http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class WebhookAdapter(BaseAdapter):
    type: ClassVar[str] = "webhook"
    delivers: ClassVar[bool] = True

    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        url = config.get("url")
        if not isinstance(url, str) or not url:
            return "webhook config requires a 'url' field"
        if not valid_http_url(url):
            return "webhook config 'url' must be a valid HTTP/HTTPS URL"
        method = config.get("method", "POST")
        if not isinstance(method, str) or method.upper() not in ("POST", "PUT", "PATCH"):
            return "webhook config 'method' must be one of POST, PUT, PATCH"
        headers = config.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            return "webhook config 'headers' must be an object of strings"
        return None

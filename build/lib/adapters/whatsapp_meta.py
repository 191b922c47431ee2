"""WhatsApp through Meta's Cloud API (Graph API)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import BaseAdapter, missing_strings

REQUIRED = ("phone_number_id", "access_token", "verify_token")


class WhatsAppMetaAdapter(BaseAdapter):
    type: ClassVar[str] = "whatsapp_meta"
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token", "app_secret")
    delivers: ClassVar[bool] = True

    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        missing = missing_strings(config, REQUIRED)
        if missing:
            return "whatsapp_meta config missing: " + ", ".join(missing)
        return None

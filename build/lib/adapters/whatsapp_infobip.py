"""WhatsApp through Infobip."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import BaseAdapter, missing_strings

REQUIRED = ("base_url", "api_key", "sender")


class WhatsAppInfobipAdapter(BaseAdapter):
    type: ClassVar[str] = "whatsapp_infobip"
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    delivers: ClassVar[bool] = True

    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        missing = missing_strings(config, REQUIRED)
        if missing:
            return "whatsapp_infobip config missing: " + ", ".join(missing)
        return None

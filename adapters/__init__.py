"""Channel adapters, one module per type, behind the protocol in ``base``. The registry is
explicit: adding a type means adding a module and a line here."""

from __future__ import annotations

from .base import Adapter
from .echo import EchoAdapter
from .email_sendgrid import EmailSendgridAdapter
from .email_smtp import EmailSmtpAdapter
from .slack import SlackAdapter
from .sms_twilio import SmsTwilioAdapter
from .sms_vonage import SmsVonageAdapter
from .telegram import TelegramAdapter
from .webhook import WebhookAdapter
from .websocket import WebSocketAdapter
from .whatsapp_infobip import WhatsAppInfobipAdapter
from .whatsapp_meta import WhatsAppMetaAdapter

REGISTRY: dict[str, Adapter] = {
    a.type: a
    for a in (
        EchoAdapter(),
        WebhookAdapter(),
        WebSocketAdapter(),
        WhatsAppMetaAdapter(),
        WhatsAppInfobipAdapter(),
        TelegramAdapter(),
        SlackAdapter(),
        SmsTwilioAdapter(),
        EmailSmtpAdapter(),
        EmailSendgridAdapter(),
        SmsVonageAdapter(),
    )
}

TYPES = tuple(REGISTRY)
DELIVERING_TYPES = frozenset(t for t, a in REGISTRY.items() if a.delivers)


def get(channel_type: str) -> Adapter | None:
    return REGISTRY.get(channel_type)

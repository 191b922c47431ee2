"""The WhatsApp rules an activity is checked against before it is queued (docs/whatsapp.md):

* a ``template`` activity must name a template synced for the conversation's channel
  (``sync_templates``), approved, with the parameters it takes — else 422
  ``unknown_template`` / ``invalid_template``, nothing stored;
* a free-form ``message`` more than 24 hours after the customer's last inbound message in the
  conversation (WhatsApp's customer-service window) is refused with 409
  ``outside_customer_service_window``, nothing stored: the caller sends a template instead.
  Templates always go. The clock is the gateway's (``Gateway.now_iso``), so tests inject it.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import TYPE_CHECKING

from adapters import templates as tpl
from store import templates
from store.models import Channel, ChannelRef
from store.util import parse_iso

from .errors import Conflict, Unprocessable

if TYPE_CHECKING:
    from .activities import NewActivity

WHATSAPP_TYPES = frozenset({"whatsapp_meta", "whatsapp_infobip"})
WINDOW = timedelta(hours=24)


def check_tx(conn: sqlite3.Connection, primary: Channel | ChannelRef | None, conversation_id: str,
             new: NewActivity, now: str) -> None:
    """Raise when ``new`` may not be queued to the conversation's WhatsApp channel."""
    if primary is None or primary.type not in WHATSAPP_TYPES or new.source_channel_id is not None:
        return
    if new.type == "template":
        raw = new.metadata.get("template")
        use = tpl.read(raw if raw is not None else new.extra.get("value"))
        if isinstance(use, str):
            raise Unprocessable(use, "invalid_template")
        synced = templates.get(conn, primary.id, use.name, use.language)
        if synced is None:
            raise Unprocessable(
                f"no template {use.name!r} in {use.language!r} is synced for this channel "
                "(run the channel's sync_templates action)", "unknown_template")
        problem = tpl.check(use, synced.as_dict())
        if problem:
            raise Unprocessable(problem, "invalid_template")
        return
    if new.type != "message":
        return
    last = templates.last_inbound_at(conn, conversation_id, primary.id)
    if last is None:  # opened by the business: WhatsApp itself refuses free-form (131047)
        return
    if parse_iso(now) - parse_iso(last) > WINDOW:
        raise Conflict(
            f"the customer last wrote at {last}, more than 24 hours ago: outside WhatsApp's "
            "customer-service window only a template message can be sent "
            '(type "template")', "outside_customer_service_window")

"""Channel health (reference §12): every run checks each active external channel's failure rate
over the last hour, records it, and on a change pushes ``health_changed`` on the hub topic
``channel_health`` and alerts the tenant's ``alert_webhook_url``.

The alert is signed like outbound webhooks (Standard Webhooks headers keyed by the channel's
secret, plus ``x-converger-signature``) and retried a few times with backoff — not the
original's unsigned fire-and-forget. It is sent from this job, not through the durable queue:
an alert lost to a crash between the check and the POST is not re-sent (the next change is).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import msgspec

from store import maintenance
from store.maintenance import HealthResult
from store.util import iso

WINDOW = timedelta(minutes=60)
ALERT_TIMEOUT = 10.0
ALERT_DELAYS = (1.0, 5.0, 25.0)  # waits before the 2nd, 3rd and 4th attempts
_encode = msgspec.json.Encoder().encode


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks signature headers for ``body`` (and the original's HMAC header)."""
    key_text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        key = base64.b64decode(key_text)
    except ValueError:
        key = secret.encode()
    signed = f"{msg_id}.{timestamp}.".encode() + body
    sig = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    legacy = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": f"v1,{sig}", "x-converger-signature": f"sha256={legacy}"}


def event_payload(r: HealthResult) -> dict[str, Any]:
    """The ``health_changed`` hub payload (reference §8.2)."""
    return {"channel_id": r.channel_id, "channel_name": r.channel_name, "tenant_id": r.tenant_id,
            "previous_status": r.previous_status, "status": r.status,
            "failure_rate": r.failure_rate, "total_deliveries": r.total_deliveries,
            "failed_deliveries": r.failed_deliveries, "checked_at": r.checked_at}


def alert_body(r: HealthResult) -> dict[str, Any]:
    """The alert webhook's JSON (reference §12)."""
    return {"event": "channel_health_changed", "channel_id": r.channel_id,
            "channel_name": r.channel_name, "tenant_id": r.tenant_id,
            "previous_status": r.previous_status, "new_status": r.status,
            "failure_rate": r.failure_rate, "total_deliveries": r.total_deliveries,
            "failed_deliveries": r.failed_deliveries, "checked_at": r.checked_at}


async def send_alert(http: aiohttp.ClientSession, url: str, secret: str, body: dict[str, Any],
                     log: Any, delays: Sequence[float] = ALERT_DELAYS) -> bool:
    """POST the alert, signed; retry on errors and non-2xx. The webhook id stays the same across
    attempts so the receiver can deduplicate. Returns True once delivered."""
    raw = _encode(body)
    msg_id = f"alert_{uuid.uuid4().hex}"
    for attempt in range(len(delays) + 1):
        headers = {"content-type": "application/json",
                   **sign(secret, msg_id, int(time.time()), raw)}
        try:
            async with http.post(url, data=raw, headers=headers,
                                 timeout=aiohttp.ClientTimeout(total=ALERT_TIMEOUT)) as resp:
                if 200 <= resp.status < 300:
                    return True
                error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        log.warning("health alert to %s failed (attempt %d): %s", url, attempt + 1, error)
        if attempt < len(delays):
            await asyncio.sleep(delays[attempt])
    return False


async def run(ctx: Any, now: datetime, *, alert_delays: Sequence[float] = ALERT_DELAYS) -> list[HealthResult]:
    """One health run at ``now``. Returns every channel's result."""
    results: list[HealthResult] = await ctx.db.write(
        maintenance.check_channels, iso(now - WINDOW), iso(now))
    changed = [r for r in results if r.changed]
    alerts = []
    for r in changed:
        ctx.hub.publish("channel_health", "health_changed", event_payload(r))
        ctx.log.info("Channel health changed for %s (%s): %s -> %s", r.channel_name,
                     r.channel_id, r.previous_status, r.status)
        if r.alert_webhook_url:
            alerts.append(r)
    if alerts:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(
                send_alert(http, r.alert_webhook_url or "", ctx.cipher.decrypt(r.secret_enc),
                           alert_body(r), ctx.log, alert_delays)
                for r in alerts))
    return results

"""Inbound media kept (docs/whatsapp.md, "Inbound media"): a background loop in every process
downloads the files inbound activities name (a Meta media id, an Infobip media URL) with the
channel's credentials, under the outbound policy, into the upload store, and records each
attachment's outcome in the activity itself — ``status`` ``stored`` with a ``contentUrl``
served by ``GET /uploads/<tenant>/<file>`` to the conversation's readers, or ``failed`` with
the ``error``. A provider that does not answer is retried on a schedule like deliveries
(scaled by ``CONVERGER_BACKOFF_SCALE``); an expired id, a file over
``CONVERGER_MAX_UPLOAD_BYTES``, a file that is not what the provider announced, or a type the
attachment does not claim fails at once. The activity is never touched otherwise."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

import adapters
from adapters.base import MediaError, MediaFile
from store import activities, channels, uploads
from store import media as media_store
from store.media import Download
from store.util import iso, parse_iso

from .. import outbound
from ..context import Gateway
from ..domain.channels import channel_info
from ..tasks import cancel_and_wait

RETRY_DELAYS = (2.0, 10.0, 60.0, 300.0, 1800.0)  # seconds before attempts 2…6
LEASE = 120.0  # a claimed download another process may take over after this
POLL = 5.0  # how often a process looks for downloads other processes left due
BATCH = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# The content types an attachment type may turn out to be. Not stickers: WhatsApp's are WebP
# images, Telegram's may be animations (.tgs) or videos (.webm).
MAJOR = {"image": "image", "photo": "image", "audio": "audio", "voice": "audio",
         "video": "video"}


def _safe(name: str) -> str:
    return (_UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1])[:100]) or "file"


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(body)


class MediaFetcher:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="media-downloads")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], self.gw.log, "media downloads")
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                while await self.run_once():
                    pass
            except Exception:  # a broken row must not end the loop
                self.gw.log.exception("media downloads: a pass failed")
            wait = POLL
            due = await self.gw.db.read(media_store.next_due)
            if due is not None:
                ahead = (parse_iso(due) - parse_iso(self.gw.now_iso())).total_seconds()
                wait = max(0.0, min(POLL, ahead))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim and download the due files; how many were attempted."""
        now = self.gw.now_iso()
        lease = iso(parse_iso(now) + timedelta(seconds=LEASE))
        due: list[Download] = await self.gw.db.write(media_store.claim_due, now, lease, BATCH)
        if due:
            await asyncio.gather(*(self._one(d) for d in due))
        return len(due)

    async def _one(self, d: Download) -> None:
        gw = self.gw
        try:
            got = await self._fetch(d)
        except Exception as exc:  # an adapter bug: retried, like a delivery's
            gw.log.exception("media download %s/%s raised", d.activity_id, d.idx)
            got = MediaError(kind="provider", error=f"adapter error: {exc!r}")
        now = gw.now_iso()
        if isinstance(got, MediaFile):
            await self._store(d, got, now)
            return
        if got.kind == "provider" and d.attempts <= len(RETRY_DELAYS):
            delay = RETRY_DELAYS[d.attempts - 1] * gw.settings.backoff_scale
            self._announce(await gw.db.write(lambda c: media_store.finish(
                c, d, status="pending", now=now, error=got.error,
                next_at=iso(parse_iso(now) + timedelta(seconds=delay)),
                patch={"status": "pending", "error": got.error})))
            self.kick()
            return
        self._announce(await gw.db.write(lambda c: media_store.finish(
            c, d, status="failed", now=now, error=got.error,
            patch={"status": "failed", "error": got.error})))

    def _announce(self, event: dict[str, Any] | None) -> None:
        """``attachment_status`` to the conversation's sockets (after commit; in a cluster the
        feed carries it to every process)."""
        if event is not None:
            self.gw.hub.announce(f"conversation:{event['conversation_id']}",
                                 "attachment_status", event)

    async def _fetch(self, d: Download) -> MediaFile | MediaError:
        gw = self.gw
        channel = await gw.db.read(channels.get, d.channel_id)
        adapter = adapters.get(channel.type) if channel is not None else None

        activity = await gw.db.read(activities.get, d.activity_id)
        if channel is None or adapter is None or activity is None \
                or not 0 <= d.idx < len(activity.attachments):
            return MediaError(kind="unsupported", error="the channel or activity is gone")
        att = activity.attachments[d.idx]
        timeout = aiohttp.ClientTimeout(total=gw.settings.webhook_timeout * 3)
        async with outbound.session(gw.settings, timeout) as session:
            got = await adapter.fetch_media(session, channel_info(gw.cipher, channel), att,
                                            gw.settings.max_upload_bytes)
        if isinstance(got, MediaFile):
            want = MAJOR.get(str(att.get("type", "")).lower())
            have = got.content_type.split("/", 1)[0].lower()
            if want is not None and have != want:
                return MediaError(kind="mismatch", error=(
                    f"a {att.get('type')} attachment, but the file is {got.content_type}"))
        return got

    async def _store(self, d: Download, got: MediaFile, now: str) -> None:
        gw = self.gw
        file_name = f"{d.activity_id}_{d.idx}_{_safe(got.name)}"
        path = Path(gw.settings.data_dir) / "uploads" / d.tenant_id / file_name

        activity = await gw.db.read(activities.get, d.activity_id)
        if activity is None:
            return
        try:
            await asyncio.to_thread(_write, path, got.body)
        except FileExistsError:
            pass
        url = f"/uploads/{d.tenant_id}/{file_name}"

        def tx(conn: Any) -> tuple[bool, dict[str, Any] | None]:
            if uploads.by_file(conn, d.tenant_id, file_name) is None and not uploads.insert_within(
                    conn, gw.settings.tenant_upload_quota, id=str(uuid.uuid4()),
                    tenant_id=d.tenant_id, conversation_id=activity.conversation_id,
                    file_name=file_name, name=got.name, content_type=got.content_type,
                    size=len(got.body), now=now):
                return False, media_store.finish(
                    conn, d, status="failed", now=now, error="the tenant's upload quota is full",
                    patch={"status": "failed", "error": "the tenant's upload quota is full"})
            return True, media_store.finish(
                conn, d, status="stored", now=now, file_name=file_name, error=None, patch={
                    "status": "stored", "contentUrl": url, "contentType": got.content_type,
                    "name": got.name, "size": len(got.body), "error": None,
                    # a mail's file, kept inline until now, lives in the upload store instead
                    "content_base64": None})

        kept, event = await gw.db.write(tx)
        if not kept:
            await asyncio.to_thread(path.unlink, True)
        self._announce(event)


def install(app: Any) -> None:
    @app.after_server_start
    async def _start(app: Any) -> None:
        gw: Gateway = app.ctx
        fetcher = MediaFetcher(gw)
        gw.media = fetcher
        fetcher.start()

    @app.before_server_stop
    async def _stop(app: Any) -> None:
        gw: Gateway = app.ctx
        fetcher, gw.media = gw.media, None
        if fetcher is not None:
            await fetcher.stop()

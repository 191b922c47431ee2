"""The echo bot: answers every non-bot message in an echo channel's conversations with the
same text, however the message arrived (REST, sockets, routing) — DESIGN §7.

It listens on ``ctx.on_activity`` (called after commit) and creates the reply through the
normal pipeline, so the reply is stored, broadcast and routed like any other activity.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import OrderedDict
from typing import Any

from adapters.echo import EchoAdapter
from store.models import Activity

from ..pipeline.activities import NewActivity, create

CACHE_SIZE = 10_000


def _conversation_channel(conn: sqlite3.Connection, conversation_id: str) -> tuple[str, str, str] | None:
    row = conn.execute(
        """SELECT c.id, c.type, c.status FROM conversations v JOIN channels c ON c.id = v.channel_id
            WHERE v.id = ?""",
        (conversation_id,),
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


class Echo:
    def __init__(self, app: Any) -> None:
        self.app = app
        # A conversation's channel, and a channel's type, never change: cached, so activities
        # of other channels cost no read after the first.
        self._conv_channel: OrderedDict[str, str] = OrderedDict()
        self._channel_type: dict[str, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def on_activity(self, activity: Activity) -> None:
        """``ctx.on_activity`` hook."""
        if activity.sender == "bot":
            return
        channel_id = self._conv_channel.get(activity.conversation_id)
        if channel_id is not None and self._channel_type.get(channel_id) not in (None, "echo"):
            return
        task = asyncio.create_task(self._reply(activity))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reply(self, activity: Activity) -> None:
        ctx = self.app.ctx
        found = await ctx.db.read(_conversation_channel, activity.conversation_id)
        if found is None:
            return
        channel_id, channel_type, status = found
        self._conv_channel[activity.conversation_id] = channel_id
        if len(self._conv_channel) > CACHE_SIZE:
            self._conv_channel.popitem(last=False)
        self._channel_type[channel_id] = channel_type
        if channel_type != "echo" or status != "active":
            return
        text = EchoAdapter.reply_text(activity.sender, activity.text)
        try:
            await create(self.app, activity.tenant_id, activity.conversation_id,
                         NewActivity(sender="bot", text=text))
        except Exception as exc:  # e.g. the conversation was closed meanwhile
            ctx.log.info("echo in %s skipped: %s", activity.conversation_id, exc)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def install(app: Any) -> None:
    bot = Echo(app)
    app.ctx.on_activity.append(bot.on_activity)

    @app.before_server_stop
    async def _stop_echo(app: Any) -> None:
        await bot.stop()

"""Echo: a bot that answers every non-bot message in its conversations with the same text.

The reply is made by the gateway, in the transaction of the message it answers (an activity
from ``BOT``); the adapter only says what to say.
"""

from __future__ import annotations

from typing import ClassVar

from .base import BaseAdapter


class EchoAdapter(BaseAdapter):
    type: ClassVar[str] = "echo"
    supported_modes: ClassVar[tuple[str, ...]] = ("outbound",)
    BOT: ClassVar[str] = "bot"  # the sender of the replies; never answered

    @staticmethod
    def reply_text(sender: str, text: str | None) -> str | None:
        """The echo reply for a message, or None when no reply is due (a bot's own message)."""
        if sender == EchoAdapter.BOT:
            return None
        return text

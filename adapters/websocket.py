"""WebSocket: clients receive activities from the hub; there is nothing to deliver."""

from __future__ import annotations

from typing import ClassVar

from .base import BaseAdapter


class WebSocketAdapter(BaseAdapter):
    type: ClassVar[str] = "websocket"
    supported_modes: ClassVar[tuple[str, ...]] = ("outbound",)

    def parse_inbound(self, payload: object) -> list:
        from .base import InboundError

        raise InboundError("websocket channel does not receive inbound webhooks")

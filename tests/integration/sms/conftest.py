"""The SMS tests share the Telegram ones' gateway (retry waits scaled down)."""

from tests.integration.telegram.conftest import capi, chat_server

__all__ = ["capi", "chat_server"]

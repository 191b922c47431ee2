"""The Slack integration tests share the Telegram ones' gateway fixtures."""

from tests.integration.telegram.conftest import capi, chat_server

__all__ = ["capi", "chat_server"]

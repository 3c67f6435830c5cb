"""Shared fixtures: real local servers on 127.0.0.1, ephemeral ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.bot_api import FakeBotAPI
from tests.support.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # fixtures: a real PostgreSQL


@pytest.fixture
async def fake_bot_api() -> AsyncIterator[FakeBotAPI]:
    """A running fake Bot API with Telegram's default limits; `.base_url` for the bot."""
    async with FakeBotAPI() as fake:
        yield fake

"""Shared fixtures: real local servers on 127.0.0.1, ephemeral ports."""

from __future__ import annotations

import os
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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With HERALD_TEST_NO_SKIP set (`.ci/run` sets it), a skipped test fails the run: CI
    installs everything the tests need, so a skip there means a missing install step."""
    if not os.environ.get("HERALD_TEST_NO_SKIP"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        names = sorted(
            {getattr(r, "nodeid", "") or str(getattr(r, "location", "")) for r in skipped}
        )
        reporter.write_line(
            f"HERALD_TEST_NO_SKIP: {len(skipped)} tests skipped (CI must run them all): "
            + ", ".join(names[:20]),
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""The running bot (`telegram_bot`, `receive_updates`): PTB's real long polling against the fake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.chat.bot import receive_updates, telegram_bot
from bot.health import Health, PartHealth
from tests.fakes.bot_api import FakeBotAPI
from tests.support.bot import USER, bot_env


@asynccontextmanager
async def running_bot(tmp_path: Path, fake: FakeBotAPI, health: Health) -> AsyncIterator[Any]:
    """`herald run`'s bot part: the Application polling `fake`, its health in `health`.

    The harness's store, renderer and publisher are used; its own Application never polls.
    """
    async with bot_env(tmp_path, fake) as env:
        fake.chat_rate = 1.0  # bot_env turns Telegram's per-chat limit off; it is back on here
        deps = env.deps
        stop = asyncio.Event()
        bot = telegram_bot(
            env.settings, env.store, deps.renderer, env.publisher.real, stop, health=health
        )
        async with bot as app:
            receiving = asyncio.create_task(receive_updates(app, env.settings, "test-secret", stop))
            try:
                yield app
            finally:
                stop.set()
                await receiving
                await health.close()


async def reported(
    health: Health, part: str, predicate: Callable[[PartHealth], bool], timeout_s: float = 20
) -> PartHealth:
    """The first report of `part` that satisfies `predicate` (reports are asked for in turn)."""
    async with asyncio.timeout(timeout_s):
        while True:
            state = next((s for s in await health.report() if s.part == part), None)
            if state is not None and predicate(state):
                return state
            await asyncio.sleep(0.05)


def polls(fake: FakeBotAPI, status: int) -> int:
    return sum(1 for c in fake.calls if c.method == "getUpdates" and c.status == status)


async def test_polling_outlives_a_rejected_token_and_health_shows_telegram_down(
    tmp_path: Path, fake_bot_api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """After a spell of 401s polling resumes and answers /help; meanwhile Telegram was down."""
    fake = fake_bot_api
    health = Health()
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path, fake, health):
        await fake.wait_for(lambda: [c for c in fake.calls if c.method == "deleteWebhook"])
        assert (await reported(health, "telegram", lambda s: True)).up
        fake.unauthorized(for_s=3)
        fake.push_message(USER, USER, "hello")  # ends the poll in flight; nothing answers it
        down = await reported(health, "telegram", lambda s: not s.up)
        assert "HERALD_TELEGRAM_TOKEN" in down.reason
        fake.push_command(USER, USER, "/help")
        await fake.wait_for(lambda: fake.sent_to(USER), timeout=30)
        assert "/settings" in (fake.sent_to(USER)[0].text or "")
        await reported(health, "telegram", lambda s: s.up)
    assert polls(fake, 401) >= 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "HERALD_TELEGRAM_TOKEN" in errors[0].getMessage(), caplog.text
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert not [m for m in ours if fake.token in m]
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_receiving_can_be_cancelled_and_started_again(
    tmp_path: Path, fake_bot_api: FakeBotAPI
) -> None:
    """Cancelled (leadership lost), polling stops; started again, it answers what came
    meanwhile, and nothing taken before is answered twice."""
    fake = fake_bot_api
    first, meanwhile = USER, USER + 1
    async with bot_env(tmp_path, fake) as env:
        stop = asyncio.Event()
        bot = telegram_bot(env.settings, env.store, env.deps.renderer, env.publisher.real, stop)
        async with bot as app:
            receiving = asyncio.create_task(receive_updates(app, env.settings, "key", stop))
            fake.push_command(first, first, "/help")
            await fake.wait_for(lambda: fake.sent_to(first), timeout=20)
            receiving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await receiving
            assert not app.updater.running
            fake.push_command(meanwhile, meanwhile, "/help")  # nobody receives it now
            receiving = asyncio.create_task(receive_updates(app, env.settings, "key", stop))
            await fake.wait_for(lambda: fake.sent_to(meanwhile), timeout=20)
            stop.set()
            await receiving
            assert not app.updater.running
    assert len(fake.sent_to(first)) == 1 and len(fake.sent_to(meanwhile)) == 1

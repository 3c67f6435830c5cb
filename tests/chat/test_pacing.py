"""Replies at Telegram's per-chat pace, through the running bot's real polling and the fake."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.health import Health
from tests.chat.test_bot import running_bot
from tests.fakes.bot_api import FakeBotAPI
from tests.support.bot import USER


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


async def test_a_flood_of_start_from_one_chat_gets_a_few_paced_replies(
    tmp_path: Path, fake_bot_api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """50 /start and a /help in a burst from one chat: a few replies, /help answered, no 429."""
    fake = fake_bot_api
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path, fake, Health()):
        for _ in range(50):
            fake.push_command(USER, USER, "/start")
        fake.push_command(USER, USER, "/help")
        # The first reply: all 51 came in one getUpdates and are in the bot's queue now.
        await fake.wait_for(lambda: fake.sent_to(USER))
    # Stopping the bot first handles every update it has fetched.
    replies = fake.sent_to(USER)
    assert fake.too_many == 0
    assert 2 <= len(replies) <= 6, [r.text for r in replies]
    assert "/settings" in (replies[-1].text or "")  # the newest command is the one answered
    no_tracebacks(caplog)
    skipped = [r.getMessage() for r in caplog.records if "replies skipped" in r.getMessage()]
    assert len(skipped) == 1, caplog.text


async def test_a_429_on_a_reply_is_one_log_line_and_the_reply_follows(
    tmp_path: Path, fake_bot_api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply refused with 429 (a fan-out used the chat's turn) waits it out: one warning."""
    fake = fake_bot_api
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path, fake, Health()) as app:
        for n in range(3):  # messages of a fan-out take the chat's burst
            await app.bot.send_message(USER, f"alert {n}")
        fake.push_command(USER, USER, "/help")
        await fake.wait_for(lambda: len(fake.sent_to(USER)) == 4, timeout=20)
    assert fake.too_many == 1
    assert "/settings" in (fake.sent_to(USER)[-1].text or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings if "wait" in r.getMessage()] != [], caplog.text
    no_tracebacks(caplog)

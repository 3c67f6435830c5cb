"""Webhook mode (HERALD_TELEGRAM_WEBHOOK_URL) through `herald run` and the fake Bot API."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from bot.chat.webhook import secret_token, set_webhook
from bot.errors import ConfigError
from bot.settings import load_settings
from bot.transports.telegram import make_bot
from tests.fakes.bot_api import FakeBotAPI
from tests.support.acceptance import Herald
from tests.support.bot import bot_settings

READER = 7
SECRET_KEY = "webhook-test-secret-key"
HOOK_PATH = "/telegram/updates-hook"


def start_update(update_id: int, chat: int) -> dict[str, object]:
    """A private chat's /start as Telegram posts it."""
    user = {"id": chat, "is_bot": False, "first_name": f"User{chat}"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1000 + update_id,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "private", "first_name": user["first_name"]},
            "from": user,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


def calls(fake: FakeBotAPI, method: str) -> list[dict[str, object]]:
    return [c.params for c in fake.calls if c.method == method and c.status == 200]


def test_the_secret_token_is_what_telegram_accepts() -> None:
    """The derived token is 32–256 characters of [A-Za-z0-9_-], stable, and differs by key."""
    token = secret_token(SECRET_KEY)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", token), token
    assert secret_token(SECRET_KEY) == token
    assert secret_token(SECRET_KEY + "x") != token
    assert SECRET_KEY not in token


async def test_webhook_mode_answers_what_telegram_posts_and_refuses_forgeries(
    tmp_path: Path, fake_bot_api: FakeBotAPI
) -> None:
    """setWebhook gets a ≥ 32-character secret; /start posted by Telegram is answered once,
    a post without the right header gets 401 and no answer; unset again, polling answers."""
    fake = fake_bot_api
    herald = Herald(
        tmp_path,
        HERALD_TELEGRAM_TOKEN=fake.token,
        HERALD_TELEGRAM_API_URL=fake.base_url,
        HERALD_SECRET_KEY=SECRET_KEY,
    )
    hook_url = f"{herald.public_url}{HOOK_PATH}"
    async with (
        herald.run(HERALD_TELEGRAM_WEBHOOK_URL=hook_url) as run,
        httpx.AsyncClient(timeout=10) as client,
    ):
        await fake.wait_for(lambda: calls(fake, "setWebhook"), timeout=15)
        (hook,) = calls(fake, "setWebhook")
        assert hook["url"] == hook_url
        token = str(hook["secret_token"])
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", token)
        assert not calls(fake, "getUpdates")  # webhook mode never polls

        fake.push_command(READER, READER, "/start")  # the fake posts it to the webhook
        await fake.wait_for(lambda: fake.sent_to(READER), timeout=10)
        await fake.wait_for(lambda: any(p.status == 200 for p in fake.webhook_posts))
        assert [p.status for p in fake.webhook_posts] == [200]
        (welcome,) = fake.sent_to(READER)
        assert welcome.method == "sendMessage" and welcome.parse_mode == "HTML"

        other = READER + 1
        body = json.dumps(start_update(9001, other))
        for headers in (
            {},
            {"X-Telegram-Bot-Api-Secret-Token": "a guess"},
            {"X-Telegram-Bot-Api-Secret-Token": token[:-1]},
            {"X-Telegram-Bot-Api-Secret-Token": secret_token(SECRET_KEY + "-other")},
        ):
            headers["content-type"] = "application/json"
            answer = await client.post(hook_url, content=body, headers=headers)
            assert answer.status_code == 401, headers
        right = {"X-Telegram-Bot-Api-Secret-Token": token, "content-type": "application/json"}
        for bad in (b"{not json", b"[1, 2]", b'{"message": {}}', b"x" * (300 * 1024)):
            answer = await client.post(hook_url, content=bad, headers=right)
            assert answer.status_code in (400, 413), bad[:20]
        # A genuine post after the forged ones: it alone is answered.
        answer = await client.post(hook_url, content=json.dumps(start_update(9002, READER + 2)))
        assert answer.status_code == 401
        answer = await client.post(
            hook_url, content=json.dumps(start_update(9003, READER + 3)), headers=right
        )
        assert answer.status_code == 200
        await fake.wait_for(lambda: fake.sent_to(READER + 3), timeout=10)
        assert fake.sent_to(other) == [] and fake.sent_to(READER + 2) == []
        assert len(fake.sent_to(READER)) == 1  # answered once
        assert await run.stop() == 0
    assert token not in run.log and SECRET_KEY not in run.log
    assert "Traceback" not in run.log
    assert fake.webhook is not None  # a stopping process leaves the webhook to the next one

    # Back to long polling: the webhook is deleted first, and polling answers.
    async with herald.run():
        await fake.wait_for(lambda: calls(fake, "deleteWebhook"), timeout=15)
        assert fake.webhook is None
        fake.push_command(READER + 4, READER + 4, "/start")
        await fake.wait_for(lambda: fake.sent_to(READER + 4), timeout=20)
    assert any(c.method == "getUpdates" and c.status == 200 for c in fake.calls)


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://news.example.com/telegram", True),
        ("http://127.0.0.1:8080/telegram", True),  # a local Bot API server posts over http
        ("ftp://news.example.com/telegram", False),
        ("news.example.com/telegram", False),
        ("https:///telegram", False),
        ("https://news.example.com", False),  # no path of its own
        ("https://news.example.com/", False),
        ("https://news.example.com/subscribe", False),  # a page Herald serves
        ("https://news.example.com/unsubscribe/x", False),
        ("https://news.example.com/telegram/hooks/git", True),
    ],
)
def test_the_webhook_url_is_checked_at_start(url: str, accepted: bool) -> None:
    """https:// (and http://) URLs with a path are accepted; others are named and explained."""
    if accepted:
        assert load_settings(_env_file=None, telegram_webhook_url=url).telegram_webhook_url == url
        return
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, telegram_webhook_url=url)
    assert "HERALD_TELEGRAM_WEBHOOK_URL" in str(refused.value)
    assert "https://" in str(refused.value)


def test_a_blank_webhook_url_means_long_polling() -> None:
    """`HERALD_TELEGRAM_WEBHOOK_URL=` in .env is unset: long polling."""
    assert load_settings(_env_file=None, telegram_webhook_url=" ").telegram_webhook_url is None


async def test_a_webhook_url_telegram_refuses_stops_herald_run_with_the_reason(
    tmp_path: Path, fake_bot_api: FakeBotAPI
) -> None:
    """api.telegram.org refuses http:// webhooks: `herald run` exits naming the variable."""
    fake = fake_bot_api
    fake.https_only = True
    herald = Herald(
        tmp_path,
        HERALD_TELEGRAM_TOKEN=fake.token,
        HERALD_TELEGRAM_API_URL=fake.base_url,
        HERALD_TELEGRAM_WEBHOOK_URL="http://news.example.com/telegram",
    )
    run = await herald.run().start()
    try:
        assert await run.wait(timeout=30) != 0
    finally:
        await run.__aexit__()
    assert "HERALD_TELEGRAM_WEBHOOK_URL" in run.log and "https" in run.log.lower()
    assert "Traceback" not in run.log
    assert fake.token not in run.log


async def test_the_secret_token_stays_out_of_debug_logs(
    fake_bot_api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """`herald -v` logs PTB's calls with their parameters, but never the secret token."""
    caplog.set_level(logging.DEBUG)
    async with make_bot(bot_settings(Path("/nonexistent"), fake_bot_api)) as bot:
        await set_webhook(bot, "https://news.example.com/telegram", SECRET_KEY)
    assert fake_bot_api.webhook is not None
    assert fake_bot_api.webhook.secret_token == secret_token(SECRET_KEY)
    assert "setWebhook" in caplog.text  # PTB did log the call
    assert secret_token(SECRET_KEY) not in caplog.text

"""BotTransport sends Herald's messages through the Bot API and maps every failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import telegram
from pydantic import SecretStr

from bot.errors import ChatMigratedError, ImageError, PermanentError, TransientError
from bot.models import Channel, TelegramMessage
from bot.settings import Settings
from bot.transports.aiohttp_request import AiohttpRequest
from bot.transports.telegram import BotTransport, make_bot
from tests.fakes.bot_api import TOKEN, FakeBotAPI
from tests.support.delivery import make_post, make_settings, running

NOTICE = TelegramMessage(
    method="sendMessage",
    text='<b>New post</b>: <a href="https://example.org/p">Title</a>',
    button_text="Read",
    button_url="https://example.org/p",
)
PHOTO = TelegramMessage(
    method="sendPhoto",
    text="<i>Breaking</i> news",
    photo="https://example.org/img.jpg",
    button_text="Read",
    button_url="https://example.org/p",
)


@pytest.fixture
async def bot(fake_bot_api: FakeBotAPI) -> AsyncIterator[telegram.Bot]:
    settings = Settings(telegram_token=SecretStr(TOKEN), telegram_api_url=fake_bot_api.base_url)
    async with make_bot(settings) as bot:
        yield bot


async def test_message_arrives_as_html_with_button(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """A post notice reaches the chat as HTML with an inline URL button and no paid flag."""
    await BotTransport(bot).send("42", NOTICE)
    [sent] = fake_bot_api.sent_to(42)
    assert sent.method == "sendMessage" and sent.text == NOTICE.text
    assert sent.parse_mode == "HTML" and not sent.allow_paid_broadcast
    assert sent.reply_markup == {
        "inline_keyboard": [[{"text": "Read", "url": "https://example.org/p"}]]
    }
    assert '"url": "https://example.org/p"' in sent.params["link_preview_options"]


async def test_paid_photo_sends_caption_and_paid_flag(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """In paid mode a photo message goes out with its caption and allow_paid_broadcast."""
    await BotTransport(bot, paid=True).send("-100500", PHOTO)
    [sent] = fake_bot_api.sent_to(-100500)
    assert sent.method == "sendPhoto" and sent.photo == PHOTO.photo
    assert sent.caption == PHOTO.text and sent.parse_mode == "HTML"
    assert sent.allow_paid_broadcast is True


async def test_faults_map_to_herald_errors(bot: telegram.Bot, fake_bot_api: FakeBotAPI) -> None:
    """Each Bot API failure becomes the Herald error the delivery engine acts on."""
    transport = BotTransport(bot)
    fake_bot_api.chat_rate = 0.2  # slow refill, so the burst below is refused even under load
    fake_bot_api.block(1)
    fake_bot_api.deactivate(2)
    fake_bot_api.not_found(3)
    fake_bot_api.migrate(-4, -1004)
    fake_bot_api.fail(5, times=1, status=502)
    fake_bot_api.fail(6, times=1, status=500)
    fake_bot_api.bad_photo(str(PHOTO.photo))
    for chat in ("1", "2", "3"):
        with pytest.raises(PermanentError) as gone:
            await transport.send(chat, NOTICE)
        assert gone.value.deactivate, chat
    with pytest.raises(ChatMigratedError) as moved:
        await transport.send("-4", NOTICE)
    assert moved.value.new_chat_id == -1004
    for chat in ("5", "6"):
        with pytest.raises(TransientError):
            await transport.send(chat, NOTICE)
    bad_html = TelegramMessage(method="sendMessage", text="<b>unclosed")
    with pytest.raises(PermanentError, match=r"(?i)parse entities") as bad:
        await transport.send("7", bad_html)
    assert not bad.value.deactivate and not isinstance(bad.value, ImageError)
    with pytest.raises(ImageError):
        await transport.send("8", PHOTO)
    await transport.send("8", NOTICE)  # the text-only fallback goes through
    for _ in range(3):
        await transport.send("9", NOTICE)
    with pytest.raises(TransientError) as flood:
        await transport.send("9", NOTICE)
    assert flood.value.retry_after_s is not None and flood.value.retry_after_s >= 1
    assert [s.chat_id for s in fake_bot_api.sent] == [8, 9, 9, 9]


async def test_timed_out_send_backs_off_and_is_not_resent(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """A send that outlasts the read timeout is transient with a backoff of at least that
    timeout (it may still arrive, so no quick resend), and the transport never resends it."""
    fake_bot_api.delay(2.0, chat_id=11)
    with pytest.raises(TransientError, match="did not answer") as slow:
        await BotTransport(bot, read_timeout_s=0.5).send("11", NOTICE)
    assert slow.value.retry_after_s is not None and slow.value.retry_after_s >= 0.5
    await fake_bot_api.wait_for(lambda: fake_bot_api.sent_to(11))  # the slow one still lands
    assert [c.method for c in fake_bot_api.calls if c.params.get("chat_id") == "11"] == [
        "sendMessage"
    ]


async def test_slow_answers_send_each_alert_once(tmp_path: Path) -> None:
    """Answers slower than PTB's 5 s default neither time out nor duplicate a breaking alert."""
    chats = range(1, 6)
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        for chat in chats:
            await rig.store.subscribers.upsert(Channel.TELEGRAM, str(chat))
        fake.delay(6.0)
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        totals = await rig.drained(timeout=40.0)
    assert totals["sent"] == len(chats), totals
    assert sorted(int(s.chat_id) for s in fake.sent) == list(chats)


async def test_dead_servers_and_rejected_tokens_are_transient(fake_bot_api: FakeBotAPI) -> None:
    """A refused connection or a rejected token never drop a message for good."""
    async with FakeBotAPI() as gone:
        dead_url = gone.base_url
    for token, url, match in (
        (TOKEN, dead_url, "unreachable"),
        ("999999:WRONG-token-abcdefghijklmnopqrstuvwx", fake_bot_api.base_url, "TOKEN"),
    ):
        bot = make_bot(Settings(telegram_token=SecretStr(token), telegram_api_url=url))
        # only the request: Bot.initialize() would call getMe, which fails here by design
        async with bot.request:
            with pytest.raises(TransientError, match=match):
                await BotTransport(bot).send("12", NOTICE)


async def test_request_uploads_files_and_polls(fake_bot_api: FakeBotAPI) -> None:
    """The aiohttp request sends multipart uploads and long-polls getUpdates."""
    async with telegram.Bot(TOKEN, base_url=fake_bot_api.base_url, request=AiohttpRequest()) as bot:
        await bot.send_photo(21, b"\x89PNG fake bytes", caption="c")
        fake_bot_api.push_command(21, 21, "/start")
        [update] = await bot.get_updates(timeout=2)
    [sent] = fake_bot_api.sent_to(21)
    assert sent.photo is not None and sent.photo.startswith("<upload")
    assert update.message is not None and update.message.text == "/start"


def test_make_bot_needs_a_token() -> None:
    """Without HERALD_TELEGRAM_TOKEN make_bot names the missing setting."""
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="HERALD_TELEGRAM_TOKEN"):
        make_bot(Settings(telegram_token=None))


async def test_unreadable_answers_are_transient(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """An answer that is not Bot API JSON (cut off, a proxy's page, any status) is transient."""
    transport = BotTransport(bot)
    for status in (200, 200, 400, 403, 502):
        fake_bot_api.garbage(1, status=status)
        with pytest.raises(TransientError) as unreadable:
            await transport.send("31", PHOTO)
        assert "not a Bot API answer" in str(unreadable.value), status
    async with telegram.Bot(TOKEN, base_url=fake_bot_api.base_url) as httpx_bot:  # PTB's own
        fake_bot_api.garbage(1)
        with pytest.raises(TransientError, match="not a Bot API answer"):
            await BotTransport(httpx_bot).send("31", NOTICE)
    await transport.send("32", NOTICE)
    assert [s.chat_id for s in fake_bot_api.sent] == [32]


def tg_settings(tmp_path: Path, fake: FakeBotAPI) -> Settings:
    """Settings for a delivery rig that sends through the fake Bot API (no email rows)."""
    return make_settings(
        tmp_path,
        telegram_token=TOKEN,
        telegram_api_url=fake.base_url,
        smtp_url="smtp://127.0.0.1:1",
    )


async def test_alerts_survive_a_spell_of_garbage(tmp_path: Path) -> None:
    """After many unreadable answers every chat still gets its alert once, as HTML; none fails."""
    chats = range(1, 11)
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        for chat in chats:
            await rig.store.subscribers.upsert(Channel.TELEGRAM, str(chat))
        fake.garbage(25)  # about two and a half unreadable answers per chat
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        totals = await rig.drained()
    assert totals["sent"] == len(chats) and totals["failed"] == 0, totals
    assert sorted(int(s.chat_id) for s in fake.sent) == list(chats)
    assert {s.parse_mode for s in fake.sent} == {"HTML"}
    assert sum(c.description == "garbage" for c in fake.calls) == 25

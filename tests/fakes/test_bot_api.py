"""The fake Bot API answers python-telegram-bot the way Telegram does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import telegram
from aiohttp import web
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, NetworkError, RetryAfter

from tests.fakes.bot_api import TOKEN, FakeBotAPI


@pytest.fixture
async def bot(fake_bot_api: FakeBotAPI) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(TOKEN, base_url=fake_bot_api.base_url) as bot:
        yield bot


async def test_send_message_is_recorded_and_answered(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """A valid HTML message is accepted, returned as a Message and recorded with its options."""
    markup = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Read", url="https://example.org/a")]]
    )
    first = await bot.send_message(42, "<b>Hi</b> &amp; welcome", parse_mode="HTML")
    second = await bot.send_message(42, "again", reply_markup=markup)
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.id == 42 and first.chat.type == "private"
    assert second.reply_markup == markup
    rec = fake_bot_api.sent_to(42)
    assert [r.text for r in rec] == ["<b>Hi</b> &amp; welcome", "again"]
    assert rec[0].parse_mode == "HTML" and rec[1].reply_markup is not None
    assert rec[1].reply_markup["inline_keyboard"][0][0]["url"] == "https://example.org/a"


async def test_bad_html_and_limits_are_rejected(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """Unbalanced HTML, empty text and over-long messages and captions get Telegram's 400s."""
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(1, "<b>open", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(1, " ")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(1, "x" * 4097, parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(1, "https://example.org/p.jpg", caption="y" * 1025)
    assert fake_bot_api.sent == []


async def test_burst_to_one_chat_gets_429_with_retry_after(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """A fourth quick message to one chat gets 429 with retry_after; other chats still work."""
    fake_bot_api.chat_rate = 0.2  # slow refill, so a loaded machine cannot make this pass by luck
    for i in range(3):
        await bot.send_message(7, f"m{i}")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(7, "too fast")
    wait = info.value.retry_after
    assert 1 <= (wait if isinstance(wait, int) else wait.total_seconds()) <= 5
    assert fake_bot_api.too_many == 1
    await bot.send_message(8, "other chat is fine")
    assert len(fake_bot_api.sent) == 4


async def test_global_rate_and_paid_broadcast() -> None:
    """Over 30 msg/s is refused unless allow_paid_broadcast is set."""
    async with FakeBotAPI(global_rate=5, paid_rate=8) as fake:
        async with telegram.Bot(TOKEN, base_url=fake.base_url) as bot:
            for chat in range(5):
                await bot.send_message(100 + chat, "x")
            with pytest.raises(RetryAfter):
                await bot.send_message(200, "x")
            for chat in range(3):
                await bot.send_message(300 + chat, "x", allow_paid_broadcast=True)
            with pytest.raises(RetryAfter):
                await bot.send_message(400, "x", allow_paid_broadcast=True)
        assert fake.too_many == 2
        assert [s.allow_paid_broadcast for s in fake.sent[-3:]] == [True] * 3


async def test_faults_per_chat(bot: telegram.Bot, fake_bot_api: FakeBotAPI) -> None:
    """Blocked, deactivated, missing, migrated and flaky chats fail like Telegram's answers."""
    fake_bot_api.block(1)
    fake_bot_api.deactivate(2)
    fake_bot_api.not_found(3)
    fake_bot_api.migrate(-4, -1004)
    fake_bot_api.fail(5, times=1)
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(1, "x")
    with pytest.raises(Forbidden, match="deactivated"):
        await bot.send_message(2, "x")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(3, "x")
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(-4, "x")
    assert info.value.new_chat_id == -1004
    assert (await bot.send_message(-1004, "x")).chat.type == "supergroup"
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(5, "x")
    await bot.send_message(5, "x")
    assert [s.chat_id for s in fake_bot_api.sent] == [-1004, 5]


async def test_polling_bot_sees_commands_and_callbacks(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """Pushed commands and button presses arrive through getUpdates with offsets honoured."""
    fake_bot_api.set_member(-100, 9, "administrator")
    fake_bot_api.push_command(-100, 9, "/broadcast now", chat_type="supergroup")
    msg = await bot.send_message(5, "pick", reply_markup=None)
    fake_bot_api.push_callback(5, 5, "yes", msg.message_id)
    updates = await bot.get_updates(timeout=1)
    assert len(updates) == 2
    command = updates[0].message
    assert command is not None and command.text == "/broadcast now"
    assert command.parse_entities(["bot_command"]) and command.chat.type == "supergroup"
    assert updates[1].callback_query is not None and updates[1].callback_query.data == "yes"
    again = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert again == ()
    member = await bot.get_chat_member(-100, 9)
    assert member.status == "administrator"
    assert (await bot.get_chat_member(-100, 10)).status == "member"
    waiter = asyncio.create_task(bot.get_updates(offset=updates[-1].update_id + 1, timeout=5))
    await asyncio.sleep(0.05)
    fake_bot_api.push_message(5, 5, "hello")
    late = await asyncio.wait_for(waiter, 2)
    assert late[0].message is not None and late[0].message.text == "hello"


async def test_unknown_method_and_copy(bot: telegram.Bot, fake_bot_api: FakeBotAPI) -> None:
    """Unknown methods are 404; copyMessage re-sends a user's message with its entities."""
    with pytest.raises(telegram.error.EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    source = fake_bot_api.push_message(
        9, 9, "bold news", entities=[{"type": "bold", "offset": 0, "length": 4}]
    )
    copied = await bot.copy_message(11, from_chat_id=9, message_id=source)
    await fake_bot_api.wait_for(lambda: fake_bot_api.sent_to(11))
    assert copied.message_id == 1
    assert fake_bot_api.sent_to(11)[0].text == "bold news"
    assert json.dumps(fake_bot_api.calls[-1].params)


async def test_garbage_answers_are_200s_that_are_not_json(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """While garbage is on, requests get 200 with cut-off JSON or HTML and nothing is sent."""
    fake_bot_api.garbage(2)
    for _ in range(2):
        with pytest.raises(telegram.error.TelegramError, match="Invalid server response"):
            await bot.send_message(3, "x")
    assert fake_bot_api.sent == []
    answers = [(c.status, c.description) for c in fake_bot_api.calls if c.method == "sendMessage"]
    assert answers == [(200, "garbage")] * 2
    await bot.send_message(3, "x")
    assert len(fake_bot_api.sent_to(3)) == 1


async def test_unauthorized_spell_answers_401_then_recovers(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """While the token is revoked every method, getUpdates too, gets 401; then all works again."""
    fake_bot_api.unauthorized(2)
    with pytest.raises(telegram.error.InvalidToken):
        await bot.send_message(4, "x")
    with pytest.raises(telegram.error.InvalidToken):
        await bot.get_updates(timeout=0)
    assert [c.status for c in fake_bot_api.calls[-2:]] == [401, 401]
    fake_bot_api.push_command(4, 4, "/help")
    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == "/help"
    assert (await bot.send_message(4, "x")).chat.id == 4


@asynccontextmanager
async def receiver(
    status: int = 200,
) -> AsyncIterator[tuple[str, list[tuple[str | None, dict[str, Any]]]]]:
    """A webhook endpoint on 127.0.0.1 answering `status`: its URL and what it was posted."""
    got: list[tuple[str | None, dict[str, Any]]] = []  # (secret header, update)

    async def hook(request: web.Request) -> web.Response:
        got.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/tg", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/tg", got
    finally:
        await runner.cleanup()


async def test_webhook_mode_posts_updates_and_refuses_get_updates(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """With a webhook set, updates are POSTed with the secret header and getUpdates gets 409."""
    fake = fake_bot_api
    async with receiver() as (url, got):
        assert await bot.set_webhook(url, secret_token="s3cret_-Token")
        info = await bot.get_webhook_info()
        assert info.url == url
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates(timeout=0)
        fake.push_command(7, 7, "/start")
        await fake.wait_for(lambda: got)
        assert got[0][0] == "s3cret_-Token"
        assert got[0][1]["message"]["text"] == "/start"
        await fake.wait_for(lambda: fake.webhook_posts and fake.webhook_posts[-1].status == 200)
        assert (await bot.get_webhook_info()).pending_update_count == 0
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        fake.push_message(7, 7, "hello")
        updates = await bot.get_updates(timeout=0)
        assert [u.message.text for u in updates if u.message] == ["hello"]
    assert len(got) == 1


async def test_a_failing_webhook_keeps_the_update_and_retries(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """An update answered 401 stays pending and is posted again; the error shows in the info."""
    fake = fake_bot_api
    async with receiver(status=401) as (url, got):
        await bot.set_webhook(url, secret_token="x" * 32)
        fake.push_command(7, 7, "/start")
        await fake.wait_for(lambda: len(got) >= 2)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1
        assert info.last_error_message is not None and "401" in info.last_error_message
        await bot.delete_webhook()
    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates if u.message] == ["/start"]


async def test_set_webhook_checks_url_and_secret_token(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """A secret token with other characters, or http:// where only https:// goes, gets 400."""
    with pytest.raises(BadRequest, match="unallowed characters"):
        await bot.set_webhook("https://example.org/tg", secret_token="no spaces")
    fake_bot_api.https_only = True
    with pytest.raises(BadRequest, match=r"(?i)https url must be provided"):
        await bot.set_webhook("http://example.org/tg")
    assert fake_bot_api.webhook is None


async def test_edits_change_what_the_chat_shows_and_are_recorded(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """Text, caption and photo edits change the message in place; each is recorded once."""
    fake_bot_api.chat_rate = None  # several calls to one chat; limits are tested below
    fake = fake_bot_api
    text = await bot.send_message(5, "old <b>title</b>", parse_mode="HTML")
    photo = await bot.send_photo(5, "https://example.org/a.jpg", caption="old caption")
    await bot.edit_message_text("new <b>title</b>", 5, text.message_id, parse_mode="HTML")
    await bot.edit_message_caption(5, photo.message_id, caption="new caption", parse_mode="HTML")
    assert (fake.message(5, text.message_id) or {})["text"] == "new <b>title</b>"
    assert (fake.message(5, photo.message_id) or {})["caption"] == "new caption"
    media = telegram.InputMediaPhoto(
        "https://example.org/b.jpg", caption="<i>newer</i>", parse_mode="HTML"
    )
    await bot.edit_message_media(media, 5, photo.message_id)
    shown = fake.message(5, photo.message_id) or {}
    assert shown["photo_url"] == "https://example.org/b.jpg" and shown["caption"] == "<i>newer</i>"
    methods = [(s.method, s.message_id) for s in fake.sent_to(5)]
    assert methods[2:] == [
        ("editMessageText", text.message_id),
        ("editMessageCaption", photo.message_id),
        ("editMessageMedia", photo.message_id),
    ]
    assert fake.sent[-1].photo == "https://example.org/b.jpg" and fake.sent[-1].parse_mode == "HTML"


async def test_edits_refused_as_telegram_refuses_them(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """Unknown, unchanged and wrong-kind edits get Telegram's 400s and change nothing."""
    fake_bot_api.chat_rate = None  # several calls to one chat; limits are tested below
    fake = fake_bot_api
    text = await bot.send_message(6, "same")
    photo = await bot.send_photo(6, "https://example.org/a.jpg", caption="cap")
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", 6, 99)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("same", 6, text.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_caption(6, photo.message_id, caption="cap")
    with pytest.raises(BadRequest, match=r"(?i)there is no text in the message to edit"):
        await bot.edit_message_text("x", 6, photo.message_id)
    with pytest.raises(BadRequest, match=r"(?i)there is no caption in the message to edit"):
        await bot.edit_message_caption(6, text.message_id, caption="x")
    assert [s.method for s in fake.sent_to(6)] == ["sendMessage", "sendPhoto"]


async def test_an_edit_without_the_button_removes_it(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """As on Telegram, an edit that leaves out reply_markup takes the inline button away."""
    fake_bot_api.chat_rate = None  # several calls to one chat; limits are tested below
    markup = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Read", url="https://example.org/a")]]
    )
    sent = await bot.send_message(7, "v1", reply_markup=markup)
    await bot.edit_message_text("v2", 7, sent.message_id, reply_markup=markup)
    assert "reply_markup" in (fake_bot_api.message(7, sent.message_id) or {})
    await bot.edit_message_text("v3", 7, sent.message_id)
    assert "reply_markup" not in (fake_bot_api.message(7, sent.message_id) or {})


async def test_delete_within_48_hours_and_not_after(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """A recent message is deleted (then unknown); one aged past 48 hours cannot be."""
    fake_bot_api.chat_rate = None  # several calls to one chat; limits are tested below
    fake = fake_bot_api
    fresh = await bot.send_message(8, "fresh")
    assert await bot.delete_message(8, fresh.message_id)
    assert fake.message(8, fresh.message_id) is None
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(8, fresh.message_id)
    old = await bot.send_message(8, "old")
    fake.age(8, 48 * 3600 + 60)
    with pytest.raises(BadRequest, match=r"(?i)message can't be deleted for everyone"):
        await bot.delete_message(8, old.message_id)
    assert (fake.message(8, old.message_id) or {})["text"] == "old"
    assert [(s.method, s.text) for s in fake.sent_to(8)] == [
        ("sendMessage", "fresh"),
        ("deleteMessage", "fresh"),
        ("sendMessage", "old"),
    ]


async def test_edits_and_deletes_count_in_the_rate_limits(
    bot: telegram.Bot, fake_bot_api: FakeBotAPI
) -> None:
    """Past the per-chat burst, an edit or a delete gets 429 like a send would."""
    fake_bot_api.chat_rate = 0.2  # slow refill, so a loaded machine cannot make this pass by luck
    first = await bot.send_message(9, "a")
    await bot.edit_message_text("b", 9, first.message_id)
    await bot.edit_message_text("c", 9, first.message_id)
    with pytest.raises(RetryAfter):
        await bot.edit_message_text("d", 9, first.message_id)
    with pytest.raises(RetryAfter):
        await bot.delete_message(9, first.message_id)
    assert fake_bot_api.too_many == 2
    assert (fake_bot_api.message(9, first.message_id) or {})["text"] == "c"


async def test_silent_sends_are_visible(bot: telegram.Bot, fake_bot_api: FakeBotAPI) -> None:
    """A send with disable_notification is recorded as silent; an ordinary one is not."""
    await bot.send_message(10, "quiet", disable_notification=True)
    await bot.send_message(10, "loud")
    assert [s.silent for s in fake_bot_api.sent_to(10)] == [True, False]

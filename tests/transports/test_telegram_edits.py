"""BotTransport edits and deletes messages already sent, as a correction needs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.errors import DeleteRefusedError, PermanentError
from bot.models import DELETE, EDIT_CAPTION, EDIT_MEDIA, EDIT_TEXT, KEEP, TelegramMessage
from bot.settings import Settings
from bot.transports.files import FilesTelegram
from bot.transports.telegram import BotTransport, make_bot
from tests.fakes.bot_api import TOKEN, FakeBotAPI

BUTTON = {"inline_keyboard": [[{"text": "Read", "url": "https://example.org/p"}]]}
NOTICE = TelegramMessage(
    method="sendMessage",
    text="<b>Old title</b>",
    button_text="Read",
    button_url="https://example.org/p",
)
PHOTO = TelegramMessage(
    method="sendPhoto",
    text="<b>Old title</b>",
    photo="https://example.org/old.jpg",
    button_text="Read",
    button_url="https://example.org/p",
)


async def new(transport: BotTransport, chat: str, message: TelegramMessage) -> int:
    """Send `message`; the id the chat gave it."""
    message_id = await transport.send(chat, message)
    assert message_id is not None
    return message_id


@pytest.fixture
async def transport(fake_bot_api: FakeBotAPI) -> AsyncIterator[BotTransport]:
    fake_bot_api.chat_rate = None  # several calls to one chat; pacing is delivery's
    settings = Settings(telegram_token=SecretStr(TOKEN), telegram_api_url=fake_bot_api.base_url)
    async with make_bot(settings) as bot:
        yield BotTransport(bot)


async def test_sends_return_the_new_message_id_and_can_be_silent(
    transport: BotTransport, fake_bot_api: FakeBotAPI
) -> None:
    """Each send answers the id the chat gave it; a silent one goes with disable_notification."""
    first = await new(transport, "42", NOTICE)
    second = await transport.send("42", PHOTO, silent=True)
    assert (first, second) == (1, 2)
    assert [(s.message_id, s.silent) for s in fake_bot_api.sent_to(42)] == [(1, False), (2, True)]


async def test_edits_change_the_message_and_keep_its_button(
    transport: BotTransport, fake_bot_api: FakeBotAPI
) -> None:
    """A text edit, a caption edit and a new image change the messages in place, button kept."""
    fake = fake_bot_api
    text_id = await new(transport, "5", NOTICE)
    photo_id = await new(transport, "5", PHOTO)
    edited = replace(NOTICE, method=EDIT_TEXT, text="<b>New title</b>")
    assert await transport.send("5", edited, message_id=text_id) == text_id
    caption = replace(PHOTO, method=EDIT_CAPTION, text="<b>New caption</b>")
    assert await transport.send("5", caption, message_id=photo_id) == photo_id
    assert fake.message(5, photo_id) is not None
    media = replace(PHOTO, method=EDIT_MEDIA, text="<b>New</b>", photo="https://example.org/n.jpg")
    await transport.send("5", media, message_id=photo_id)
    shown_text, shown_photo = fake.message(5, text_id) or {}, fake.message(5, photo_id) or {}
    assert shown_text["text"] == "<b>New title</b>" and shown_text["reply_markup"] == BUTTON
    assert shown_photo["caption"] == "<b>New</b>" and shown_photo["reply_markup"] == BUTTON
    assert shown_photo["photo_url"] == "https://example.org/n.jpg"
    edits = [s for s in fake.sent_to(5) if s.method.startswith("edit")]
    assert [s.method for s in edits] == [
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
    ]
    assert {s.parse_mode for s in edits} == {"HTML"}


async def test_unchanged_and_vanished_messages_count_as_done(
    transport: BotTransport, fake_bot_api: FakeBotAPI
) -> None:
    """An edit that changes nothing, and an edit or delete of a message the reader deleted,
    return normally; KEEP makes no call."""
    sent = await new(transport, "6", NOTICE)
    same = replace(NOTICE, method=EDIT_TEXT)
    assert await transport.send("6", same, message_id=sent) == sent
    assert await transport.send("6", replace(NOTICE, method=EDIT_TEXT), message_id=99) == 99
    assert await transport.send("6", replace(NOTICE, method=DELETE), message_id=99) == 99
    calls = len(fake_bot_api.calls)
    assert await transport.send("6", replace(NOTICE, method=KEEP), message_id=sent) == sent
    assert len(fake_bot_api.calls) == calls
    assert [s.method for s in fake_bot_api.sent_to(6)] == ["sendMessage"]


async def test_delete_within_48_hours_and_refused_after(
    transport: BotTransport, fake_bot_api: FakeBotAPI
) -> None:
    """A fresh message is deleted; one past 48 hours raises DeleteRefusedError, still shown."""
    fresh = await new(transport, "7", NOTICE)
    await transport.send("7", replace(NOTICE, method=DELETE), message_id=fresh)
    assert fake_bot_api.message(7, fresh) is None
    old = await new(transport, "7", NOTICE)
    fake_bot_api.age(7, 49 * 3600)
    with pytest.raises(DeleteRefusedError):
        await transport.send("7", replace(NOTICE, method=DELETE), message_id=old)
    assert fake_bot_api.message(7, old) is not None


async def test_a_caption_edit_of_a_message_sent_as_text_edits_its_text(
    transport: BotTransport, fake_bot_api: FakeBotAPI
) -> None:
    """A post whose image had failed went out as text: its caption edit becomes a text edit."""
    sent = await new(transport, "8", NOTICE)
    fixed = replace(PHOTO, method=EDIT_CAPTION, text="<b>Fixed</b>")
    await transport.send("8", fixed, message_id=sent)
    assert (fake_bot_api.message(8, sent) or {})["text"] == "<b>Fixed</b>"


async def test_an_edit_needs_a_message_id(transport: BotTransport) -> None:
    """An edit without the id of the message it acts on is a permanent error, not a send."""
    with pytest.raises(PermanentError, match="needs the id"):
        await transport.send("9", replace(NOTICE, method=EDIT_TEXT))


async def test_a_message_sent_without_an_id_is_left_alone(
    transport: BotTransport, fake_bot_api: FakeBotAPI
) -> None:
    """Id 0 (sent to the outbox folder, which gives none) has nothing to edit: no call."""
    calls = len(fake_bot_api.calls)
    assert await transport.send("9", replace(NOTICE, method=DELETE), message_id=0) == 0
    assert len(fake_bot_api.calls) == calls


async def test_files_transport_writes_edits_under_their_method(tmp_path: Path) -> None:
    """In the outbox folder an edit is a file named after its method; keep writes none."""
    files = FilesTelegram(tmp_path)
    assert await files.send("42", NOTICE) is None
    edit = replace(NOTICE, method=EDIT_TEXT, text="<b>New</b>")
    assert await files.send("42", edit, message_id=None) is None
    await files.send("42", replace(NOTICE, method=KEEP))
    files_written = listing(tmp_path)
    assert [n for n, _ in files_written] == ["sendMessage.html", "editMessageText.html"]
    assert files_written[1][1] == "<b>New</b>"


def listing(folder: Path) -> list[tuple[str, str]]:
    """The folder's files in order, each as (its method part, its text)."""
    paths = sorted(folder.iterdir())
    return [(p.name.rsplit("-", 1)[1], p.read_text(encoding="utf-8")) for p in paths]

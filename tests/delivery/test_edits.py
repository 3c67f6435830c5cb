"""Corrections through the delivery loop, the SQLite store and the fake Bot API: every part's
message id is kept, and a correction row edits or deletes exactly those messages, paced."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import telegram

from bot.models import (
    DELETE,
    EDIT_CAPTION,
    EDIT_MEDIA,
    EDIT_TEXT,
    KEEP,
    Channel,
    Kind,
    OutboxStatus,
    Rendered,
    TelegramMessage,
)
from bot.outbox import plan
from bot.outbox.plan import Recipient
from bot.store import Store
from tests.fakes.bot_api import TOKEN, FakeBotAPI
from tests.support.delivery import make_settings, running

BUTTON = {"inline_keyboard": [[{"text": "Read", "url": "https://news.example.org/p"}]]}
PHOTO = TelegramMessage(
    "sendPhoto",
    "<b>Storm warning</b>",
    photo="https://news.example.org/storm.jpg",
    button_text="Read",
    button_url="https://news.example.org/p",
)
TEXT = TelegramMessage("sendMessage", "The rest of the story.")
WITHDRAWN = "<i>This post was withdrawn.</i>"


def tg_settings(tmp_path: Path, fake: FakeBotAPI, rate: float = 30.0):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        telegram_token=TOKEN,
        telegram_api_url=fake.base_url,
        telegram_rate=rate,
        smtp_url="smtp://127.0.0.1:1",  # no email rows here
    )


async def queue(
    store: Store, key: str, kind: Kind, parts: tuple[TelegramMessage, ...], chats: list[int]
) -> int:
    """Queue a hand-made job (bypassing the renderer) for some chats; its id."""
    rendered = Rendered(telegram=parts)
    job_id, _ = await store.outbox.create_job(
        key, kind.value, rendered.encode(), title=key, now=datetime.now(UTC)
    )
    recipients = []
    for chat in chats:
        sub = await store.subscribers.upsert(Channel.TELEGRAM, str(chat))
        recipients.append(Recipient.of(sub))
    await store.outbox.add_items(job_id, plan.rows_for(key, kind, rendered, recipients))
    await store.outbox.mark_planned(job_id)
    return job_id


async def correct(store: Store, key: str, parts: tuple[TelegramMessage, ...]) -> int:
    """Queue a correction of the job `post:1` as the Corrector does; rows added."""
    payload = Rendered(telegram=parts).encode()
    job_id, _ = await store.outbox.create_job(
        key, "edit", payload, title=key, now=datetime.now(UTC)
    )
    added = await store.outbox.fan_out_edits(job_id, key, "post:1")
    await store.outbox.mark_planned(job_id)
    return added


def stored_ids(database: Path, key: str) -> dict[str, str]:
    """The message ids each row of job `key` keeps, per chat, as the database has them."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT i.address, i.message_ids FROM outbox_items i"
            " JOIN outbox_jobs j ON j.id = i.job_id WHERE j.key = ?",
            (key,),
        ).fetchall()
    return {str(a): str(ids) for a, ids in rows}


def calls_on(fake: FakeBotAPI, method: str, chat: int) -> list[int]:
    """The message ids `method` was called on in `chat` (answered or not)."""
    return [
        int(c.params["message_id"])
        for c in fake.calls
        if c.method == method and str(c.params.get("chat_id")) == str(chat)
    ]


def acted_on(fake: FakeBotAPI, chat: int) -> list[int]:
    """The message ids any call in `chat` acted on."""
    return [
        int(c.params["message_id"])
        for c in fake.calls
        if "message_id" in c.params and str(c.params.get("chat_id")) == str(chat)
    ]


async def test_a_sent_post_keeps_every_parts_message_id(tmp_path: Path) -> None:
    """Each recipient's row keeps the ids its chat gave the photo and the text, in order."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        fake.push_message(2, 2, "hello")  # chat 2's own message takes id 1 there
        await queue(rig.store, "post:1", Kind.POST, (PHOTO, TEXT), [1, 2, 3])
        rig.delivery.notify()
        totals = await rig.drained()
        assert totals["sent"] == 3
        ids = await asyncio.to_thread(stored_ids, rig.settings.database_path, "post:1")
        assert ids == {"1": "1,2", "2": "2,3", "3": "1,2"}
        assert [s.message_id for s in fake.sent_to(2)] == [2, 3]


async def test_a_correction_edits_the_changed_part_once_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """The changed caption is edited in every chat, once, button kept; the kept text part
    gets no call at all; queuing the correction again adds nothing."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        fake.push_message(2, 2, "hello")
        await queue(rig.store, "post:1", Kind.POST, (PHOTO, TEXT), [1, 2])
        rig.delivery.notify()
        await rig.drained()
        fixed = TelegramMessage(
            EDIT_CAPTION, "<b>Storm warning</b> (updated)", PHOTO.photo, "Read", PHOTO.button_url
        )
        keep = TelegramMessage(KEEP, TEXT.text)
        assert await correct(rig.store, "edit:1:1", (fixed, keep)) == 2
        rig.delivery.notify()
        totals = await rig.drained()
        assert await correct(rig.store, "edit:1:1", (fixed, keep)) == 0
        assert totals["sent"] == 4 and totals["failed"] == 0
        for chat, (photo_id, text_id) in ((1, (1, 2)), (2, (2, 3))):
            shown = fake.message(chat, photo_id) or {}
            assert shown["caption"] == "<b>Storm warning</b> (updated)"
            assert shown["reply_markup"] == BUTTON
            assert (fake.message(chat, text_id) or {})["text"] == TEXT.text
            assert calls_on(fake, "editMessageCaption", chat) == [photo_id]
            assert [c for c in acted_on(fake, chat) if c == text_id] == []
        ids = await asyncio.to_thread(stored_ids, rig.settings.database_path, "edit:1:1")
        assert ids == {"1": "1,2", "2": "2,3"}  # a correction keeps the ids it acted on


async def test_a_new_image_replaces_the_photo(tmp_path: Path) -> None:
    """An image correction swaps the photo and caption in place, the button still there."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        await queue(rig.store, "post:1", Kind.POST, (PHOTO,), [1])
        rig.delivery.notify()
        await rig.drained()
        image = "https://news.example.org/storm-2.jpg"
        media = TelegramMessage(EDIT_MEDIA, "<b>Storm</b>", image, "Read", PHOTO.button_url)
        await correct(rig.store, "edit:1:1", (media,))
        rig.delivery.notify()
        await rig.drained()
        shown = fake.message(1, 1) or {}
        assert shown["photo_url"] == image and shown["caption"] == "<b>Storm</b>"
        assert shown["reply_markup"] == BUTTON


async def test_a_withdrawal_deletes_recent_messages_and_edits_old_ones(tmp_path: Path) -> None:
    """Within 48 hours the messages are deleted; past that, photo and text are edited to the
    withdrawn notice instead, and the rows count as sent."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        await queue(rig.store, "post:1", Kind.POST, (PHOTO, TEXT), [1, 2])
        rig.delivery.notify()
        await rig.drained()
        fake.age(2, 49 * 3600)
        withdraw = (
            TelegramMessage(DELETE, WITHDRAWN, photo=PHOTO.photo),
            TelegramMessage(DELETE, WITHDRAWN),
        )
        await correct(rig.store, "withdraw:1:1", withdraw)
        rig.delivery.notify()
        totals = await rig.drained()
        assert totals["sent"] == 4 and totals["failed"] == 0
        assert fake.message(1, 1) is None and fake.message(1, 2) is None
        assert (fake.message(2, 1) or {})["caption"] == WITHDRAWN
        assert (fake.message(2, 2) or {})["text"] == WITHDRAWN
        assert [s.method for s in fake.sent_to(2)][2:] == ["editMessageCaption", "editMessageText"]


async def test_unchanged_and_vanished_messages_count_as_done(tmp_path: Path) -> None:
    """An edit Telegram finds not modified, and one of a message the reader deleted, are
    done: the rows are sent, none retried or parked."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        await queue(rig.store, "post:1", Kind.POST, (TEXT,), [1, 2])
        rig.delivery.notify()
        await rig.drained()
        async with telegram.Bot(TOKEN, base_url=fake.base_url) as reader:
            await reader.delete_message(2, 1)  # as if the reader had deleted it
        await correct(rig.store, "edit:1:1", (TelegramMessage(EDIT_TEXT, TEXT.text),))
        rig.delivery.notify()
        totals = await rig.drained()
        assert totals[OutboxStatus.SENT] == 4 and totals[OutboxStatus.FAILED] == 0
        answers = [c.description for c in fake.calls if c.method == "editMessageText"]
        assert len(answers) == 2  # one call each, no retry
        assert any("not modified" in a for a in answers) and any("not found" in a for a in answers)
        assert (fake.message(1, 1) or {})["text"] == TEXT.text


async def test_corrections_keep_the_rate_limits(tmp_path: Path) -> None:
    """A correction to 40 chats never goes above the send rate and draws no 429; three edits
    in one chat go a second apart."""
    async with (
        FakeBotAPI(chat_burst=1) as fake,
        running(tg_settings(tmp_path, fake, rate=20)) as rig,
    ):
        chats = list(range(1, 41))
        await queue(rig.store, "post:1", Kind.POST, (TEXT,), chats)
        await queue(rig.store, "post:2", Kind.POST, (TEXT, TEXT, TEXT), [100])
        rig.delivery.notify()
        await rig.drained(timeout=30)
        start = len(fake.sent)
        await correct(rig.store, "edit:1:1", (TelegramMessage(EDIT_TEXT, "Fixed."),))
        payload = Rendered(telegram=(TelegramMessage(EDIT_TEXT, "Fixed."),) * 3).encode()
        job_id, _ = await rig.store.outbox.create_job(
            "edit:2:1", "edit", payload, title="edit", now=datetime.now(UTC)
        )
        assert await rig.store.outbox.fan_out_edits(job_id, "edit:2:1", "post:2") == 1
        await rig.store.outbox.mark_planned(job_id)
        rig.delivery.notify()
        await rig.drained(timeout=30)
        edits = fake.sent[start:]
        assert len(edits) == 43 and {s.method for s in edits} == {"editMessageText"}
        assert fake.too_many == 0
        assert max_per_second([s.at for s in edits]) <= 20
        times = [s.at for s in fake.sent_to(100) if s.method == "editMessageText"]
        assert len(times) == 3 and all(b - a >= 0.99 for a, b in itertools.pairwise(times))


async def test_in_paid_mode_corrections_keep_to_the_free_rate(tmp_path: Path) -> None:
    """Edits carry no allow_paid_broadcast: at rate 1000, right after a paid fan-out, a
    correction to 100 chats waits out the paid sends' second and then stays under Telegram's
    30 a second, drawing no 429."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake, rate=1000)) as rig:
        chats = list(range(1, 101))
        await queue(rig.store, "post:1", Kind.POST, (TEXT,), chats)
        rig.delivery.notify()
        await rig.drained(timeout=30)
        assert all(s.allow_paid_broadcast for s in fake.sent)
        start = len(fake.sent)
        await correct(rig.store, "edit:1:1", (TelegramMessage(EDIT_TEXT, "Fixed."),))
        rig.delivery.notify()
        await rig.drained(timeout=30)
        edits = fake.sent[start:]
        assert len(edits) == 100 and {s.method for s in edits} == {"editMessageText"}
        assert fake.too_many == 0
        assert max_per_second([s.at for s in edits]) <= 30


async def test_in_paid_mode_corrections_wait_out_paid_sends_that_arrived_late(
    tmp_path: Path,
) -> None:
    """The way to Telegram took 0.3 s during the paid fan-out, so its sends arrived well after
    they started; a correction right after it still meets no second holding 30 calls."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake, rate=1000)) as rig:
        chats = list(range(1, 101))
        await queue(rig.store, "post:1", Kind.POST, (TEXT,), chats)
        fake.delay(0.3)
        rig.delivery.notify()
        await rig.drained(timeout=30)
        fake.delay(0.0)
        start = len(fake.sent)
        await correct(rig.store, "edit:1:1", (TelegramMessage(EDIT_TEXT, "Fixed."),))
        rig.delivery.notify()
        await rig.drained(timeout=30)
        assert len(fake.sent) - start == 100
        assert fake.too_many == 0
        assert max_per_second([s.at for s in fake.sent]) > 30  # the paid sends, not the edits


async def test_processes_sharing_a_database_keep_corrections_to_the_free_rate_together(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two processes on PostgreSQL in paid mode: a correction to 150 chats goes out at the
    free rate for both together (each alone would take 28.5 a second), right after the
    paid fan-out, with no 429."""
    async with FakeBotAPI() as fake:
        settings = tg_settings(tmp_path, fake, rate=1000).model_copy(
            update={"database_url": postgres_url}
        )
        async with running(settings) as one, running(settings) as two:
            chats = list(range(1, 151))
            await queue(one.store, "post:1", Kind.POST, (TEXT,), chats)
            one.delivery.notify()
            two.delivery.notify()
            await one.drained(timeout=30)  # every send written back with its message id
            assert len(fake.sent) == len(chats)
            start = len(fake.sent)
            assert (
                await correct(one.store, "edit:1:1", (TelegramMessage(EDIT_TEXT, "Fixed."),)) == 150
            )
            one.delivery.notify()
            two.delivery.notify()
            await one.drained(timeout=30)
        edits = fake.sent[start:]
        assert len(edits) == len(chats)
        times = sorted(s.at for s in edits)
        per_s = (len(times) - 1) / (times[-1] - times[0])
        print(
            f"\ntwo processes: {len(edits)} edits at {per_s:.1f}/s,"
            f" at most {max_per_second(times)} in a second, {fake.too_many} x 429"
        )
        assert {s.method for s in edits} == {"editMessageText"}
        assert fake.too_many == 0
        assert max_per_second(times) <= 30


async def test_without_a_token_corrections_are_written_to_the_outbox_folder(
    tmp_path: Path,
) -> None:
    """In outbox mode a correction is a file per edit, named after its method."""
    settings = make_settings(tmp_path)
    async with running(settings) as rig:
        await queue(rig.store, "post:1", Kind.POST, (TEXT,), [7])
        rig.delivery.notify()
        await rig.drained()
        await correct(rig.store, "edit:1:1", (TelegramMessage(EDIT_TEXT, "Fixed."),))
        rig.delivery.notify()
        await rig.drained()
    written = await asyncio.to_thread(outbox_files, settings.outbox_dir / "telegram")
    assert written == [("7-sendMessage.html", TEXT.text), ("7-editMessageText.html", "Fixed.")]


def outbox_files(folder: Path) -> list[tuple[str, str]]:
    """(chat-method part of the name, text) of each file in the folder, oldest first."""
    return [
        ("-".join(p.name.split("-")[-2:]), p.read_text(encoding="utf-8"))
        for p in sorted(folder.iterdir())
    ]


def max_per_second(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best

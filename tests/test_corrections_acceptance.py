"""End to end: corrections through the real `herald run`, the fake Bot API and SQLite."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from tests.fakes.bot_api import TOKEN, FakeBotAPI, Sent
from tests.support.acceptance import (
    Herald,
    files_under,
    post_text,
    recent,
    sample_breaking,
    visible,
)

CHATS: tuple[int | str, ...] = (3001, 3002, 3003, "@herald_news")
SUBSCRIBERS = "channel,address,breaking,daily\n" + "".join(
    f"telegram,{chat},yes,no\n" for chat in CHATS if isinstance(chat, int)
)
ARRIVAL_S = 10.0  # watcher, corrector and delivery on two busy cores
QUIET_S = 1.5  # how long we watch for something that must not happen
EDITS = {"editMessageText", "editMessageCaption", "editMessageMedia", "deleteMessage"}
SENDS = {"sendMessage", "sendPhoto"}
TWO_DAYS_S = 49 * 3600
SLOW_S = 8.0  # the way to a slow chat: time enough for the watcher to see a correction


def breaking_sample(title: str, when: datetime) -> str:
    """The shared sample post (with its image) as a breaking post."""
    return sample_breaking(title, when).replace("---\n", "---\nbreaking: true\n", 1)


def shown(message: dict[str, object] | None) -> str:
    """What the reader sees of a message in the chat now."""
    assert message is not None
    return visible(str(message.get("text") or message.get("caption") or ""))


async def herald_with_readers(tmp_path: Path, fake: FakeBotAPI, **env: str) -> Herald:
    """A Herald on the fake Bot API with the chats of SUBSCRIBERS imported."""
    herald = Herald(
        tmp_path, HERALD_TELEGRAM_TOKEN=TOKEN, HERALD_TELEGRAM_API_URL=fake.base_url, **env
    )
    (tmp_path / "subscribers.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    code, _, err = await herald.cli("subscribers", "import", str(tmp_path / "subscribers.csv"))
    assert code == 0, err
    return herald


async def test_corrections_edit_every_alert_once_and_withdrawals_delete(tmp_path: Path) -> None:
    """A corrected title edits each chat's alert once, marked updated, with no new message
    and no email; an edit the alert does not show makes no call; `published: false`
    deletes the alerts; a deleted post's alert too old to delete is edited to withdrawn."""
    async with FakeBotAPI() as fake:
        herald = await herald_with_readers(tmp_path, fake, HERALD_TELEGRAM_CHANNEL="@herald_news")
        mail = herald.outbox / "email"

        def sends(chat: int | str, title: str) -> list[Sent]:
            return [
                s
                for s in fake.sent_to(chat)
                if s.method in SENDS and title in visible(s.text or s.caption or "")
            ]

        def edit_calls() -> int:
            return sum(1 for c in fake.calls if c.method in EDITS)

        async def announce(name: str, text: str, title: str) -> dict[int | str, int]:
            """Write a post; wait for its alert in every chat; chat → the alert's id."""
            herald.write_post(name, text)
            await fake.wait_for(lambda: all(sends(c, title) for c in CHATS), ARRIVAL_S)
            return {c: sends(c, title)[0].message_id for c in CHATS}

        when = recent()
        async with herald.run() as run:
            # 1. A title corrected in the file: each alert edited once, in place.
            first = f"{when:%Y-%m-%d}-coalition.md"
            alerts = await announce(first, breaking_sample("Syria joins", when), "Syria joins")
            emails, count = files_under(mail), len(fake.sent)
            herald.write_post(first, breaking_sample("Syria to join the coalition", when))

            def edited(chat: int | str) -> list[Sent]:
                return [
                    s
                    for s in fake.sent_to(chat)
                    if s.method in EDITS and s.message_id == alerts[chat]
                ]

            await fake.wait_for(lambda: all(edited(c) for c in CHATS), ARRIVAL_S)
            await asyncio.sleep(QUIET_S)
            for chat in CHATS:
                (edit,) = edited(chat)
                assert edit.method == "editMessageCaption"  # the alert is a photo
                now = shown(fake.message(chat, alerts[chat]))
                assert "Syria to join the coalition" in now and "Updated" in now
            assert len(fake.sent) == count + len(CHATS)  # edits only: nothing new was sent
            assert files_under(mail) == emails  # and no email
            await run.wait_line(lambda line: "corrections: post" in line and "chats" in line)

            # 2. A change the alert does not show (the body past the excerpt): no call at all.
            calls = edit_calls()
            path = herald.posts / first
            path.write_text(path.read_text() + "\nOne more paragraph.\n", encoding="utf-8")
            second = f"{when:%Y-%m-%d}-bridge.md"
            text = post_text("Bridge closed", "The bridge is shut.", when, breaking="true")
            bridge = await announce(second, text, "Bridge closed")  # after the edit was read
            await asyncio.sleep(QUIET_S)
            assert edit_calls() == calls

            # 3. `published: false`: every alert deleted.
            herald.write_post(second, text.replace("breaking: true", "published: false"))
            await fake.wait_for(
                lambda: all(fake.message(c, bridge[c]) is None for c in CHATS), ARRIVAL_S
            )

            # 4. A deleted post: alerts deleted, or edited to withdrawn past 48 hours.
            third = f"{when:%Y-%m-%d}-storm.md"
            storm_text = post_text("Storm warning", "Stay inside.", when, breaking="true")
            storm = await announce(third, storm_text, "Storm warning")
            fake.age(3001, TWO_DAYS_S)
            (herald.posts / third).unlink()
            await fake.wait_for(
                lambda: (
                    "withdrawn" in shown(fake.message(3001, storm[3001]))
                    and all(fake.message(c, storm[c]) is None for c in CHATS[1:])
                ),
                ARRIVAL_S,
            )
            assert len(files_under(mail)) == len(emails) + 2  # the two new posts, nothing else
            assert await run.stop() == 0

        code, out, err = await herald.cli("stats")
        assert code == 0, err
        line = next(x for x in out.splitlines() if x.startswith("corrections"))
        assert "posts corrected 1" in line and "withdrawn 2" in line, line


async def test_an_alert_still_on_its_way_when_corrected_is_edited_once_it_arrives(
    tmp_path: Path,
) -> None:
    """The way to one chat is slow: its alert is in flight, with the first title, when the
    newsroom corrects it. Once it has arrived it is edited like every other chat's; no chat
    gets a second alert."""
    slow = 3001
    async with FakeBotAPI() as fake:
        herald = await herald_with_readers(tmp_path, fake)
        chats = [c for c in CHATS if isinstance(c, int)]
        fake.delay(SLOW_S, chat_id=slow)
        when = recent()
        name = f"{when:%Y-%m-%d}-coalition.md"
        async with herald.run() as run:
            herald.write_post(name, breaking_sample("Syria joins", when))
            await fake.wait_for(lambda: all(fake.sent_to(c) for c in chats if c != slow), ARRIVAL_S)
            assert not fake.sent_to(slow)  # still on its way
            herald.write_post(name, breaking_sample("Syria to join the coalition", when))

            def corrected(chat: int) -> bool:
                sent = [s for s in fake.sent_to(chat) if s.method in SENDS]
                message = fake.message(chat, sent[0].message_id) if sent else None
                return message is not None and "Syria to join" in shown(message)

            await fake.wait_for(lambda: all(corrected(c) for c in chats), ARRIVAL_S + SLOW_S)
            await asyncio.sleep(QUIET_S)
            for chat in chats:
                sends = [s for s in fake.sent_to(chat) if s.method in SENDS]
                edits = [s for s in fake.sent_to(chat) if s.method in EDITS]
                assert len(sends) == 1 and len(edits) == 1, (chat, sends, edits)
            (sent,) = [s for s in fake.sent_to(slow) if s.method in SENDS]
            assert "Syria joins" in visible(sent.text or sent.caption or "")  # sent as it was
            await run.wait_line(lambda line: "sent the earlier text" in line)
            assert await run.stop() == 0


async def test_a_post_published_again_after_its_withdrawal_is_announced_again(
    tmp_path: Path,
) -> None:
    """`published: false` deletes the alerts; the post published again (its title mended)
    brings every chat a new alert, once, and no second email."""
    async with FakeBotAPI() as fake:
        herald = await herald_with_readers(tmp_path, fake)
        chats = [c for c in CHATS if isinstance(c, int)]
        mail = herald.outbox / "email"
        when = recent()
        name = f"{when:%Y-%m-%d}-bridge.md"
        text = post_text("Bridge closed", "The bridge is shut.", when, breaking="true")

        def alerts(chat: int, title: str) -> list[Sent]:
            return [
                s
                for s in fake.sent_to(chat)
                if s.method in SENDS and title in visible(s.text or s.caption or "")
            ]

        async with herald.run() as run:
            herald.write_post(name, text)
            await fake.wait_for(lambda: all(alerts(c, "Bridge closed") for c in chats), ARRIVAL_S)
            emails = files_under(mail)
            first = {c: alerts(c, "Bridge closed")[0].message_id for c in chats}
            herald.write_post(name, text.replace("breaking: true", "published: false"))
            await fake.wait_for(
                lambda: all(fake.message(c, first[c]) is None for c in chats), ARRIVAL_S
            )
            herald.write_post(name, text.replace("Bridge closed", "Bridge closed until Monday"))
            await fake.wait_for(
                lambda: all(alerts(c, "Bridge closed until Monday") for c in chats), ARRIVAL_S
            )
            await asyncio.sleep(QUIET_S)
            for chat in chats:
                (again,) = alerts(chat, "Bridge closed until Monday")
                assert again.message_id != first[chat] and fake.message(chat, again.message_id)
                assert len(alerts(chat, "Bridge closed")) == 2  # the first, and this one
            assert files_under(mail) == emails
            await run.wait_line(lambda line: "published again" in line)
            assert await run.stop() == 0

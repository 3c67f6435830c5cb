"""Reader choices in Telegram (/topics, /quiet, /digest, /timezone) through a real PTB
Application and the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.models import Post
from tests.fakes.bot_api import FakeBotAPI, Sent
from tests.support.bot import GROUP, USER, Env, bot_env, buttons, edits

LONG = "Économie et société · " * 10  # 220 characters, many of them two bytes in UTF-8


@pytest.fixture
async def env(tmp_path: Path, fake_bot_api: FakeBotAPI) -> AsyncIterator[Env]:
    async with bot_env(tmp_path, fake_bot_api) as env:
        yield env


async def seen_posts(env: Env, *topics: Sequence[str]) -> None:
    """Record one announced post per list of categories, so the offer comes from them."""
    posts = [
        Post(
            path=f"2026-01-0{i + 1}-p{i}.md",
            slug=f"p{i}",
            title=f"Post {i}",
            date=datetime(2026, 1, i + 1, 9, tzinfo=UTC),
            url=f"https://news.example.com/p{i}.html",
            body="",
            excerpt="",
            categories=tuple(cats),
        )
        for i, cats in enumerate(topics)
    ]
    await env.store.posts.record(posts, announced=True, now=datetime.now(UTC))


def text_of(sent: Sent) -> str:
    return sent.text or ""


def topic_buttons(sent: Sent) -> dict[str, str]:
    """Label → callback data of the topic keyboard."""
    return dict(buttons(sent))


async def test_topics_toggle_edits_the_message_in_place_and_is_stored(env: Env) -> None:
    """/topics lists the posts' topics (most used first, two per row); each press ticks or
    unticks one and edits that same message; "All topics" clears the choice."""
    await seen_posts(env, ["World", "Sport"], ["World"], ["Science"])
    await env.command(USER, USER, "/start")
    (shown,) = await env.command(USER, USER, "/topics")
    assert "Nothing chosen" in text_of(shown)
    rows = shown.reply_markup["inline_keyboard"] if shown.reply_markup else []
    assert rows[0][0]["text"] == "World"  # the most used first
    assert [len(r) for r in rows] == [2, 1, 1] and rows[-1][0]["text"] == "✓ All topics"
    labels = topic_buttons(shown)

    answer = await env.press(USER, USER, labels["World"], shown.message_id)
    assert answer.get("text") == "Saved."
    (edit,) = edits(env, USER)
    assert edit.message_id == shown.message_id
    assert "about: World." in text_of(edit)
    assert "✓ World" in topic_buttons(edit) and "All topics" in topic_buttons(edit)
    assert (await env.sub(USER)).topics == ("world",)

    await env.press(USER, USER, topic_buttons(edit)["Science"], shown.message_id)
    assert (await env.sub(USER)).topics == ("science", "world")
    await env.press(USER, USER, topic_buttons(edits(env, USER)[-1])["✓ World"], shown.message_id)
    assert (await env.sub(USER)).topics == ("science",)

    await env.press(USER, USER, "tp:all", shown.message_id)
    last = edits(env, USER)[-1]
    assert (await env.sub(USER)).topics == ()
    assert "Nothing chosen" in text_of(last) and "✓ All topics" in topic_buttons(last)
    (settings,) = await env.command(USER, USER, "/settings")
    assert "Topics: all" in text_of(settings)


async def test_a_button_from_an_older_offer_changes_nothing(env: Env) -> None:
    """A press whose topic no longer sits at that place in the offer toggles nothing and
    shows the list as it is now."""
    await seen_posts(env, ["World"])
    await env.command(USER, USER, "/start")
    (shown,) = await env.command(USER, USER, "/topics")
    stale = topic_buttons(shown)["World"].rsplit(":", 1)[0] + ":00000000"
    answer = await env.press(USER, USER, stale, shown.message_id)
    assert "changed" in answer.get("text", "")
    assert (await env.sub(USER)).topics == ()
    answer = await env.press(USER, USER, "tp:7:abc", shown.message_id)
    assert "changed" in answer.get("text", "") and (await env.sub(USER)).topics == ()


async def test_long_non_ascii_topics_fit_telegram_limits_and_toggle(env: Env) -> None:
    """A 220-character non-ASCII topic gets a short button label and callback data within
    64 bytes, and pressing it chooses exactly that topic; chosen topics show in /settings."""
    await seen_posts(env, [LONG, "Ünïcödé"])
    await env.command(USER, USER, "/start")
    (shown,) = await env.command(USER, USER, "/topics")
    for label, data in buttons(shown):
        assert len(data.encode()) <= 64 and len(label.encode()) <= 64, (label, data)
    long_label, long_data = buttons(shown)[0]
    assert long_label.startswith("Économie") and long_label.endswith("…")
    await env.press(USER, USER, long_data, shown.message_id)
    assert (await env.sub(USER)).topics == (" ".join(LONG.split()).casefold(),)
    await env.press(USER, USER, topic_buttons(shown)["Ünïcödé"], shown.message_id)
    (settings,) = await env.command(USER, USER, "/settings")
    assert "Ünïcödé" in text_of(settings)


async def test_topics_without_any_offer_or_subscription(env: Env) -> None:
    """With no topics seen yet /topics says so without buttons; an unsubscribed chat is
    told to /start first."""
    (hint,) = await env.command(USER, USER, "/topics")
    assert "/start" in text_of(hint)
    await env.command(USER, USER, "/start")
    (empty,) = await env.command(USER, USER, "/topics")
    assert "No topics to choose from yet" in text_of(empty)
    assert empty.reply_markup is None


@pytest.mark.parametrize(
    ("argument", "stored", "shown"),
    [
        ("22:00-07:00", "22:00-07:00", "22:00–07:00"),
        ("7:5-9:00", "07:05-09:00", "07:05–09:00"),
        ("23:30–06:15", "23:30-06:15", "23:30–06:15"),
    ],
)
async def test_quiet_sets_a_window(env: Env, argument: str, stored: str, shown: str) -> None:
    """/quiet with a window (it may cross midnight) stores it normalised and confirms it
    in the chat's time zone."""
    await env.command(USER, USER, "/start")
    (reply,) = await env.command(USER, USER, f"/quiet {argument}")
    assert f"Quiet hours set: <b>{shown}</b> (Europe/London time)" in text_of(reply)
    assert (await env.sub(USER)).quiet == stored
    (settings,) = await env.command(USER, USER, "/settings")
    assert f"Quiet hours: {shown}" in text_of(settings)


@pytest.mark.parametrize("argument", ["22:00", "25:00-07:00", "late", "22:00-22:00", "<b>-x"])
async def test_quiet_refuses_a_malformed_window(env: Env, argument: str) -> None:
    """A malformed window gets a short reply with the format, and the quiet hours stay."""
    await env.command(USER, USER, "/start")
    await env.command(USER, USER, "/quiet 22:00-07:00")
    (reply,) = await env.command(USER, USER, f"/quiet {argument}")
    assert "HH:MM" in text_of(reply) and "Nothing was changed" in text_of(reply)
    assert "<b>-x" not in text_of(reply)  # echoed escaped
    assert (await env.sub(USER)).quiet == "22:00-07:00"


async def test_quiet_off_and_without_argument(env: Env) -> None:
    """/quiet alone shows the window and the usage; /quiet off ends it."""
    await env.command(USER, USER, "/start")
    (none,) = await env.command(USER, USER, "/quiet")
    assert "No quiet hours" in text_of(none) and "/quiet 22:00-07:00" in text_of(none)
    await env.command(USER, USER, "/quiet 22:00-07:00")
    (current,) = await env.command(USER, USER, "/quiet")
    assert "Quiet hours: <b>22:00–07:00</b>" in text_of(current)
    (off,) = await env.command(USER, USER, "/quiet OFF")
    assert "Quiet hours are off" in text_of(off)
    assert (await env.sub(USER)).quiet is None


async def test_digest_time_set_shown_reset_and_refused(env: Env) -> None:
    """/digest 18:30 stores the chat's time; /digest alone shows it; a bad time is refused
    with the format; /digest default goes back to the site's time."""
    await env.command(USER, USER, "/start")
    (shown,) = await env.command(USER, USER, "/digest")
    assert "Daily digest at <b>08:00</b> (Europe/London time), the site's time" in text_of(shown)
    (saved,) = await env.command(USER, USER, "/digest 18:30")
    assert "Digest time set: <b>18:30</b>" in text_of(saved)
    assert (await env.sub(USER)).digest_at == "18:30"
    for bad in ("25:00", "18h30", "off", "18:30:00"):
        (refused,) = await env.command(USER, USER, f"/digest {bad}")
        assert "not a time of day" in text_of(refused) and "/digest 18:30" in text_of(refused)
    assert (await env.sub(USER)).digest_at == "18:30"
    (settings,) = await env.command(USER, USER, "/settings")
    assert "Daily digest at 18:30: on" in text_of(settings)
    (reset,) = await env.command(USER, USER, "/digest default")
    assert "back to the site's: <b>08:00</b>" in text_of(reset)
    assert (await env.sub(USER)).digest_at is None


async def test_digest_time_reminds_when_the_digest_is_off(env: Env) -> None:
    """Setting a digest time with the digest off says how to turn it on."""
    (welcome,) = await env.command(USER, USER, "/start")
    await env.press(USER, USER, "set:daily", welcome.message_id)
    (reply,) = await env.command(USER, USER, "/digest 7:00")
    assert "<b>07:00</b>" in text_of(reply) and "turn it on in /settings" in text_of(reply)


async def test_timezone_set_refused_and_reset(env: Env) -> None:
    """/timezone takes IANA names in any case; abbreviations, offsets and nonsense get a
    polite error with an example and change nothing; /timezone default resets it."""
    await env.command(USER, USER, "/start")
    (shown,) = await env.command(USER, USER, "/timezone")
    assert "<b>Europe/London</b> (the site's)" in text_of(shown)
    (saved,) = await env.command(USER, USER, "/timezone europe/berlin")
    assert "Time zone set: <b>Europe/Berlin</b>" in text_of(saved)
    assert (await env.sub(USER)).tz == "Europe/Berlin"
    for bad in ("CET", "+02:00", "Mars/Olympus", "Europe/Berlin; DROP"):
        (refused,) = await env.command(USER, USER, f"/timezone {bad}")
        assert "Sorry" in text_of(refused) and "Europe/Berlin" in text_of(refused)
    assert (await env.sub(USER)).tz == "Europe/Berlin"
    await env.command(USER, USER, "/quiet 22:00-07:00")
    (settings,) = await env.command(USER, USER, "/settings")
    assert "Time zone: Europe/Berlin" in text_of(settings)
    (quiet,) = await env.command(USER, USER, "/quiet")
    assert "(Europe/Berlin time)" in text_of(quiet)
    (reset,) = await env.command(USER, USER, "/timezone default")
    assert "back to the site's: <b>Europe/London</b>" in text_of(reset)
    assert (await env.sub(USER)).tz is None


async def test_in_a_group_only_admins_change_choices(env: Env) -> None:
    """In a group a member may look at the choices but not change them; an admin may."""
    member, owner = 100, 101
    env.fake.set_member(GROUP, owner, "creator")
    await seen_posts(env, ["World"])
    await env.command(GROUP, owner, "/start", chat_type="group")
    for command in ("/quiet 22:00-07:00", "/digest 18:30", "/timezone Europe/Berlin"):
        (refused,) = await env.command(GROUP, member, command, chat_type="group")
        assert "Only the admins" in text_of(refused), command
    (shown,) = await env.command(GROUP, member, "/quiet", chat_type="group")
    assert "No quiet hours" in text_of(shown)
    (topics,) = await env.command(GROUP, member, "/topics", chat_type="group")
    assert "This group's topics" in text_of(topics)
    answer = await env.press(GROUP, member, topic_buttons(topics)["World"], topics.message_id)
    assert answer.get("show_alert") in (True, "true") and "admins" in answer.get("text", "")
    assert edits(env, GROUP) == []
    sub = await env.sub(GROUP)
    assert (sub.topics, sub.quiet, sub.digest_at, sub.tz) == ((), None, None, None)

    await env.press(GROUP, owner, topic_buttons(topics)["World"], topics.message_id)
    await env.command(GROUP, owner, "/quiet 22:00-07:00", chat_type="group")
    await env.command(GROUP, owner, "/digest 18:30", chat_type="group")
    await env.command(GROUP, owner, "/timezone Asia/Tokyo", chat_type="group")
    sub = await env.sub(GROUP)
    assert (sub.topics, sub.quiet, sub.digest_at, sub.tz) == (
        ("world",),
        "22:00-07:00",
        "18:30",
        "Asia/Tokyo",
    )
    assert len(edits(env, GROUP)) == 1


async def test_choice_commands_need_a_subscription(env: Env) -> None:
    """/quiet, /digest and /timezone in a chat that is not subscribed point to /start."""
    for command in ("/quiet 22:00-07:00", "/digest 18:30", "/timezone UTC"):
        (hint,) = await env.command(USER, USER, command)
        assert "/start" in text_of(hint), command
    assert await env.sub(USER) is None

"""The Telegram bot's commands, driven through a real PTB Application and the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.chat.handlers import set_commands
from bot.commands.samples import sample_plain, sample_replies
from bot.models import Channel, Post, Status
from tests.fakes.bot_api import BOT_USER, FakeBotAPI
from tests.fakes.tg_html import check
from tests.support.bot import ADMIN, GROUP, OTHER_ADMIN, USER, Env, bot_env, buttons, edits


@pytest.fixture
async def env(tmp_path: Path, fake_bot_api: FakeBotAPI) -> AsyncIterator[Env]:
    """The bot with configured transports: no stand-in outbox recipients join a broadcast."""
    async with bot_env(tmp_path, fake_bot_api) as env:
        yield env


async def test_start_subscribes_to_breaking_and_digest_with_buttons(env: Env) -> None:
    """/start in a private chat subscribes it (breaking + digest on) and shows toggles."""
    (reply,) = await env.command(USER, USER, "/start")
    assert "Welcome" in (reply.text or "") and reply.parse_mode == "HTML"
    assert [data for _, data in buttons(reply)] == ["set:breaking", "set:daily", "set:every_post"]
    sub = await env.sub(USER)
    assert (sub.status, sub.breaking, sub.daily, sub.every_post) == (
        Status.ACTIVE,
        True,
        True,
        False,
    )


async def test_settings_buttons_toggle_and_edit_the_message_in_place(env: Env) -> None:
    """Pressing a toggle flips that preference and edits the same message's text and buttons."""
    (welcome,) = await env.command(USER, USER, "/start")
    answer = await env.press(USER, USER, "set:every_post", welcome.message_id)
    assert answer.get("text") == "Saved."
    (edit,) = edits(env, USER)
    assert edit.message_id == welcome.message_id
    assert "Every new post: on" in (edit.text or "")
    assert buttons(edit)[2][0].startswith("✅")
    assert (await env.sub(USER)).every_post is True
    await env.press(USER, USER, "set:breaking", welcome.message_id)
    assert "Breaking alerts: off" in (edits(env, USER)[-1].text or "")
    assert (await env.sub(USER)).breaking is False
    (shown,) = await env.command(USER, USER, "/settings")
    assert "Breaking alerts: off" in (shown.text or "") and len(buttons(shown)) == 3


async def test_stop_unsubscribes_and_stale_buttons_do_nothing(env: Env) -> None:
    """/stop unsubscribes; a settings button pressed afterwards changes nothing."""
    (welcome,) = await env.command(USER, USER, "/start")
    (bye,) = await env.command(USER, USER, "/stop")
    assert "unsubscribed" in (bye.text or "")
    assert (await env.sub(USER)).status is Status.UNSUBSCRIBED
    answer = await env.press(USER, USER, "set:daily", welcome.message_id)
    assert "not subscribed" in answer.get("text", "")
    assert edits(env, USER) == []
    (hint,) = await env.command(USER, USER, "/settings")
    assert "/start" in (hint.text or "")
    (again,) = await env.command(USER, USER, "/start")
    assert (await env.sub(USER)).status is Status.ACTIVE and "Welcome" in (again.text or "")


async def test_latest_lists_recent_posts_as_links(env: Env) -> None:
    """/latest says nothing is published yet, then lists the newest post as an escaped link."""
    (empty,) = await env.command(USER, USER, "/latest")
    assert "Nothing has been published" in (empty.text or "")
    post = Post(
        path="2026-01-02-a.md",
        slug="a",
        title="Rates & <Taxes>",
        date=datetime(2026, 1, 2, 9, tzinfo=UTC),
        url="https://news.example.com/2026/01/02/a.html",
        body="",
        excerpt="",
    )
    await env.store.posts.record([post], announced=True, now=datetime.now(UTC))
    (listing,) = await env.command(USER, USER, "/latest")
    assert '<a href="https://news.example.com/2026/01/02/a.html">' in (listing.text or "")
    assert "Rates &amp; &lt;Taxes&gt;" in (listing.text or "")


async def test_help_shows_admin_commands_only_to_admins(env: Env) -> None:
    """/help lists the subscriber commands; only an admin also sees /broadcast and /stats."""
    (user_help,) = await env.command(USER, USER, "/help")
    (admin_help,) = await env.command(ADMIN, ADMIN, "/help")
    assert "/settings" in (user_help.text or "") and "/broadcast" not in (user_help.text or "")
    assert "/broadcast" in (admin_help.text or "") and "/stats" in (admin_help.text or "")


async def test_command_menu_is_set_for_everyone_and_admins(env: Env) -> None:
    """setMyCommands gets the public menu, and a menu with admin commands for each admin."""
    await set_commands(env.app.bot, env.deps)
    calls = [c.params for c in env.fake.calls if c.method == "setMyCommands"]
    assert len(calls) == 3  # everyone, then each of the two admins
    public = [c["command"] for c in json.loads(calls[0]["commands"])]
    admin = [c["command"] for c in json.loads(calls[1]["commands"])]
    assert public == [
        *("start", "settings", "topics", "quiet", "digest", "timezone"),
        *("latest", "stop", "help"),
    ]
    assert admin == [*public, "broadcast", "stats"]
    scopes = [json.loads(c["scope"]) for c in calls[1:]]
    assert sorted(s["chat_id"] for s in scopes) == [ADMIN, OTHER_ADMIN]
    assert all(s["type"] == "chat" for s in scopes)


async def test_in_a_group_only_admins_subscribe_and_change_settings(env: Env) -> None:
    """/start in a group needs a group admin; a member's button press is refused with an alert."""
    member, owner = 100, 101
    env.fake.set_member(GROUP, owner, "creator")
    (refused,) = await env.command(GROUP, member, "/start", chat_type="group")
    assert "Only the admins" in (refused.text or "")
    assert await env.sub(GROUP) is None
    (welcome,) = await env.command(GROUP, owner, "/start@herald_test_bot", chat_type="group")
    assert "This group now gets" in (welcome.text or "")
    answer = await env.press(GROUP, member, "set:daily", welcome.message_id)
    assert answer.get("show_alert") in (True, "true") and "admins" in answer.get("text", "")
    assert edits(env, GROUP) == [] and (await env.sub(GROUP)).daily is True
    await env.press(GROUP, owner, "set:daily", welcome.message_id)
    assert (await env.sub(GROUP)).daily is False and len(edits(env, GROUP)) == 1
    (refused_stop,) = await env.command(GROUP, member, "/stop", chat_type="group")
    assert (await env.sub(GROUP)).status is Status.ACTIVE
    assert "Only the admins" in (refused_stop.text or "")


def bold(text: str, word: str) -> dict[str, Any]:
    return {"type": "bold", "offset": text.index(word), "length": len(word)}


async def test_admin_broadcast_previews_then_sends_once(env: Env) -> None:
    """An admin's /broadcast previews the exact message, sends only on Send, and only once."""
    await env.store.subscribers.upsert(Channel.TELEGRAM, "1001")
    await env.store.subscribers.upsert(Channel.EMAIL, "a@example.com")
    text = "/broadcast Meet <site> & co at noon"
    sent = await env.command(ADMIN, ADMIN, text, entities=[bold(text, "noon")])
    preview, confirm = sent
    expected = env.deps.renderer.broadcast_messages("Meet &lt;site&gt; &amp; co at <b>noon</b>")
    assert preview.text == expected[0].text
    assert "Meet &lt;site&gt; &amp; co at <b>noon</b>" in (preview.text or "")
    assert "<b>2</b> recipients" in (confirm.text or "")
    (send, cancel) = buttons(confirm)
    assert send[1].startswith("bc:send:") and cancel[1].startswith("bc:cancel:")
    assert env.publisher.calls == []
    answer = await env.press(ADMIN, ADMIN, send[1], confirm.message_id)
    assert answer.get("text") == "Broadcast queued."
    assert env.publisher.calls == [("Meet &lt;site&gt; &amp; co at <b>noon</b>", ADMIN)]
    assert "queued for <b>2</b>" in (edits(env, ADMIN)[-1].text or "")
    again = await env.press(ADMIN, ADMIN, send[1], confirm.message_id)
    assert "already been sent" in again.get("text", "")
    assert len(env.publisher.calls) == 1
    (job,) = await env.store.outbox.progress()
    assert job.kind == "broadcast" and job.total == 2


async def test_only_the_admin_who_wrote_a_broadcast_can_send_it(env: Env) -> None:
    """Another admin pressing Send on someone else's preview is refused and nothing goes out."""
    _, confirm = await env.command(ADMIN, ADMIN, "/broadcast mine")
    send = buttons(confirm)[0][1]
    answer = await env.press(ADMIN, OTHER_ADMIN, send, confirm.message_id)
    assert answer.get("show_alert") in (True, "true")
    assert env.publisher.calls == []
    await env.press(ADMIN, ADMIN, send, confirm.message_id)
    assert len(env.publisher.calls) == 1


async def test_two_send_presses_at_the_same_moment_send_once(env: Env) -> None:
    """Two Send presses handled concurrently (the first still queueing) broadcast only once."""
    _, confirm = await env.command(ADMIN, ADMIN, "/broadcast twice?")
    send = buttons(confirm)[0][1]
    env.publisher.delay_s = 0.2
    first = env.fake.push_callback(ADMIN, ADMIN, send, confirm.message_id)
    second = env.fake.push_callback(ADMIN, ADMIN, send, confirm.message_id)
    updates = await env.app.bot.get_updates(offset=env.offset, timeout=0)
    assert len(updates) == 2
    await asyncio.gather(*(env.app.process_update(u) for u in updates))
    assert len(env.publisher.calls) == 1 and len(await env.store.outbox.progress()) == 1
    answers = {
        c.params["callback_query_id"]: c.params.get("text", "")
        for c in env.fake.calls
        if c.method == "answerCallbackQuery"
    }
    assert answers[first] == "Broadcast queued."
    assert "already been sent" in answers[second]


async def test_broadcast_as_reply_keeps_the_replied_message_formatting(env: Env) -> None:
    """/broadcast sent as a reply broadcasts the replied-to message with its entities."""
    note = "Road closed <today> & tomorrow"
    original = env.fake.push_message(ADMIN, ADMIN, note, entities=[bold(note, "closed")])
    await env.drain()
    preview, confirm = await env.command(ADMIN, ADMIN, "/broadcast", reply_to=original)
    assert "Road <b>closed</b> &lt;today&gt; &amp; tomorrow" in (preview.text or "")
    await env.press(ADMIN, ADMIN, buttons(confirm)[0][1], confirm.message_id)
    assert env.publisher.calls == [("Road <b>closed</b> &lt;today&gt; &amp; tomorrow", ADMIN)]


async def test_cancel_sends_nothing_and_send_after_cancel_is_refused(env: Env) -> None:
    """Cancel edits the prompt and queues nothing; a later Send on it is refused."""
    _, confirm = await env.command(ADMIN, ADMIN, "/broadcast hello")
    send, cancel = buttons(confirm)
    await env.press(ADMIN, ADMIN, cancel[1], confirm.message_id)
    assert "cancelled" in (edits(env, ADMIN)[-1].text or "")
    answer = await env.press(ADMIN, ADMIN, send[1], confirm.message_id)
    assert "cancelled" in answer.get("text", "")
    assert env.publisher.calls == [] and await env.store.outbox.progress() == []


async def test_empty_broadcast_explains_usage(env: Env) -> None:
    """A bare /broadcast (not a reply) gets the usage hint and no preview."""
    (usage,) = await env.command(ADMIN, ADMIN, "/broadcast")
    assert "/broadcast" in (usage.text or "") and usage.reply_markup is None


async def test_non_admin_gets_a_refusal_and_cannot_press_send(env: Env) -> None:
    """A non-admin's /broadcast and /stats are refused; pressing an admin's Send does nothing."""
    (refusal,) = await env.command(USER, USER, "/broadcast spam <b>")
    assert "only for the administrators" in (refusal.text or "")
    (stats_refusal,) = await env.command(USER, USER, "/stats")
    assert "only for the administrators" in (stats_refusal.text or "")
    _, confirm = await env.command(ADMIN, ADMIN, "/broadcast real news")
    answer = await env.press(ADMIN, USER, buttons(confirm)[0][1], confirm.message_id)
    assert "only the bot's administrators" in answer.get("text", "")
    assert env.publisher.calls == []


async def test_stats_counts_subscribers_by_channel_preference_and_status(env: Env) -> None:
    """/stats shows active subscribers per channel and preference, blocked ones and deliveries."""
    subs = env.store.subscribers
    await subs.upsert(Channel.TELEGRAM, "1", every_post=True)
    await subs.upsert(Channel.TELEGRAM, "2", daily=False)
    blocked = await subs.upsert(Channel.TELEGRAM, "3")
    await subs.set_status(blocked.id, Status.BLOCKED)
    await subs.request_email("p@example.com", breaking=True, daily=True)
    (stats,) = await env.command(ADMIN, ADMIN, "/stats")
    text = stats.text or ""
    assert "<b>Telegram</b>: 2 active" in text
    assert "breaking 2 · digest 1 · every post 1" in text
    assert "blocked 1" in text and "pending 1" in text
    assert "sent 0 · failed 0" in text


async def test_user_who_blocked_the_bot_is_marked_blocked(env: Env) -> None:
    """A chat that blocks the bot (my_chat_member "kicked", or a 403 on reply) stops receiving."""
    await env.command(USER, USER, "/start")
    env.fake.push_update(
        {
            "my_chat_member": {
                "chat": {"id": USER, "type": "private", "first_name": "U"},
                "from": {"id": USER, "is_bot": False, "first_name": "U"},
                "date": int(time.time()),
                "old_chat_member": {"status": "member", "user": BOT_USER},
                "new_chat_member": {"status": "kicked", "user": BOT_USER, "until_date": 0},
            }
        }
    )
    await env.drain()
    assert (await env.sub(USER)).status is Status.BLOCKED
    other = 8
    await env.command(other, other, "/start")
    env.fake.block(other)
    await env.command(other, other, "/settings")
    assert (await env.sub(other)).status is Status.BLOCKED


async def test_group_migrated_to_supergroup_keeps_its_subscription(env: Env) -> None:
    """When a group becomes a supergroup its subscription moves to the new chat id."""
    owner, supergroup = 101, -1009990001
    env.fake.set_member(GROUP, owner, "creator")
    await env.command(GROUP, owner, "/start", chat_type="group")
    env.fake.push_update(
        {
            "message": {
                "message_id": 99,
                "date": int(time.time()),
                "chat": {"id": GROUP, "type": "group", "title": "G"},
                "from": {"id": owner, "is_bot": False, "first_name": "O"},
                "migrate_to_chat_id": supergroup,
            }
        }
    )
    await env.drain()
    assert await env.sub(GROUP) is None
    moved = await env.sub(supergroup)
    assert moved is not None and moved.status is Status.ACTIVE


async def test_bot_runs_by_polling_inside_an_event_loop(env: Env) -> None:
    """With initialize/start/start_polling (not run_polling) a /start arrives and is answered."""
    await env.app.start()
    assert env.app.updater is not None
    await env.app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        env.fake.push_command(USER, USER, "/start")
        await env.fake.wait_for(lambda: env.fake.sent_to(USER))
    finally:
        await env.app.updater.stop()
        await env.app.stop()
    assert (await env.sub(USER)).status is Status.ACTIVE


async def test_every_bot_reply_is_valid_telegram_html(env: Env) -> None:
    """Each reply template renders to HTML Telegram accepts; answers and labels fit limits."""
    replies = sample_replies(env.deps.text)
    for name, text in replies.items():
        assert text.strip(), name
        check(text)  # raises with the reason on any tag Telegram would refuse
    assert "A &amp; &lt;b&gt;" in replies["latest/some"]
    assert "x &lt; y &amp; z" in replies["broadcast_invalid"]
    plain = sample_plain(env.deps.text)
    for name, text in plain.items():
        if name.startswith("answer/"):
            assert 0 < len(text) <= 200, name  # answerCallbackQuery's limit
        if name.startswith("button/"):
            assert 0 < len(text.encode()) <= 64 and "\n" not in text, name

"""/stats with job progress and failed sends, its Resend button, and honest broadcast counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.delivery.setup import open_delivery
from bot.models import Channel
from tests.fakes.bot_api import FakeBotAPI
from tests.support.bot import ADMIN, USER, Env, bot_env, buttons, edits
from tests.support.delivery import FAST, make_post

CHATS = (1001, 1002, 1003)
FLAKY = 1002  # its sends keep failing with a 500 until the fake is told otherwise
RESEND_LABEL = "🔁 Resend to those who missed it"


@pytest.fixture
async def env(tmp_path: Path, fake_bot_api: FakeBotAPI) -> AsyncIterator[Env]:
    """The bot over a store where one post went to three chats and the send to one failed."""
    async with bot_env(tmp_path, fake_bot_api) as env:
        for chat in CHATS:
            await env.store.subscribers.upsert(Channel.TELEGRAM, str(chat))
        fake_bot_api.fail(FLAKY, times=100, status=500)
        await env.publisher.real.announce(make_post(1, breaking=True), post_id=1)
        await deliver_all(env)
        yield env


async def deliver_all(env: Env, timeout_s: float = 10.0) -> dict[str, int]:
    """Run the real delivery loop (two attempts per send) until nothing waits; the totals."""
    config = replace(FAST, max_attempts=2)
    async with open_delivery(env.store, env.settings, config=config) as delivery:
        stop = asyncio.Event()
        task = asyncio.create_task(delivery.run(stop))
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                totals = await env.store.outbox.totals()
                if totals["queued"] == totals["sending"] == 0:
                    return totals
                assert time.monotonic() < deadline, f"outbox not drained: {totals}"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)


async def test_stats_shows_job_progress_and_the_failed_sends(env: Env) -> None:
    """/stats lists the post's job (2 of 3 sent, 1 failed), the failed chat with its error."""
    (stats,) = await env.command(ADMIN, ADMIN, "/stats")
    text = stats.text or ""
    assert "sent 2 · failed 1" in text and "blocked 0 · bounced 0" in text
    assert "<b>Recent jobs</b>" in text
    assert "breaking <i>Post number 1</i>: sent 2 of 3 · failed 1" in text
    assert "<b>Failed sends</b>: 1" in text
    assert f"• telegram {FLAKY} (post:1): gave up after 2 attempts" in text
    assert buttons(stats) == [(RESEND_LABEL, "rs:failed")]


async def test_resend_queues_the_failed_sends_again_and_they_arrive(env: Env) -> None:
    """Resend puts the failed send back in the queue once; delivery then reaches that chat."""
    (stats,) = await env.command(ADMIN, ADMIN, "/stats")
    answer = await env.press(ADMIN, ADMIN, "rs:failed", stats.message_id)
    assert answer.get("text") == "1 failed send queued again."
    assert "<b>1</b> failed send queued again" in (edits(env, ADMIN)[-1].text or "")
    totals = await env.store.outbox.totals()
    assert (totals["failed"], totals["queued"]) == (0, 1)
    again = await env.press(ADMIN, ADMIN, "rs:failed", stats.message_id)
    assert again.get("text") == "Nothing to resend: no failed sends are waiting."
    assert env.publisher.retries == [1, 0] and len(edits(env, ADMIN)) == 1
    assert env.fake.sent_to(FLAKY) == []
    env.fake.failing.clear()
    totals = await deliver_all(env)
    assert (totals["sent"], totals["failed"]) == (3, 0)
    assert [s.text is not None and "Post number 1" in s.text for s in env.fake.sent_to(FLAKY)] == [
        True
    ]
    (after,) = await env.command(ADMIN, ADMIN, "/stats")
    assert after.reply_markup is None and "sent 3 · failed 0" in (after.text or "")
    assert "Failed sends" not in (after.text or "")


async def test_non_admin_cannot_press_resend(env: Env) -> None:
    """A non-admin pressing Resend gets a refusal, and the failed send stays parked."""
    answer = await env.press(USER, USER, "rs:failed", 1)
    assert "only the bot's administrators" in answer.get("text", "")
    assert env.publisher.retries == []
    assert (await env.store.outbox.totals())["failed"] == 1


async def test_broadcast_preview_count_is_the_queued_count_in_outbox_mode(
    tmp_path: Path, fake_bot_api: FakeBotAPI
) -> None:
    """Without transports, the preview's and the confirmation's counts agree: subscribers only."""
    async with bot_env(tmp_path, fake_bot_api, outbox_mode=True) as env:
        subs = env.store.subscribers
        await subs.upsert(Channel.TELEGRAM, "1001")
        await subs.upsert(Channel.EMAIL, "a@example.com")
        await subs.request_email("pending@example.com", breaking=True, daily=True)
        _, confirm = await env.command(ADMIN, ADMIN, "/broadcast Hello all")
        assert "<b>2</b> recipients" in (confirm.text or "")
        await env.press(ADMIN, ADMIN, buttons(confirm)[0][1], confirm.message_id)
        assert "queued for <b>2</b> recipients" in (edits(env, ADMIN)[-1].text or "")
        (job,) = await env.store.outbox.progress()
        assert job.total == 4  # the two outbox stand-ins still get it, uncounted

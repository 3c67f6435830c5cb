"""Delivery through the fake Bot API: pacing, 429s, gone and migrated chats, retries."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bot.models import Channel, Kind, Rendered, Status, TelegramMessage
from bot.outbox import plan
from bot.outbox.plan import Recipient
from bot.store import Store
from tests.fakes.bot_api import TOKEN, FakeBotAPI
from tests.support.delivery import FAST, make_post, make_settings, running


def tg_settings(tmp_path: Path, fake: FakeBotAPI, rate: float = 30.0):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        telegram_token=TOKEN,
        telegram_api_url=fake.base_url,
        telegram_rate=rate,
        smtp_url="smtp://127.0.0.1:1",  # email rows would fail; these tests have none
    )


async def add_chats(store: Store, chats: range, **prefs: bool) -> None:
    for chat in chats:
        await store.subscribers.upsert(Channel.TELEGRAM, str(chat), **prefs)


def max_per_second(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


async def queue_raw(store: Store, key: str, message: TelegramMessage, chats: list[int]) -> None:
    """Queue a hand-made message (bypassing the renderer) for some chats."""
    rendered = Rendered(telegram=(message,))
    job_id, _ = await store.outbox.create_job(
        key, "broadcast", rendered.encode(), title=key, now=datetime.now(UTC)
    )
    recipients = []
    for chat in chats:
        sub = await store.subscribers.upsert(Channel.TELEGRAM, str(chat))
        recipients.append(Recipient.of(sub))
    await store.outbox.add_items(job_id, plan.rows_for(key, Kind.BROADCAST, rendered, recipients))
    await store.outbox.mark_planned(job_id)


async def test_breaking_fan_out_reaches_every_chat_once_within_rate(tmp_path: Path) -> None:
    """A breaking post reaches each of 70 chats exactly once, never above 30 msg/s, no 429."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        await add_chats(rig.store, range(1, 71))
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        totals = await rig.drained()
        assert totals["sent"] == 70
        assert sorted(int(s.chat_id) for s in fake.sent) == list(range(1, 71))
        assert fake.too_many == 0
        assert max_per_second([s.at for s in fake.sent]) <= 29
        assert not any(s.allow_paid_broadcast for s in fake.sent)
        [job] = await rig.store.outbox.progress(1)
        assert job.finished_at is not None and job.counts["sent"] == 70


async def test_every_post_and_breaking_make_one_alert(tmp_path: Path) -> None:
    """A subscriber with breaking and every-post on gets one alert; digest-only gets none."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        await rig.store.subscribers.upsert(Channel.TELEGRAM, "1", breaking=True, every_post=True)
        await rig.store.subscribers.upsert(Channel.TELEGRAM, "2", breaking=False, daily=True)
        await rig.store.subscribers.upsert(Channel.TELEGRAM, "3", breaking=False, every_post=True)
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        await rig.publisher.announce(make_post(2), post_id=2)
        await rig.publisher.announce(make_post(2), post_id=2)  # announced twice: no repeat
        await rig.drained()

        def titles(chat: int) -> list[str]:
            return sorted(
                t for s in fake.sent_to(chat) for t in ("number 1", "number 2") if t in s.text
            )

        assert titles(1) == ["number 1", "number 2"]  # one alert for post 1, not two
        assert titles(2) == []
        assert titles(3) == ["number 1", "number 2"]


async def test_one_message_per_second_per_chat(tmp_path: Path) -> None:
    """Four broadcasts to the same chat go at least a second apart and draw no 429."""
    async with FakeBotAPI(chat_burst=1) as fake, running(tg_settings(tmp_path, fake)) as rig:
        await add_chats(rig.store, range(7, 8))
        for _ in range(4):
            await rig.publisher.broadcast("<b>hello</b>", admin_id=1)
        await rig.drained()
        times = [s.at for s in fake.sent_to(7)]
        assert len(times) == 4 and fake.too_many == 0
        assert all(b - a >= 0.99 for a, b in itertools.pairwise(times))


async def test_429_is_honoured(tmp_path: Path) -> None:
    """When Telegram answers 429, sends wait retry_after and every chat still gets one alert."""
    async with (
        FakeBotAPI(global_rate=5) as fake,
        running(tg_settings(tmp_path, fake, rate=30)) as rig,
    ):
        await add_chats(rig.store, range(1, 13))
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        await rig.drained(timeout=30)
        assert fake.too_many >= 1
        assert sorted(int(s.chat_id) for s in fake.sent) == list(range(1, 13))
        refused = [c.at for c in fake.calls if c.status == 429]
        after = [s.at for s in fake.sent if s.at > refused[0]]
        assert min(after) - refused[0] >= 0.9  # retry_after=1 was waited out


async def test_blocked_missing_and_migrated_chats(tmp_path: Path) -> None:
    """Blocked and missing chats are marked and not retried; a migrated group gets it anew."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        await add_chats(rig.store, range(1, 5))
        await add_chats(rig.store, range(-500, -499))
        fake.block(2)
        fake.not_found(3)
        fake.deactivate(4)
        fake.migrate(-500, -1001234)
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        await rig.drained()
        await rig.publisher.announce(make_post(2, breaking=True), post_id=2)
        await rig.drained()
        subs = rig.store.subscribers
        for chat in ("2", "3", "4"):
            found = await subs.get(Channel.TELEGRAM, chat)
            assert found is not None and found.status is Status.BLOCKED
        assert await subs.get(Channel.TELEGRAM, "-1001234") is not None
        assert len(fake.sent_to(1)) == 2 and len(fake.sent_to(-1001234)) == 2
        tried = [c for c in fake.calls if c.params.get("chat_id") in ("2", "3", "4")]
        assert len(tried) == 3  # one attempt each, nothing after they were marked


async def test_5xx_retried_then_parked_and_resent(tmp_path: Path) -> None:
    """5xx answers are retried with backoff; exhausted sends are failed, then resent on demand."""
    config = replace(FAST, max_attempts=3)
    async with FakeBotAPI() as fake:
        settings = tg_settings(tmp_path, fake)
        async with running(settings, config) as rig:
            await add_chats(rig.store, range(1, 4))
            fake.fail(1, times=2, status=502)
            fake.fail(2, times=10, status=500)
            await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
            totals = await rig.drained()
            assert totals["sent"] == 2 and totals["failed"] == 1
            [failed] = await rig.store.outbox.failed()
            assert failed.address == "2" and "gave up after 3 attempts" in failed.last_error
            assert len(fake.sent_to(1)) == 1 and fake.sent_to(2) == []
            fake.failing.clear()
            assert await rig.publisher.retry_failed() == 1
            totals = await rig.drained()
            assert totals["sent"] == 3 and totals["failed"] == 0
            assert len(fake.sent_to(2)) == 1 and len(fake.sent_to(1)) == 1


async def test_malformed_html_resent_as_plain_text(tmp_path: Path) -> None:
    """A message Telegram rejects as malformed HTML is sent once more as plain text."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        await queue_raw(
            rig.store, "bad", TelegramMessage("sendMessage", "<blink>Hot</blink> &amp; new"), [5]
        )
        rig.delivery.notify()
        totals = await rig.drained()
        assert totals["sent"] == 1
        [sent] = fake.sent_to(5)
        assert sent.text == "Hot &amp; new"  # tags dropped; reads "Hot & new"


async def test_broken_image_falls_back_to_text(tmp_path: Path) -> None:
    """A post whose image Telegram cannot fetch still arrives, as a text message."""
    image = "https://news.example.org/broken.jpg"
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake)) as rig:
        fake.bad_photo(image)
        await add_chats(rig.store, range(1, 3))
        await rig.publisher.announce(make_post(1, breaking=True, image=image), post_id=1)
        await rig.drained()
        for chat in (1, 2):
            assert [s.method for s in fake.sent_to(chat)] == ["sendMessage"]
            assert "Post number 1" in (fake.sent_to(chat)[0].text or "")


async def test_breaking_overtakes_queued_broadcast(tmp_path: Path) -> None:
    """A breaking alert queued behind a long broadcast goes out before the broadcast ends."""
    async with FakeBotAPI() as fake, running(tg_settings(tmp_path, fake, rate=20)) as rig:
        await add_chats(rig.store, range(1, 61), breaking=False)
        await add_chats(rig.store, range(1001, 1004), breaking=True)
        await rig.publisher.broadcast("<b>long</b>", admin_id=1)

        def broadcasts() -> list[int]:
            return [n for n, s in enumerate(fake.sent) if s.text and "long" in s.text]

        await fake.wait_for(broadcasts)  # the broadcast is under way
        await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
        await rig.drained(timeout=30)
        alerts = [n for n, s in enumerate(fake.sent) if s.text and "Post number 1" in s.text]
        assert len(alerts) == 3
        assert len(broadcasts()) == 63
        assert max(alerts) < max(broadcasts())  # some of the broadcast went out after them


async def test_channel_gets_every_post(tmp_path: Path) -> None:
    """HERALD_TELEGRAM_CHANNEL receives every new post, breaking or not."""
    async with FakeBotAPI() as fake:
        settings = tg_settings(tmp_path, fake).model_copy(update={"telegram_channel": "@newsroom"})
        async with running(settings) as rig:
            await rig.publisher.announce(make_post(1), post_id=1)
            await rig.publisher.announce(make_post(2, breaking=True), post_id=2)
            await rig.drained()
            assert len(fake.sent_to("@newsroom")) == 2


async def test_stop_leaves_nothing_sending(tmp_path: Path) -> None:
    """Stopping mid fan-out finishes in-flight sends and leaves the rest queued, none lost."""
    async with FakeBotAPI() as fake:
        settings = tg_settings(tmp_path, fake, rate=20)
        async with running(settings) as rig:
            await add_chats(rig.store, range(1, 41))
            await rig.publisher.announce(make_post(1, breaking=True), post_id=1)
            await fake.wait_for(lambda: len(fake.sent) >= 3)  # mid fan-out (at 20 msg/s)
            rig.stop.set()
            await asyncio.wait_for(rig.task, 5)
            totals = await rig.store.outbox.totals()
            assert totals["sending"] == 0
            assert totals["sent"] == len(fake.sent) and 3 <= totals["sent"] < 40
            assert totals["queued"] == 40 - totals["sent"]
        async with running(settings) as rig:
            await rig.drained()
        assert sorted(int(s.chat_id) for s in fake.sent) == list(range(1, 41))

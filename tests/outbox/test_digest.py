"""The daily digest: due once a day at the digest time, never twice, across restarts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.models import Channel
from bot.outbox.digest import DigestScheduler
from bot.store import Store
from tests.support.delivery import make_post, make_settings, running

UTC_ZONE = ZoneInfo("UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def seen(store: Store, n: int, when: str) -> None:
    post = replace(make_post(n), title=f"Digest item {n}", path=f"p{n}.md", url=f"https://n/{n}")
    [(post_id, _)] = await store.posts.record([post], announced=True, now=at(when))
    await store.posts.mark_announced(post_id)


async def digest_queued(store: Store, name: str, timeout_s: float = 10.0) -> None:
    """Wait until the digest `name` has been queued."""
    deadline = time.monotonic() + timeout_s
    while not await store.digests.done(name):
        assert time.monotonic() < deadline, f"digest {name} was not queued"
        await asyncio.sleep(0.02)


async def test_digest_once_per_day_across_restart(tmp_path: Path) -> None:
    """The digest goes at 08:00 with the day's posts, not again after a restart, then next day."""
    settings = make_settings(tmp_path)
    async with running(settings, start=False) as rig:
        await rig.store.subscribers.upsert(Channel.TELEGRAM, "1", breaking=False, daily=True)
        await seen(rig.store, 1, "2026-01-15T06:00")
        await seen(rig.store, 2, "2026-01-15T07:30")
        sched = DigestScheduler(rig.publisher, rig.store.digests, at="08:00", tz=UTC_ZONE)
        assert await sched.tick(at("2026-01-15T07:59")) is None
        result = await sched.tick(at("2026-01-15T08:00:05"))
        assert result is not None and result.name == "2026-01-15"
        assert [p.title for p in result.posts] == ["Digest item 1", "Digest item 2"]
        assert result.queued == 3  # the subscriber and the two outbox stand-ins
        assert await sched.tick(at("2026-01-15T08:01")) is None
        await seen(rig.store, 3, "2026-01-15T12:00")
    async with running(settings, start=False) as rig:  # a restart
        sched = DigestScheduler(rig.publisher, rig.store.digests, at="08:00", tz=UTC_ZONE)
        assert await sched.tick(at("2026-01-15T09:00")) is None
        nxt = await sched.tick(at("2026-01-16T08:00:01"))
        assert nxt is not None and [p.title for p in nxt.posts] == ["Digest item 3"]
        jobs = await rig.store.outbox.progress()
        assert sorted(j.key for j in jobs) == ["digest:2026-01-15", "digest:2026-01-16"]


async def test_empty_day_sends_nothing(tmp_path: Path) -> None:
    """A day without posts queues no digest, and counts as done."""
    async with running(make_settings(tmp_path), start=False) as rig:
        await rig.store.subscribers.upsert(Channel.TELEGRAM, "1", daily=True)
        sched = DigestScheduler(rig.publisher, rig.store.digests, at="08:00", tz=UTC_ZONE)
        result = await sched.tick(at("2026-01-15T08:00:01"))
        assert result is not None and result.posts == () and result.queued == 0
        assert await rig.store.outbox.progress() == []
        assert await sched.tick(at("2026-01-15T08:10")) is None


async def test_dry_run_queues_nothing(tmp_path: Path) -> None:
    """`--dry-run` renders the digest but sends and records nothing."""
    async with running(make_settings(tmp_path), start=False) as rig:
        await seen(rig.store, 1, "2026-01-15T06:00")
        result = await rig.publisher.send_digest(at("2026-01-15T09:00"), dry_run=True)
        assert len(result.posts) == 1 and result.rendered.telegram
        assert "Digest item 1" in result.rendered.telegram[0].text
        assert await rig.store.outbox.progress() == []
        assert not await rig.store.digests.done("2026-01-15")


async def test_scheduler_loop_delivers_digest_to_outbox_files(tmp_path: Path) -> None:
    """With the outbox transport, a due digest appears under outbox/telegram and outbox/email."""
    settings = make_settings(tmp_path)
    async with running(settings) as rig:
        await seen(rig.store, 1, "2026-01-15T06:00")
        sched = DigestScheduler(
            rig.publisher,
            rig.store.digests,
            at="08:00",
            tz=UTC_ZONE,
            clock=lambda: at("2026-01-15T08:30"),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop))
        await digest_queued(rig.store, "2026-01-15")
        await rig.drained()
        stop.set()
        await asyncio.wait_for(task, 5)
    files = sorted((tmp_path / "outbox" / "telegram").glob("*.html"))
    assert len(files) == 1 and "Digest item 1" in files[0].read_text()
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) == 1

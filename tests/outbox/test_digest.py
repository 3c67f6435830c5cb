"""Each reader's digest: at their own local time, once a local day, filtered by their topics,
across restarts; corrected posts marked; `herald digest`'s digest now; the stand-ins' copy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.models import Channel, Rendered, Subscriber
from bot.outbox.digest import DigestScheduler
from bot.outbox.plan import OUTBOX_ADDRESS
from bot.store import Store
from tests.support.delivery import Rig, make_post, make_settings, running

UTC_ZONE = ZoneInfo("UTC")
TG = Channel.TELEGRAM
STAND_INS = set(OUTBOX_ADDRESS.values())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def seen(
    store: Store, n: int, when: str, *, topics: Iterable[str] = (), title: str | None = None
) -> None:
    """Post `n` announced at `when` (UTC), with these categories."""
    post = replace(
        make_post(n),
        title=title or f"Digest item {n}",
        path=f"p{n}.md",
        url=f"https://n/{n}",
        categories=tuple(topics),
    )
    [(post_id, _)] = await store.posts.record([post], announced=True, now=at(when))
    await store.posts.mark_announced(post_id)


async def reader(
    store: Store,
    address: str,
    *,
    digest_at: str | None = None,
    tz: str | None = None,
    topics: Iterable[str] = (),
) -> Subscriber:
    """A Telegram chat with the digest on (and nothing else), with its own choices."""
    sub = await store.subscribers.upsert(TG, address, breaking=False, daily=True)
    await store.subscribers.set_digest_time(sub.id, digest_at)
    await store.subscribers.set_timezone(sub.id, tz)
    await store.subscribers.set_topics(sub.id, list(topics))
    return sub


def scheduler(rig: Rig, at_: str = "08:00", tz: ZoneInfo = UTC_ZONE) -> DigestScheduler:
    return DigestScheduler(rig.publisher, rig.store.digests, at=at_, tz=tz)


async def inbox(store: Store) -> dict[str, list[str]]:
    """The digests queued so far, taken as delivery takes them: address → their texts
    (Telegram HTML; the email stand-in's text part)."""
    got: dict[str, list[str]] = {}
    for item in await store.outbox.claim(10_000, now=time.time() + 1e9, lease_s=1e9):
        rendered = Rendered.decode((await store.outbox.payload(item.job_id))[0])
        if item.channel is TG:
            text = "".join(m.text for m in rendered.telegram)
        else:
            assert rendered.email is not None
            text = rendered.email.text
        got.setdefault(item.address, []).append(text)
    return got


def titles(text: str) -> list[str]:
    """The post titles a digest lists, in order ("(updated)" kept)."""
    return [
        line.split(">", 1)[1].replace("</a>", "")
        for line in text.splitlines()
        if line.startswith("• ")
    ]


async def test_two_readers_in_two_zones_get_their_digest_at_their_own_time_once(
    tmp_path: Path,
) -> None:
    """A Berlin reader at 18:30 and a New York reader at 07:00 each get one digest a local
    day at that local time (across Berlin's spring change), with the posts since their own
    previous one."""
    async with running(make_settings(tmp_path), start=False) as rig:
        store = rig.store
        await reader(store, "berlin", digest_at="18:30", tz="Europe/Berlin")
        await reader(store, "newyork", digest_at="07:00", tz="America/New_York")
        await seen(store, 1, "2026-03-27T20:00")
        await seen(store, 2, "2026-03-28T12:00")  # after New York's, before Berlin's
        await seen(store, 3, "2026-03-29T05:00")
        sched = scheduler(rig)
        got: list[tuple[str, str, list[str]]] = []
        now, end = at("2026-03-28T00:00"), at("2026-03-30T00:00")
        while now < end:  # a tick every five minutes for two days
            await sched.tick(now)
            for address, texts in (await inbox(store)).items():
                if address not in STAND_INS:
                    got += [(address, now.strftime("%m-%d %H:%M"), titles(t)) for t in texts]
            now += timedelta(minutes=5)
    assert got == [
        ("newyork", "03-28 11:00", ["Digest item 1"]),  # 07:00 EDT
        ("berlin", "03-28 17:30", ["Digest item 1", "Digest item 2"]),  # 18:30 CET
        ("newyork", "03-29 11:00", ["Digest item 2", "Digest item 3"]),
        ("berlin", "03-29 16:30", ["Digest item 3"]),  # 18:30 CEST
    ]


async def test_topics_filter_the_digest_and_an_empty_one_still_moves_the_window(
    tmp_path: Path,
) -> None:
    """Each reader's digest lists only posts of their topics (none chosen: all); a reader
    with nothing of theirs gets no digest, and their next one starts after it all the same."""
    async with running(make_settings(tmp_path), start=False) as rig:
        store = rig.store
        await reader(store, "all")
        await reader(store, "sport", topics=["Sport"])
        weather = await reader(store, "weather", topics=["weather"])
        await seen(store, 1, "2026-01-15T06:00", topics=["sport"])
        await seen(store, 2, "2026-01-15T07:00", topics=["Politics"])
        sched = scheduler(rig)
        await sched.tick(at("2026-01-15T08:00:05"))
        first = await inbox(store)
        assert [titles(t) for t in first["all"]] == [["Digest item 1", "Digest item 2"]]
        assert [titles(t) for t in first["sport"]] == [["Digest item 1"]]
        assert "weather" not in first  # nothing of theirs: no digest

        # Now they follow sport: yesterday's sport post was in the window that moved on.
        await store.subscribers.set_topics(weather.id, ["sport"])
        await seen(store, 3, "2026-01-15T20:00", topics=["SPORT"])
        await sched.tick(at("2026-01-16T08:00:05"))
        second = await inbox(store)
    assert [titles(t) for t in second["weather"]] == [["Digest item 3"]]
    assert [titles(t) for t in second["sport"]] == [["Digest item 3"]]
    assert [titles(t) for t in second["all"]] == [["Digest item 3"]]


async def test_a_restart_between_ticks_sends_nothing_twice(tmp_path: Path) -> None:
    """After the day's digests went out, a restart plans none again that day; the next day's
    holds what came since."""
    settings = make_settings(tmp_path)
    async with running(settings, start=False) as rig:
        await reader(rig.store, "1")
        await reader(rig.store, "2", digest_at="09:00", tz="Europe/Berlin")  # 08:00 UTC too
        await seen(rig.store, 1, "2026-01-15T06:00")
        runs = await scheduler(rig).tick(at("2026-01-15T08:00:05"))
        assert sum(r.queued for r in runs) == 4  # two readers, two stand-ins
        assert sorted(await inbox(rig.store)) == sorted({"1", "2"} | STAND_INS)
        await seen(rig.store, 2, "2026-01-15T12:00")
    async with running(settings, start=False) as rig:  # a restart
        sched = scheduler(rig)
        assert sum(r.queued for r in await sched.tick(at("2026-01-15T08:00:06"))) == 0
        assert sum(r.queued for r in await sched.tick(at("2026-01-15T19:00"))) == 0
        assert await inbox(rig.store) == {}
        await sched.tick(at("2026-01-16T08:00:01"))
        nxt = await inbox(rig.store)
    assert [titles(t) for t in nxt["1"]] == [["Digest item 2"]]
    assert [titles(t) for t in nxt["2"]] == [["Digest item 2"]]


async def test_corrected_posts_are_marked_updated(tmp_path: Path) -> None:
    """A post corrected since the reader's last digest is listed, marked "(updated)", even
    when it was announced before; new posts are not marked."""
    async with running(make_settings(tmp_path), start=False) as rig:
        store = rig.store
        await reader(store, "1")
        await seen(store, 1, "2026-01-14T06:00", title="Old headline")
        sched = scheduler(rig)
        await sched.tick(at("2026-01-14T08:00:05"))
        assert [titles(t) for t in (await inbox(store))["1"]] == [["Old headline"]]
        await seen(store, 2, "2026-01-14T12:00")
        fixed = replace(make_post(1), title="Right headline", path="p1.md", url="https://n/1")
        await store.posts.record([fixed], announced=True, now=at("2026-01-14T15:00"))
        await sched.tick(at("2026-01-15T08:00:05"))
        got = await inbox(store)
    assert [titles(t) for t in got["1"]] == [["Digest item 2", "Right headline <i>(updated)</i>"]]
    email = got[OUTBOX_ADDRESS[Channel.EMAIL]][0]  # the email stand-in's text part
    assert "Right headline (updated)" in email and "Digest item 2 (updated)" not in email


async def test_a_new_reader_starts_where_the_sites_digest_ended(tmp_path: Path) -> None:
    """A reader who subscribes after the day's digest time gets nothing more that day (the
    stand-ins had it at 08:00); their first digest next day holds what came since."""
    async with running(make_settings(tmp_path), start=False) as rig:
        store = rig.store
        await seen(store, 1, "2026-01-15T06:00")
        sched = scheduler(rig)
        await sched.tick(at("2026-01-15T08:00:05"))
        assert sorted(await inbox(store)) == sorted(STAND_INS)
        await reader(store, "late")
        await seen(store, 2, "2026-01-15T10:00")
        await sched.tick(at("2026-01-15T10:30"))
        assert await inbox(store) == {}
        await sched.tick(at("2026-01-16T08:00:05"))
        got = await inbox(store)
    assert [titles(t) for t in got["late"]] == [["Digest item 2"]]


async def test_herald_digest_sends_each_reader_what_is_new_to_them_now(tmp_path: Path) -> None:
    """By hand: every digest reader gets the posts since their own previous digest, now; a
    second run with nothing new sends nothing; their scheduled digests still come, holding
    only what was published after: no post twice."""
    async with running(make_settings(tmp_path), start=False) as rig:
        store = rig.store
        await reader(store, "early", digest_at="07:00")
        await reader(store, "evening", digest_at="18:00", topics=["sport"])
        await seen(store, 1, "2026-01-15T05:00", topics=["sport"])
        sched = scheduler(rig)
        await sched.tick(at("2026-01-15T07:00:05"))
        assert [titles(t) for t in (await inbox(store))["early"]] == [["Digest item 1"]]
        await seen(store, 2, "2026-01-15T09:00", topics=["sport"])

        dry = await sched.send_now(at("2026-01-15T10:00"), dry_run=True)
        assert (dry.readers, dry.queued) == (2, 0)
        assert [p.title for p in dry.site.posts] == ["Digest item 1", "Digest item 2"]
        assert await inbox(store) == {}

        done = await sched.send_now(at("2026-01-15T10:00"))
        assert done.name == "2026-01-15"
        got = await inbox(store)
        assert [titles(t) for t in got["early"]] == [["Digest item 2"]]  # item 1 came at 07:00
        assert [titles(t) for t in got["evening"]] == [["Digest item 1", "Digest item 2"]]

        again = await sched.send_now(at("2026-01-15T11:00"))
        assert again.name == "2026-01-15@110000" and again.queued == 0
        assert await inbox(store) == {}
        await seen(store, 3, "2026-01-15T12:00", topics=["sport"])
        await sched.tick(at("2026-01-15T18:00:05"))  # the evening reader's own time
        assert {a: [titles(t) for t in ts] for a, ts in (await inbox(store)).items()} == {
            "evening": [["Digest item 3"]]
        }
        for tick in ("2026-01-16T07:00:05", "2026-01-16T08:00:05", "2026-01-16T18:00:05"):
            await sched.tick(at(tick))
        nxt = await inbox(store)
    assert [titles(t) for t in nxt["early"]] == [["Digest item 3"]]
    assert "evening" not in nxt  # nothing new for it since its 18:00 digest


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
        deadline = time.monotonic() + 10
        while not await rig.store.digests.done("2026-01-15"):
            assert time.monotonic() < deadline, "the digest was not queued"
            await asyncio.sleep(0.02)
        await rig.drained()
        stop.set()
        await asyncio.wait_for(task, 5)
    files = sorted((tmp_path / "outbox" / "telegram").glob("*.html"))
    assert len(files) == 1 and "Digest item 1" in files[0].read_text()
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) == 1


async def test_a_digest_job_left_open_by_a_stop_is_completed_at_the_next_start(
    tmp_path: Path,
) -> None:
    """Herald stopped after a digest's readers were all marked but before its job was marked
    planned: nobody is due for it any more, so the next start's scheduler completes it (it
    can finish); a digest being planned by hand meanwhile (created later) is left alone."""
    settings = make_settings(tmp_path)
    async with running(settings) as rig:
        outbox, started = rig.store.outbox, at("2026-01-15T09:00")
        before, _ = await outbox.create_job(
            "digest:left-open", "digest", "{}", title="digest", now=at("2026-01-15T08:00")
        )
        later, _ = await outbox.create_job(
            "digest:by-hand", "digest", "{}", title="digest", now=at("2026-01-15T09:05")
        )
        assert await outbox.finish_jobs([before, later], started) == []  # never planned
        sched = DigestScheduler(
            rig.publisher, rig.store.digests, at="08:00", tz=UTC_ZONE, clock=lambda: started
        )
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop))
        deadline, finished = time.monotonic() + 10, []
        while not finished:
            assert time.monotonic() < deadline, "the job left open was not completed"
            finished = await outbox.finish_jobs([before, later], started)
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert [j.id for j in finished] == [before]

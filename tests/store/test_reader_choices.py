"""Reader choices on both backends: topics, quiet hours, own digest time and zone, and the
digest groups and fan-out that serve readers at their own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.models import Channel, DigestGroup, Status
from bot.store import Store
from bot.store.interface import ImportRow

TG, EMAIL = Channel.TELEGRAM, Channel.EMAIL
NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)


async def test_each_choice_is_kept_and_read_back(store: Store) -> None:
    """Topics (casefolded), quiet hours, digest time and zone come back from every read."""
    subs = store.subscribers
    sub = await subs.upsert(TG, "100")
    assert (sub.topics, sub.quiet, sub.digest_at, sub.tz) == ((), None, None, None)
    await subs.set_topics(sub.id, ["Python", " Release  Notes ", "python"])
    await subs.set_quiet(sub.id, "22:00-07:00")
    await subs.set_digest_time(sub.id, "18:30")
    await subs.set_timezone(sub.id, "Europe/Berlin")
    want = (("python", "release notes"), "22:00-07:00", "18:30", "Europe/Berlin")
    by_id = await subs.get_by_id(sub.id)
    by_address = await subs.get(TG, "100")
    streamed = [s async for s in subs.recipients(TG)]
    listed = [s async for s in subs.all()]
    for seen in (by_id, by_address, *streamed, *listed):
        assert seen is not None
        assert (seen.topics, seen.quiet, seen.digest_at, seen.tz) == want


async def test_choices_clear_back_to_the_defaults(store: Store) -> None:
    """No topics means everything again; None puts quiet hours off and time and zone back."""
    subs = store.subscribers
    sub = await subs.upsert(TG, "101")
    await subs.set_topics(sub.id, ["news"])
    await subs.set_quiet(sub.id, "23:00-06:00")
    await subs.set_digest_time(sub.id, "07:00")
    await subs.set_timezone(sub.id, "Asia/Tokyo")
    await subs.set_topics(sub.id, [])
    await subs.set_quiet(sub.id, None)
    await subs.set_digest_time(sub.id, None)
    await subs.set_timezone(sub.id, None)
    seen = await subs.get_by_id(sub.id)
    assert seen is not None
    assert (seen.topics, seen.quiet, seen.digest_at, seen.tz) == ((), None, None, None)


async def test_preferences_change_leaves_the_choices(store: Store) -> None:
    """Turning alerts on and off again (set_prefs, upsert) keeps the reader's own choices."""
    subs = store.subscribers
    sub = await subs.upsert(EMAIL, "c@example.com")
    await subs.set_topics(sub.id, ["rust"])
    await subs.set_digest_time(sub.id, "06:15")
    await subs.set_prefs(sub.id, breaking=False, daily=True, every_post=True)
    again = await subs.upsert(EMAIL, "c@example.com", breaking=True)
    assert (again.topics, again.digest_at, again.every_post) == (("rust",), "06:15", False)


async def test_digest_slots_are_the_distinct_times_of_active_digest_readers(
    store: Store,
) -> None:
    """Slots list each (time, zone) once; site defaults show as None; others do not count."""
    subs = store.subscribers
    a = await subs.upsert(TG, "1")
    b = await subs.upsert(TG, "2")
    c = await subs.upsert(EMAIL, "c@example.com")
    await subs.upsert(TG, "3")  # site default time and zone
    no_digest = await subs.upsert(TG, "4", daily=False)
    gone = await subs.upsert(TG, "5")
    for s in (a, b, c):
        await subs.set_digest_time(s.id, "18:30")
    await subs.set_timezone(c.id, "Europe/Berlin")
    await subs.set_digest_time(no_digest.id, "05:00")
    await subs.set_timezone(gone.id, "Asia/Tokyo")
    await subs.set_status(gone.id, Status.BLOCKED)
    assert sorted(await subs.digest_slots(), key=repr) == sorted(
        [("18:30", None), ("18:30", "Europe/Berlin"), (None, None)], key=repr
    )


async def test_digest_groups_group_by_topics_and_window_start(store: Store) -> None:
    """Readers of one slot due for a day are counted per (topics, since); others are not."""
    subs = store.subscribers
    for n in range(3):
        await subs.upsert(TG, str(n))
    news = [await subs.upsert(EMAIL, f"n{n}@example.com") for n in range(2)]
    other_slot = await subs.upsert(TG, "50")
    for s in news:
        await subs.set_topics(s.id, ["News"])
    await subs.set_digest_time(other_slot.id, "07:00")
    groups = await subs.digest_groups((None, None), "2026-03-10")
    assert sorted(groups, key=repr) == sorted(
        [
            DigestGroup(topics=(), since=None, readers=3),
            DigestGroup(topics=("news",), since=None, readers=2),
        ],
        key=repr,
    )
    assert await subs.digest_groups(("07:00", None), "2026-03-10") == [
        DigestGroup(topics=(), since=None, readers=1)
    ]
    assert await subs.digest_groups(("07:00", "Europe/Berlin"), "2026-03-10") == []


async def _run_digest(
    store: Store,
    key: str,
    group: DigestGroup,
    *,
    day: str,
    until: datetime,
    slot: tuple[str | None, str | None] = (None, None),
    send: bool = True,
    batch: int = 2,
) -> dict[Channel, int]:
    """Fan a digest out to one group (a job, or marks only); rows added per channel."""
    job_id = None
    if send:
        job_id, _ = await store.outbox.create_job(key, "digest", "{}", title="d", now=NOW)
    total: dict[Channel, int] = {}
    async for added in store.outbox.fan_out_digest(
        job_id, key, [TG, EMAIL], slot=slot, day=day, group=group, until=until, batch=batch
    ):
        for channel, n in added.items():
            total[channel] = total.get(channel, 0) + n
    return {channel: n for channel, n in total.items() if n}


async def _keys(store: Store, job_key: str) -> list[str]:
    """The keys of the rows queued for the job `job_key`, as delivery claims them."""
    job_id, _ = await store.outbox.create_job(job_key, "digest", "{}", title="d", now=NOW)
    claimed = await store.outbox.claim(1000, now=NOW.timestamp() + 1e6, lease_s=60)
    return sorted(i.key for i in claimed if i.job_id == job_id)


async def test_fan_out_digest_queues_and_marks_exactly_the_group_once(store: Store) -> None:
    """One digest reaches the group's readers, once; they are then done for the day and
    their next window starts where this one ended, while other groups stay due."""
    subs = store.subscribers
    plain = [await subs.upsert(TG, str(n)) for n in range(5)]
    mailer = await subs.upsert(EMAIL, "m@example.com")
    news = await subs.upsert(TG, "77")
    await subs.set_topics(news.id, ["news"])
    late = await subs.upsert(TG, "88")
    await subs.set_digest_time(late.id, "21:00")
    group = DigestGroup(topics=(), since=None, readers=6)
    until = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)
    added = await _run_digest(store, "digest:a", group, day="2026-03-10", until=until)
    assert added == {TG: 5, EMAIL: 1}
    keys = await _keys(store, "digest:a")
    assert keys == sorted(
        [f"digest:a:telegram:{s.id}" for s in plain] + [f"digest:a:email:{mailer.id}"]
    )
    # done for the day: the group is gone, the other readers are still due
    assert await subs.digest_groups((None, None), "2026-03-10") == [
        DigestGroup(topics=("news",), since=None, readers=1)
    ]
    assert await subs.digest_groups(("21:00", None), "2026-03-10") == [
        DigestGroup(topics=(), since=None, readers=1)
    ]
    # a rerun (a restart planning the same job) adds and marks nothing more
    again = await _run_digest(store, "digest:a", group, day="2026-03-10", until=until)
    assert sum(again.values()) == 0
    # the next day, the same readers form one group whose window starts at `until`
    assert await subs.digest_groups((None, None), "2026-03-11") == sorted(
        [
            DigestGroup(topics=(), since=until, readers=6),
            DigestGroup(topics=("news",), since=None, readers=1),
        ],
        key=lambda g: (g.topics, g.since is not None),
    )


async def test_fan_out_digest_without_a_job_only_marks(store: Store) -> None:
    """No post for a group's topics: its readers are marked done, and nothing is queued."""
    subs = store.subscribers
    a = await subs.upsert(TG, "1")
    await subs.set_topics(a.id, ["rare"])
    group = DigestGroup(topics=("rare",), since=None, readers=1)
    until = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)
    added = await _run_digest(
        store, "digest:none", group, day="2026-03-10", until=until, send=False
    )
    assert sum(added.values()) == 0
    assert await subs.digest_groups((None, None), "2026-03-10") == []
    assert await subs.digest_groups((None, None), "2026-03-11") == [
        DigestGroup(topics=("rare",), since=until, readers=1)
    ]
    assert sum((await store.outbox.totals()).values()) == 0


async def test_fan_out_digest_reaches_only_readers_of_the_groups_window(store: Store) -> None:
    """Readers whose last window ended elsewhere, or who already had the day, are left out."""
    subs = store.subscribers
    a = await subs.upsert(TG, "1")
    b = await subs.upsert(TG, "2")
    first_until = datetime(2026, 3, 9, 17, 0, tzinfo=UTC)
    # a had a digest on the 9th; b never had one
    await _run_digest(
        store,
        "digest:9",
        DigestGroup(topics=(), since=None, readers=2),
        day="2026-03-09",
        until=first_until,
    )
    await subs.upsert(TG, "3")  # joined after: never had a digest
    groups = await subs.digest_groups((None, None), "2026-03-10")
    assert sorted(groups, key=lambda g: g.since is not None) == [
        DigestGroup(topics=(), since=None, readers=1),
        DigestGroup(topics=(), since=first_until, readers=2),
    ]
    until = first_until + timedelta(days=1)
    added = await _run_digest(
        store,
        "digest:10",
        DigestGroup(topics=(), since=first_until, readers=2),
        day="2026-03-10",
        until=until,
    )
    assert added == {TG: 2}
    assert await _keys(store, "digest:10") == sorted(
        [f"digest:10:telegram:{a.id}", f"digest:10:telegram:{b.id}"]
    )
    assert await subs.digest_groups((None, None), "2026-03-10") == [
        DigestGroup(topics=(), since=None, readers=1)
    ]


async def test_import_rows_sets_keeps_or_clears_each_choice(store: Store) -> None:
    """An import sets the choices given, leaves the ones left out, and "" clears one."""
    subs = store.subscribers
    known = await subs.upsert(TG, "1")
    await subs.set_topics(known.id, ["old"])
    await subs.set_quiet(known.id, "22:00-06:00")
    await subs.set_digest_time(known.id, "08:00")
    await subs.set_timezone(known.id, "Asia/Tokyo")
    await subs.import_rows(
        [
            ImportRow(TG, "1", True, True, topics=("new", "more"), quiet=""),
            ImportRow(TG, "2", True, False),
            ImportRow(EMAIL, "x@example.com", False, True, (), "21:00-05:00", "19:45", "UTC"),
        ]
    )
    one, two, three = (
        await subs.get(TG, "1"),
        await subs.get(TG, "2"),
        await subs.get(EMAIL, "x@example.com"),
    )
    assert one is not None and two is not None and three is not None
    assert (one.topics, one.quiet, one.digest_at, one.tz) == (
        ("more", "new"),
        None,
        "08:00",
        "Asia/Tokyo",
    )
    assert (two.topics, two.quiet, two.digest_at, two.tz) == ((), None, None, None)
    assert (three.topics, three.quiet, three.digest_at, three.tz) == (
        (),
        "21:00-05:00",
        "19:45",
        "UTC",
    )
    await subs.import_rows([ImportRow(TG, "1", True, True, topics=(), digest_at="", tz="")])
    cleared = await subs.get(TG, "1")
    assert cleared is not None
    assert (cleared.topics, cleared.digest_at, cleared.tz) == ((), None, None)

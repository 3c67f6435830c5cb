"""The subscribers table on a real SQLite file: opt-in, import, removal, streaming scans."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.models import Channel, PreferenceCounts, Status
from bot.store import Store, open_store

TG, EMAIL = Channel.TELEGRAM, Channel.EMAIL


async def test_request_email_creates_a_pending_subscriber_once(store: Store) -> None:
    """A new address becomes pending; asking again updates its wishes but stays one row."""
    first = await store.subscribers.request_email("a@example.com", breaking=True, daily=False)
    assert (first.status, first.channel, first.breaking, first.daily) == (
        Status.PENDING,
        EMAIL,
        True,
        False,
    )
    again = await store.subscribers.request_email("a@example.com", breaking=False, daily=True)
    assert again.id == first.id and (again.breaking, again.daily) == (False, True)
    assert [s.id async for s in store.subscribers.recipients()] == []


async def test_request_email_leaves_an_active_subscriber_untouched(store: Store) -> None:
    """A stranger typing a subscriber's address cannot change its preferences or status."""
    active = await store.subscribers.upsert(EMAIL, "b@example.com", breaking=True, daily=True)
    seen = await store.subscribers.request_email("b@example.com", breaking=False, daily=False)
    assert seen == active


async def test_confirm_activates_pending_only(store: Store) -> None:
    """confirm() turns pending into active; unknown ids give None; the unsubscribed stay out."""
    pending = await store.subscribers.request_email("c@example.com", breaking=True, daily=True)
    confirmed = await store.subscribers.confirm(pending.id)
    assert confirmed is not None and confirmed.status is Status.ACTIVE
    assert await store.subscribers.confirm(pending.id) == confirmed  # a second click is harmless
    assert await store.subscribers.confirm(99999) is None
    gone = await store.subscribers.upsert(EMAIL, "d@example.com")
    await store.subscribers.set_status(gone.id, Status.UNSUBSCRIBED)
    still = await store.subscribers.confirm(gone.id)
    assert still is not None and still.status is Status.UNSUBSCRIBED


async def test_unsubscribed_address_can_opt_in_again(store: Store) -> None:
    """Someone who left and asks again is pending with the new wishes, then active on confirm."""
    sub = await store.subscribers.upsert(EMAIL, "e@example.com")
    await store.subscribers.set_status(sub.id, Status.UNSUBSCRIBED)
    back = await store.subscribers.request_email("e@example.com", breaking=False, daily=True)
    assert back.id == sub.id and back.status is Status.PENDING and back.breaking is False
    confirmed = await store.subscribers.confirm(back.id)
    assert confirmed is not None and confirmed.status is Status.ACTIVE


async def test_import_rows_adds_updates_and_respects_those_who_left(store: Store) -> None:
    """Import writes active rows and new preferences, but never revives unsubscribed ones."""
    subs = store.subscribers
    await subs.upsert(TG, "1", breaking=True, daily=True)
    left = await subs.upsert(TG, "2")
    await subs.set_status(left.id, Status.UNSUBSCRIBED)
    pending = await subs.request_email("p@example.com", breaking=True, daily=True)
    written = await subs.import_rows(
        [
            (TG, "1", False, True),
            (TG, "2", True, True),
            (EMAIL, "p@example.com", True, False),
            (EMAIL, "new@example.com", False, False),
        ]
    )
    assert written == 3
    one, two = await subs.get(TG, "1"), await subs.get(TG, "2")
    assert one is not None and one.breaking is False and one.status is Status.ACTIVE
    assert two is not None and two.status is Status.UNSUBSCRIBED
    p = await subs.get_by_id(pending.id)
    assert p is not None and p.status is Status.ACTIVE and p.daily is False
    new = await subs.get(EMAIL, "new@example.com")
    assert new is not None and new.status is Status.ACTIVE and not new.breaking


async def test_remove_deletes_one_subscriber(store: Store) -> None:
    """remove() deletes the row and says whether there was one."""
    await store.subscribers.upsert(EMAIL, "x@example.com")
    assert await store.subscribers.remove(EMAIL, "x@example.com") is True
    assert await store.subscribers.get(EMAIL, "x@example.com") is None
    assert await store.subscribers.remove(EMAIL, "x@example.com") is False


async def test_recipients_stream_by_preference_and_counts_add_up(store: Store) -> None:
    """recipients() yields active matches in id order; counts agree with what was stored."""
    subs = store.subscribers
    rows = [(TG, str(i), i % 2 == 0, i % 3 == 0) for i in range(1, 3001)]
    await subs.import_rows(rows)
    blocked = await subs.get(TG, "2")
    assert blocked is not None
    await subs.set_status(blocked.id, Status.BLOCKED)
    breaking = [s async for s in subs.recipients(TG, breaking=True)]
    assert len(breaking) == 1499 and all(s.breaking for s in breaking)
    assert [s.id for s in breaking] == sorted(s.id for s in breaking)
    prefs = await subs.preference_counts()
    assert prefs[TG] == PreferenceCounts(active=2999, breaking=1499, daily=1000, every_post=0)
    assert prefs[EMAIL] == PreferenceCounts()
    assert (await subs.counts())[("telegram", "blocked")] == 1
    everyone = [s async for s in subs.all(TG, Status.BLOCKED)]
    assert [s.address for s in everyone] == ["2"]


async def test_database_is_wal_and_reopening_keeps_the_data(tmp_path: Path) -> None:
    """The file is in WAL mode and a second open migrates nothing and keeps subscribers."""
    async with open_store(tmp_path / "h.db") as first:
        await first.subscribers.upsert(TG, "5")
        async with first.conn.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        assert row is not None and str(row[0]).lower() == "wal"
    async with open_store(tmp_path / "h.db") as second:
        assert await second.subscribers.get(TG, "5") is not None


async def test_group_migration_moves_the_subscriber(store: Store) -> None:
    """change_address() keeps the subscriber and its preferences under the new chat id."""
    sub = await store.subscribers.upsert(TG, "-5", every_post=True)
    await store.subscribers.change_address(sub.id, "-1005")
    moved = await store.subscribers.get(TG, "-1005")
    assert moved is not None and moved.id == sub.id and moved.every_post


async def test_writes_between_recipients_survive_another_process_writing(tmp_path: Path) -> None:
    """A fan-out may write between recipients even after another process wrote the database."""
    async with open_store(tmp_path / "h.db") as store:  # SQLite: another process, one file
        await store.subscribers.import_rows([(TG, str(n), True, True) for n in range(1, 2501)])
        first = await store.subscribers.get(TG, "1")
        assert first is not None
        other = sqlite3.connect(
            tmp_path / "h.db", isolation_level=None
        )  # e.g. `herald subscribers`
        try:
            seen = 0
            async for _ in store.subscribers.recipients():
                seen += 1
                if seen == 1500:  # halfway through the second page
                    other.execute("UPDATE subscribers SET daily = 0 WHERE address = '2'")
                    # A read held open since before that write would make this fail: "locked".
                    await store.subscribers.set_status(first.id, Status.UNSUBSCRIBED)
        finally:
            other.close()
        assert seen == 2500

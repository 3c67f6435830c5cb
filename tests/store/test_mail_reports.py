"""Bounces and complaints on a real SQLite file: who is marked, soft bounces in a row, counts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bot.models import (
    Channel,
    ItemUpdate,
    Kind,
    OutboxStatus,
    PlannedItem,
    ReportCounts,
    ReportKind,
    Status,
    Subscriber,
)
from bot.store import Store

T0 = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
HARD, SOFT, COMPLAINT = ReportKind.HARD, ReportKind.SOFT, ReportKind.COMPLAINT


async def reader(store: Store, address: str = "reader@example.com") -> Subscriber:
    return await store.subscribers.upsert(Channel.EMAIL, address)


async def report(
    store: Store, sub: Subscriber, kind: ReportKind, sent_at: datetime | None
) -> Status | None:
    return await store.subscribers.record_report(
        sub.id, kind, sent_at=sent_at, now=T0 + timedelta(days=30), soft_limit=3
    )


async def sent_at(store: Store, sub: Subscriber, when: datetime) -> None:
    """An email to `sub` went out at `when` (an outbox row marked sent then)."""
    key = f"post:{when.timestamp()}"
    job_id, _ = await store.outbox.create_job(key, "post", "{}", title="t", now=when)
    item = PlannedItem(
        key=f"{key}:email:{sub.id}",
        kind=Kind.POST,
        channel=Channel.EMAIL,
        subscriber_id=sub.id,
        address=sub.address,
    )
    await store.outbox.add_items(job_id, [item])
    (claimed,) = await store.outbox.claim(10, now=time.time(), lease_s=60)
    update = ItemUpdate(
        id=claimed.id,
        status=OutboxStatus.SENT,
        attempts=1,
        parts_done=1,
        sent_at=when.isoformat(),
    )
    await store.outbox.apply([update])


async def status(store: Store, sub: Subscriber) -> Status:
    found = await store.subscribers.get_by_id(sub.id)
    assert found is not None
    return found.status


async def test_a_hard_bounce_marks_the_subscriber_bounced_at_once(store: Store) -> None:
    """One hard bounce: bounced; a second one changes nothing more but is counted."""
    sub = await reader(store)
    assert await report(store, sub, HARD, T0) is Status.BOUNCED
    assert await report(store, sub, HARD, T0) is None
    assert await status(store, sub) is Status.BOUNCED
    assert await store.subscribers.report_counts() == ReportCounts(hard=2)


async def test_a_complaint_unsubscribes_at_once(store: Store) -> None:
    """A complaint: unsubscribed, and counted."""
    sub = await reader(store)
    assert await report(store, sub, COMPLAINT, None) is Status.UNSUBSCRIBED
    assert await status(store, sub) is Status.UNSUBSCRIBED
    assert await store.subscribers.report_counts() == ReportCounts(complaints=1)


async def test_three_soft_bounces_in_a_row_mark_bounced(store: Store) -> None:
    """Soft bounces for three emails with none delivered between: bounced at the third."""
    sub = await reader(store)
    for day in range(2):
        await sent_at(store, sub, T0 + timedelta(days=day, seconds=1))  # the bounced ones
        assert await report(store, sub, SOFT, T0 + timedelta(days=day)) is None
    assert await status(store, sub) is Status.ACTIVE
    assert await report(store, sub, SOFT, T0 + timedelta(days=2)) is Status.BOUNCED
    assert await store.subscribers.report_counts() == ReportCounts(soft=3)


async def test_an_email_accepted_between_soft_bounces_starts_the_row_again(store: Store) -> None:
    """Soft, soft, then an email sent (and not bounced) before the next: the row starts over."""
    sub = await reader(store)
    await report(store, sub, SOFT, T0)
    await report(store, sub, SOFT, T0 + timedelta(days=1))
    await sent_at(store, sub, T0 + timedelta(days=2))
    assert await report(store, sub, SOFT, T0 + timedelta(days=3)) is None
    assert await report(store, sub, SOFT, T0 + timedelta(days=4)) is None
    assert await status(store, sub) is Status.ACTIVE
    assert await report(store, sub, SOFT, T0 + timedelta(days=5)) is Status.BOUNCED


async def test_an_email_accepted_after_the_bounced_one_does_not_break_the_row(
    store: Store,
) -> None:
    """Emails sent after the bounced email but before its late report do not clear the row."""
    sub = await reader(store)
    await sent_at(store, sub, T0 + timedelta(days=1, seconds=1))  # its report comes later
    await sent_at(store, sub, T0 + timedelta(days=2, seconds=1))
    await report(store, sub, SOFT, T0)  # the report for T0's email arrives on day 5
    await report(store, sub, SOFT, T0 + timedelta(days=1))
    assert await report(store, sub, SOFT, T0 + timedelta(days=2)) is Status.BOUNCED


async def test_soft_bounces_without_a_send_time_still_count(store: Store) -> None:
    """A report whose email's send time is unknown counts in the row, never breaks it."""
    sub = await reader(store)
    await sent_at(store, sub, T0)
    for _ in range(2):
        assert await report(store, sub, SOFT, None) is None
    assert await report(store, sub, SOFT, None) is Status.BOUNCED


async def test_only_active_and_pending_subscribers_change_status(store: Store) -> None:
    """Someone who unsubscribed stays unsubscribed after a bounce; it is still counted."""
    sub = await reader(store)
    await store.subscribers.set_status(sub.id, Status.UNSUBSCRIBED)
    assert await report(store, sub, HARD, T0) is None
    assert await status(store, sub) is Status.UNSUBSCRIBED
    pending = await store.subscribers.request_email("new@example.com", breaking=True, daily=True)
    assert await report(store, pending, HARD, T0) is Status.BOUNCED
    assert await store.subscribers.report_counts() == ReportCounts(hard=2)


async def test_a_telegram_subscriber_or_unknown_id_is_not_touched(store: Store) -> None:
    """Reports are about email addresses: a chat id or a missing id gives None, no count."""
    chat = await store.subscribers.upsert(Channel.TELEGRAM, "12345")
    assert await report(store, chat, HARD, T0) is None
    assert await status(store, chat) is Status.ACTIVE
    gone = Subscriber(
        id=999,
        channel=Channel.EMAIL,
        address="x@example.com",
        breaking=True,
        daily=True,
        every_post=False,
        status=Status.ACTIVE,
    )
    assert await report(store, gone, HARD, T0) is None
    assert await store.subscribers.report_counts() == ReportCounts()


async def test_subscribing_again_starts_the_soft_row_afresh(store: Store) -> None:
    """A bounced reader who subscribes and confirms again starts with no soft bounces."""
    sub = await reader(store)
    for day in range(3):
        await report(store, sub, SOFT, T0 + timedelta(days=day))
    again = await store.subscribers.request_email(sub.address, breaking=True, daily=True)
    await store.subscribers.confirm(again.id)
    assert await report(store, sub, SOFT, T0 + timedelta(days=4)) is None
    assert await status(store, sub) is Status.ACTIVE

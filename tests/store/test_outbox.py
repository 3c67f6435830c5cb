"""The outbox tables on a real SQLite file: idempotent keys, claims, leases, stats."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from bot.models import (
    Audience,
    Channel,
    ItemUpdate,
    Kind,
    OutboxStatus,
    Rendered,
    Status,
    TelegramMessage,
)
from bot.outbox import plan
from bot.outbox.plan import Recipient
from bot.store import Store

SENT, FAILED = OutboxStatus.SENT, OutboxStatus.FAILED

NOW = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
MESSAGE = Rendered(telegram=(TelegramMessage("sendMessage", "<b>hi</b>"),))


async def queue(store: Store, key: str, kind: Kind, chats: list[str]) -> int:
    job_id, _ = await store.outbox.create_job(key, kind.value, MESSAGE.encode(), title=key, now=NOW)
    recipients = [
        Recipient.of(await store.subscribers.upsert(Channel.TELEGRAM, chat)) for chat in chats
    ]
    await store.outbox.add_items(job_id, plan.rows_for(key, kind, MESSAGE, recipients))
    await store.outbox.mark_planned(job_id)
    return job_id


async def test_same_job_planned_twice_adds_nothing(store: Store) -> None:
    """Planning a post's fan-out again (a restart, a re-announce) queues no second copy."""
    first = await queue(store, "post:1", Kind.BREAKING, ["1", "2", "3"])
    again = await queue(store, "post:1", Kind.BREAKING, ["1", "2", "3", "4"])
    assert first == again
    assert (await store.outbox.totals())["queued"] == 4  # only the new recipient was added


async def test_claim_takes_breaking_first_and_leases(store: Store) -> None:
    """Claims return breaking alerts before an older digest, and a claimed row is not re-claimed."""
    await queue(store, "digest:2026-01-15", Kind.DIGEST, ["1", "2"])
    await queue(store, "post:9", Kind.BREAKING, ["3"])
    claimed = await store.outbox.claim(2, now=100.0, lease_s=60)
    assert [i.key for i in claimed] == ["post:9:telegram:3", "digest:2026-01-15:telegram:1"]
    rest = await store.outbox.claim(10, now=100.0, lease_s=60)
    assert [i.key for i in rest] == ["digest:2026-01-15:telegram:2"]
    assert await store.outbox.claim(10, now=100.0, lease_s=60) == []


async def test_crash_leaves_rows_reclaimable(store: Store) -> None:
    """Rows a crashed process held come back: at start (recover) or when the lease expires."""
    await queue(store, "post:1", Kind.BREAKING, ["1", "2"])
    [_a, _b] = await store.outbox.claim(10, now=100.0, lease_s=60)
    assert await store.outbox.release_expired(now=150.0) == 0
    assert await store.outbox.release_expired(now=161.0) == 2
    await store.outbox.claim(10, now=200.0, lease_s=60)
    assert await store.outbox.recover() == 2
    assert len(await store.outbox.claim(10, now=200.0, lease_s=60)) == 2


async def test_outcomes_progress_and_failed_list(store: Store) -> None:
    """Written outcomes show in per-job progress; failures are listed and can be retried."""
    job = await queue(store, "post:1", Kind.BREAKING, ["1", "2", "3"])
    a, b, c = await store.outbox.claim(10, now=100.0, lease_s=60)
    await store.outbox.apply(
        [
            ItemUpdate(id=a.id, status=SENT, attempts=0, parts_done=1, sent_at=NOW.isoformat()),
            ItemUpdate(
                id=b.id, status=FAILED, attempts=8, parts_done=0, last_error="Telegram unreachable"
            ),
            ItemUpdate(
                id=c.id,
                status=OutboxStatus.QUEUED,
                attempts=1,
                parts_done=0,
                next_attempt_at=500.0,
                last_error="502",
            ),
        ]
    )
    [progress] = await store.outbox.progress(job_id=job)
    assert progress.counts["sent"] == 1 and progress.counts["failed"] == 1
    assert progress.counts["queued"] == 1 and progress.total == 3
    assert await store.outbox.claim(10, now=200.0, lease_s=60) == []  # not due before 500
    assert await store.outbox.next_due() == 500.0
    [failed] = await store.outbox.failed()
    assert (failed.address, failed.last_error) == ("2", "Telegram unreachable")
    assert await store.outbox.retry_failed(now=300.0) == 1
    assert [i.address for i in await store.outbox.claim(10, now=300.0, lease_s=60)] == ["2"]


async def test_rows_of_departed_subscribers_are_cancelled(store: Store) -> None:
    """A subscriber who left before their turn is skipped, and their row says so."""
    await queue(store, "post:1", Kind.BREAKING, ["1", "2"])
    sub = await store.subscribers.get(Channel.TELEGRAM, "2")
    assert sub is not None
    await store.subscribers.set_status(sub.id, Status.UNSUBSCRIBED)
    assert [i.address for i in await store.outbox.claim(10, now=1.0, lease_s=60)] == ["1"]
    assert (await store.outbox.totals())["cancelled"] == 1


async def test_digest_day_recorded_once(store: Store) -> None:
    """A digest day is recorded once; the next digest starts where the last one ended."""
    until = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert await store.digests.last_until() is None
    assert await store.digests.record(
        "2026-01-15", since=NOW, until=until, posts=2, job_id=None, now=NOW
    )
    assert not await store.digests.record(
        "2026-01-15", since=NOW, until=NOW, posts=0, job_id=None, now=NOW
    )
    assert await store.digests.done("2026-01-15")
    assert await store.digests.last_until() == until


async def test_a_fan_out_planned_in_the_database_reaches_its_audience_once(store: Store) -> None:
    """Batch by batch, every active subscriber of the audience on the job's channels gets one
    row keyed as plan.item_key keys it; the rest none; again, nothing is added."""
    for n in range(25):
        sub = await store.subscribers.upsert(
            Channel.TELEGRAM if n % 2 else Channel.EMAIL,
            str(n) if n % 2 else f"r{n}@example.com",
            breaking=n % 3 != 0,
            daily=True,
            every_post=n % 5 == 0,
        )
        if n % 7 == 6:
            await store.subscribers.set_status(sub.id, Status.BLOCKED)
    everyone = [s async for s in store.subscribers.recipients()]
    wanted = [s for s in everyone if s.breaking or s.every_post]
    job_id, _ = await store.outbox.create_job(
        "post:7", "breaking", MESSAGE.encode(), title="t", now=NOW
    )
    both = {Channel.TELEGRAM, Channel.EMAIL}
    batches = [
        added
        async for added in store.outbox.fan_out(
            job_id, "post:7", Kind.BREAKING, both, Audience.BREAKING, batch=4
        )
    ]
    assert len(batches) == -(-len(wanted) // 4)  # one per 4 subscribers of the audience
    assert sum(b[Channel.TELEGRAM] for b in batches) == sum(
        s.channel == Channel.TELEGRAM for s in wanted
    )
    assert sum(sum(b.values()) for b in batches) == len(wanted)
    claimed = await store.outbox.claim(100, now=time.time(), lease_s=60)
    for channel in both:  # each channel's rows once (batches may be inserted side by side)
        assert sorted(c.subscriber_id for c in claimed if c.channel == channel) == sorted(
            s.id for s in wanted if s.channel == channel
        )
    assert {c.key for c in claimed} == {plan.item_key("post:7", Recipient.of(s)) for s in wanted}
    again = store.outbox.fan_out(job_id, "post:7", Kind.BREAKING, both, Audience.BREAKING)
    assert [sum(b.values()) async for b in again] == [0]
    only_mail = store.outbox.fan_out(
        job_id, "post:7", Kind.BREAKING, {Channel.EMAIL}, Audience.EVERYONE
    )
    added = sum([sum(b.values()) async for b in only_mail])
    assert added == sum(s.channel == Channel.EMAIL for s in everyone) - sum(
        s.channel == Channel.EMAIL for s in wanted
    )

"""The outbox and reader choices, on each backend: the topic filter of a fan-out, the message
ids a sent row keeps, quiet hours read at claim time, and correction rows and their counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.models import (
    Audience,
    Channel,
    ClaimedItem,
    CorrectionCounts,
    ItemUpdate,
    Kind,
    OutboxStatus,
    PlannedItem,
    Rendered,
    TelegramMessage,
)
from bot.store import Store

NOW = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
MESSAGE = Rendered(telegram=(TelegramMessage("sendMessage", "<b>hi</b>"),))
SENT, QUEUED = OutboxStatus.SENT, OutboxStatus.QUEUED


async def job(store: Store, key: str, kind: Kind = Kind.POST) -> int:
    job_id, _ = await store.outbox.create_job(key, kind.value, MESSAGE.encode(), title=key, now=NOW)
    return job_id


async def fan_out(store: Store, key: str, topics: list[str] | None, kind: Kind = Kind.POST) -> int:
    job_id = await job(store, key, kind)
    channels = {Channel.TELEGRAM, Channel.EMAIL}
    batches = store.outbox.fan_out(
        job_id, key, kind, channels, Audience.EVERYONE, batch=2, topics=topics
    )
    return sum([sum(b.values()) async for b in batches])


async def claim_all(store: Store) -> list[ClaimedItem]:
    return await store.outbox.claim(1000, now=100.0, lease_s=60)


async def test_a_fan_out_with_topics_reaches_readers_of_those_topics(store: Store) -> None:
    """A post's notice goes to readers who chose none of the topics (everything) or one the
    post carries; with no topic filter (breaking, broadcast) it goes to everyone."""
    chosen = {
        "1": [],
        "2": ["weather"],
        "3": ["roads", "schools"],
        "4": ["100%_local"],  # LIKE's wildcards are only letters here
        "5": ["weather", "floods"],
    }
    ids = {}
    for chat, topics in chosen.items():
        sub = await store.subscribers.upsert(Channel.TELEGRAM, chat)
        await store.subscribers.set_topics(sub.id, topics)
        ids[chat] = sub.id
    mail = await store.subscribers.upsert(Channel.EMAIL, "a@example.com")
    await store.subscribers.set_topics(mail.id, ["Weather"])

    assert await fan_out(store, "post:1", ["weather", "politics"]) == 4
    assert await fan_out(store, "post:2", ["schools"]) == 2
    assert await fan_out(store, "post:3", ["100%_local"]) == 2
    assert await fan_out(store, "post:4", ["100xxlocal"]) == 1  # % and _ match themselves
    assert await fan_out(store, "post:5", []) == 1  # a post with no topics: "everything" only
    assert await fan_out(store, "post:6", None, Kind.BREAKING) == 6
    rows = await claim_all(store)
    by_job: dict[str, set[str]] = {}
    for row in rows:
        by_job.setdefault(row.key.split(":")[1], set()).add(row.address)
    assert by_job["1"] == {"1", "2", "5", "a@example.com"}
    assert by_job["2"] == {"1", "3"}
    assert by_job["3"] == {"1", "4"}


async def test_message_ids_go_round_through_claim_and_apply(store: Store) -> None:
    """The ids of the parts sent are kept with the row: a retry resumes with them, and an
    update that leaves them out keeps them."""
    sub = await store.subscribers.upsert(Channel.TELEGRAM, "42")
    job_id = await job(store, "post:1")
    item = PlannedItem(
        key="post:1:telegram:42",
        kind=Kind.POST,
        channel=Channel.TELEGRAM,
        subscriber_id=sub.id,
        address="42",
    )
    await store.outbox.add_items(job_id, [item])
    [row] = await claim_all(store)
    assert row.message_ids == ()
    await store.outbox.apply(
        [ItemUpdate(id=row.id, status=QUEUED, attempts=1, parts_done=1, message_ids=(501,))]
    )
    [row] = await claim_all(store)
    assert (row.parts_done, row.message_ids) == (1, (501,))
    await store.outbox.apply(
        [ItemUpdate(id=row.id, status=QUEUED, attempts=2, parts_done=1)]  # ids as they are
    )
    [row] = await claim_all(store)
    assert row.message_ids == (501,)
    await store.outbox.apply(
        [ItemUpdate(id=row.id, status=SENT, attempts=2, parts_done=2, message_ids=(501, 502))]
    )
    edit_id = await job(store, "edit:1:1", Kind.EDIT)
    assert await store.outbox.fan_out_edits(edit_id, "edit:1:1", "post:1") == 1
    [edit] = await claim_all(store)
    assert edit.message_ids == (501, 502)


async def test_claim_carries_the_readers_quiet_hours_and_zone(store: Store) -> None:
    """A claimed row says when its reader wants quiet, read as it is now; a row with no
    subscriber (a channel post) has none."""
    quiet = await store.subscribers.upsert(Channel.TELEGRAM, "1")
    await store.subscribers.set_quiet(quiet.id, "22:00-07:00")
    await store.subscribers.set_timezone(quiet.id, "Europe/Berlin")
    await store.subscribers.upsert(Channel.TELEGRAM, "2")
    await fan_out(store, "post:1", None)
    job_id = await job(store, "post:2")
    await store.outbox.add_items(
        job_id,
        [
            PlannedItem(
                key="post:2:telegram:@channel",
                kind=Kind.POST,
                channel=Channel.TELEGRAM,
                subscriber_id=None,
                address="@channel",
            )
        ],
    )
    await store.subscribers.set_quiet(quiet.id, "23:00-06:00")  # changed after planning
    rows = {r.address: r for r in await claim_all(store)}
    assert (rows["1"].quiet, rows["1"].tz) == ("23:00-06:00", "Europe/Berlin")
    assert (rows["2"].quiet, rows["2"].tz) == (None, None)
    assert (rows["@channel"].quiet, rows["@channel"].tz) == (None, None)


async def test_fan_out_edits_copies_only_rows_sent_with_ids_once(store: Store) -> None:
    """A correction queues one edit per chat that got the post (with its message ids), none
    for rows not sent yet, failed, or email; planning it again adds nothing."""
    chats = {}
    for chat in ("1", "2", "3", "4"):
        chats[chat] = await store.subscribers.upsert(Channel.TELEGRAM, chat)
    await store.subscribers.upsert(Channel.EMAIL, "a@example.com")
    await fan_out(store, "post:9", None)
    job_id = await job(store, "post:9")
    await store.outbox.add_items(
        job_id,
        [
            PlannedItem(
                key="post:9:telegram:@channel",
                kind=Kind.POST,
                channel=Channel.TELEGRAM,
                subscriber_id=None,
                address="@channel",
            )
        ],
    )
    rows = {r.address: r for r in await claim_all(store)}
    done = {"1": (11,), "2": (21, 22), "@channel": (7,), "a@example.com": ()}
    await store.outbox.apply(
        [
            ItemUpdate(id=rows[a].id, status=SENT, attempts=0, parts_done=len(m), message_ids=m)
            for a, m in done.items()
        ]
        + [
            ItemUpdate(id=rows["3"].id, status=OutboxStatus.FAILED, attempts=8, parts_done=0),
            ItemUpdate(id=rows["4"].id, status=QUEUED, attempts=1, parts_done=0),
        ]
    )
    edit_id = await job(store, "edit:9:1", Kind.EDIT)
    assert await store.outbox.fan_out_edits(edit_id, "edit:9:1", "post:9") == 3
    assert await store.outbox.fan_out_edits(edit_id, "edit:9:1", "post:9") == 0
    edits = [r for r in await claim_all(store) if r.kind is Kind.EDIT]
    assert {(r.key, r.address, r.message_ids) for r in edits} == {
        (f"edit:9:1:telegram:{chats['1'].id}", "1", (11,)),
        (f"edit:9:1:telegram:{chats['2'].id}", "2", (21, 22)),
        ("edit:9:1:telegram:@channel", "@channel", (7,)),
    }
    assert {(r.job_id, r.channel, r.subscriber_id) for r in edits if r.address == "1"} == {
        (edit_id, Channel.TELEGRAM, chats["1"].id)
    }
    assert await store.outbox.fan_out_edits(edit_id, "edit:9:1", "post:404") == 0


async def test_corrections_come_before_posts_in_the_queue(store: Store) -> None:
    """An edit row is claimed before an every-post notice queued earlier."""
    await store.subscribers.upsert(Channel.TELEGRAM, "1")
    await fan_out(store, "post:1", None)
    [row] = await claim_all(store)
    await store.outbox.apply(
        [ItemUpdate(id=row.id, status=SENT, attempts=0, parts_done=1, message_ids=(5,))]
    )
    await fan_out(store, "post:2", None)
    edit_id = await job(store, "edit:1:1", Kind.EDIT)
    await store.outbox.fan_out_edits(edit_id, "edit:1:1", "post:1")
    first = await store.outbox.claim(1, now=100.0, lease_s=60)
    assert [r.kind for r in first] == [Kind.EDIT]


async def test_find_job_and_set_payload(store: Store) -> None:
    """The original job is found by its key, and its payload replaced for the rows to come."""
    assert await store.outbox.find_job("post:1") is None
    job_id = await job(store, "post:1")
    assert await store.outbox.find_job("post:1") == (job_id, MESSAGE.encode())
    await store.outbox.set_payload(job_id, "new")
    assert await store.outbox.find_job("post:1") == (job_id, "new")
    assert (await store.outbox.payload(job_id))[0] == "new"


async def test_correction_counts(store: Store) -> None:
    """/stats counts posts corrected and withdrawn, and their edits sent and still queued."""
    assert await store.outbox.correction_counts() == CorrectionCounts()
    for chat in ("1", "2", "3"):
        await store.subscribers.upsert(Channel.TELEGRAM, chat)
    await fan_out(store, "post:1", None)
    rows = await claim_all(store)
    await store.outbox.apply(
        [
            ItemUpdate(id=r.id, status=SENT, attempts=0, parts_done=1, message_ids=(n,))
            for n, r in enumerate(rows, start=1)
        ]
    )
    edit_id = await job(store, "edit:1:1", Kind.EDIT)
    await store.outbox.fan_out_edits(edit_id, "edit:1:1", "post:1")
    gone_id = await job(store, "withdraw:1:2", Kind.EDIT)
    await store.outbox.fan_out_edits(gone_id, "withdraw:1:2", "post:1")
    await job(store, "edit:2:1", Kind.EDIT)  # planned, nothing to edit
    claimed = await store.outbox.claim(2, now=100.0, lease_s=60)  # two now sending
    await store.outbox.apply([ItemUpdate(id=claimed[0].id, status=SENT, attempts=0, parts_done=1)])
    assert await store.outbox.correction_counts() == CorrectionCounts(
        corrected=2, withdrawn=1, edited=1, pending=5
    )


async def test_set_payload_counts_a_revision_only_when_the_payload_changes(store: Store) -> None:
    """The payload's revision goes up with each new payload, not when the same one is set
    again (a correction planned again after a restart)."""
    job_id = await job(store, "post:1")
    assert (await store.outbox.payload(job_id))[1] == 0
    assert await store.outbox.set_payload(job_id, "first fix") == 1
    assert await store.outbox.set_payload(job_id, "first fix") == 1
    assert await store.outbox.set_payload(job_id, "second fix") == 2
    assert await store.outbox.payload(job_id) == ("second fix", 2)


async def test_edits_reach_the_rows_sent_before_the_correction_and_those_named(
    store: Store,
) -> None:
    """Each row keeps the payload revision its parts went out with (the older one where a
    row's first part went before): a correction at revision 1 edits the rows sent with 0,
    not one sent with 1; `only` keeps to the rows named; `unsettled` names the rows on their way."""
    for chat in ("1", "2", "3", "4", "5"):
        await store.subscribers.upsert(Channel.TELEGRAM, chat)
    await fan_out(store, "post:1", None)
    rows = {r.address: r for r in await claim_all(store) if r.channel is Channel.TELEGRAM}
    source_id = rows["1"].job_id
    assert sorted(await store.outbox.unsettled(source_id)) == sorted(r.id for r in rows.values())

    def sent(chat: str, rev: int, parts: int = 1, status: OutboxStatus = SENT) -> ItemUpdate:
        ids = tuple(range(10 * int(chat), 10 * int(chat) + parts))
        return ItemUpdate(
            id=rows[chat].id,
            status=status,
            attempts=0,
            parts_done=parts,
            message_ids=ids,
            payload_rev=rev,
        )

    # "3" got its first part out with revision 0, then paused; its second goes with 1.
    await store.outbox.apply([sent("1", 0), sent("2", 1), sent("3", 0, 1, QUEUED)])
    unsettled = await store.outbox.unsettled(source_id)  # "3" is on its way still
    assert sorted(unsettled) == sorted(rows[c].id for c in ("3", "4", "5"))
    (again,) = [r for r in await claim_all(store) if r.address == "3"]
    await store.outbox.apply([replace(sent("3", 1, 2), id=again.id), sent("4", 0)])
    edit_id = await job(store, "edit:1:1", Kind.EDIT)
    assert await store.outbox.fan_out_edits(edit_id, "edit:1:1", "post:1", below_rev=1) == 3
    edits = {r.address for r in await claim_all(store) if r.kind is Kind.EDIT}
    assert edits == {"1", "3", "4"}
    await store.outbox.apply([sent("5", 0)])
    args = (edit_id, "edit:1:1", "post:1")
    assert await store.outbox.fan_out_edits(*args, below_rev=1, only=[]) == 0
    assert await store.outbox.fan_out_edits(*args, below_rev=1, only=[rows["2"].id]) == 0
    assert await store.outbox.fan_out_edits(*args, below_rev=1, only=[rows["5"].id]) == 1
    assert await store.outbox.unsettled(source_id) == []


async def test_send_again_queues_the_sent_rows_of_one_channel_from_their_first_part(
    store: Store,
) -> None:
    """A post published again after its withdrawal: its sent Telegram rows are queued again
    with no parts done and no message ids; email, failed rows and other jobs stay; the job
    is no longer finished."""
    for chat in ("1", "2", "3"):
        await store.subscribers.upsert(Channel.TELEGRAM, chat)
    await store.subscribers.upsert(Channel.EMAIL, "a@example.com")
    await fan_out(store, "post:1", None)
    await fan_out(store, "post:2", None)
    rows = await claim_all(store)
    job_id = next(r.job_id for r in rows if r.key.startswith("post:1:"))
    failed = next(r for r in rows if r.key.startswith("post:1:") and r.address == "3")
    await store.outbox.apply(
        [
            ItemUpdate(
                id=r.id,
                status=OutboxStatus.FAILED if r is failed else SENT,
                attempts=1,
                parts_done=0 if r is failed else 1,
                message_ids=None if r is failed else (r.id,),
            )
            for r in rows
        ]
    )
    await store.outbox.mark_planned(job_id)
    (finished,) = await store.outbox.finish_jobs([job_id], NOW)
    assert finished.finished_at is not None
    assert await store.outbox.send_again(job_id, Channel.TELEGRAM) == 2
    (progress,) = await store.outbox.progress(job_id=job_id)
    assert progress.finished_at is None
    again = await claim_all(store)
    assert sorted(r.address for r in again) == ["1", "2"]
    assert all(r.job_id == job_id and r.parts_done == 0 and r.message_ids == () for r in again)


async def test_plan_left_over_marks_only_older_unplanned_jobs_of_the_kind(store: Store) -> None:
    """Jobs of the kind created before the time and never planned become planned (and can
    finish); a later one, one of another kind, and one already planned are left alone."""
    outbox = store.outbox
    old, _ = await outbox.create_job("digest:old", "digest", "{}", title="d", now=NOW)
    late = NOW + timedelta(hours=2)
    new, _ = await outbox.create_job("digest:new", "digest", "{}", title="d", now=late)
    post, _ = await outbox.create_job("post:1", "post", "{}", title="p", now=NOW)
    cut = NOW + timedelta(hours=1)
    assert await outbox.plan_left_over("digest", cut) == 1
    assert await outbox.plan_left_over("digest", cut) == 0
    finished = await outbox.finish_jobs([old, new, post], late)
    assert [j.id for j in finished] == [old]

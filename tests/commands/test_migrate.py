"""`herald migrate [--copy-from URL]`: the schema brought up to date, and a SQLite database
copied into PostgreSQL (and back) with nothing lost, nothing copied twice, nothing announced
again."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.commands.migrate import migrate
from bot.models import (
    Channel,
    DigestGroup,
    EmailMessage,
    ItemUpdate,
    Kind,
    OutboxStatus,
    Post,
    Rendered,
    ReportKind,
    Status,
    TelegramMessage,
)
from bot.outbox import plan
from bot.outbox.plan import Recipient
from bot.settings import Settings, secret_key
from bot.store import ImportRow, Store, open_store, secret_for
from bot.tokens import Purpose, Tokens

NOW = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
MESSAGE = Rendered(
    telegram=(TelegramMessage("sendMessage", "<b>hi</b>"),),
    email=EmailMessage(subject="Hi", html="<p>hi</p>", text="hi"),
)
TG, EMAIL = Channel.TELEGRAM, Channel.EMAIL


def post(n: int) -> Post:
    return Post(
        path=f"2026-01-{n:02d}-post-{n}.md",
        slug=f"post-{n}",
        title=f"Post {n}",
        date=datetime(2026, 1, n, 9, tzinfo=UTC),
        url=f"https://news.example.org/2026/01/{n:02d}/post-{n}.html",
        body="Body.",
        excerpt="Body.",
    )


async def queue(store: Store, key: str, addresses: list[tuple[Channel, str]]) -> int:
    job_id, _ = await store.outbox.create_job(key, "breaking", MESSAGE.encode(), title=key, now=NOW)
    recipients = [
        Recipient.of(sub)
        for channel, address in addresses
        if (sub := await store.subscribers.get(channel, address)) is not None
    ]
    await store.outbox.add_items(job_id, plan.rows_for(key, Kind.BREAKING, MESSAGE, recipients))
    await store.outbox.mark_planned(job_id)
    return job_id


async def fill(store: Store) -> None:
    """A database in use: subscribers in every state, posts, a digest, jobs half delivered."""
    subs = store.subscribers
    await subs.import_rows([(TG, str(n), n % 2 == 0, True) for n in range(1, 41)])
    await subs.upsert(TG, "every", every_post=True)
    left = await subs.upsert(TG, "left")
    await subs.set_status(left.id, Status.UNSUBSCRIBED)
    await subs.request_email("pending@example.com", breaking=True, daily=False)
    reader = await subs.upsert(EMAIL, "reader@example.com", daily=False)
    for day in range(2):  # two soft bounces in a row: the third bounces them
        await subs.record_report(
            reader.id, ReportKind.SOFT, sent_at=NOW + timedelta(days=day), now=NOW, soft_limit=3
        )
    gone = await subs.upsert(EMAIL, "gone@example.com")
    await subs.record_report(gone.id, ReportKind.HARD, sent_at=None, now=NOW, soft_limit=3)
    # Reader choices, and their own digests: the site-default readers had the 14th's.
    await subs.import_rows(
        [ImportRow(TG, "3", True, True, ("news",), "22:00-07:00", "19:30", "UTC")]
    )
    await subs.set_topics(reader.id, ["Release Notes"])
    await subs.set_timezone(reader.id, "Europe/Berlin")
    await store.outbox.fan_out_digest(
        None, "digest:14", [TG, EMAIL], slot=(None, None), day="2026-01-14",
        group=DigestGroup(topics=(), since=None, readers=0), until=NOW,
    ).__anext__()  # fmt: skip

    await store.posts.record([post(1), post(2)], announced=False, now=NOW)  # the baseline
    await store.posts.set_meta("watcher.baseline_done", NOW.isoformat())
    [(three, _)] = await store.posts.record(
        [post(3)], announced=True, now=NOW, versions={post(3).path: "v3"}
    )
    await store.posts.mark_announced(three)
    # Post 3 corrected twice (the first correction queued), post 4 announced and withdrawn.
    retitled = replace(post(3), title="Post 3, corrected")
    await store.posts.record([retitled], announced=True, now=NOW + timedelta(hours=1))
    await store.posts.mark_revised(three, 1)
    await store.posts.record(
        [replace(retitled, title="Post 3, again")], announced=True, now=NOW + timedelta(hours=2)
    )
    [(four, _)] = await store.posts.record([post(4)], announced=True, now=NOW)
    await store.posts.mark_announced(four)
    assert await store.posts.withdraw(post(4).path, now=NOW)
    await store.digests.record(
        "2026-01-14", since=NOW - timedelta(days=1), until=NOW, posts=1, job_id=None, now=NOW
    )

    async def send(count: int) -> None:
        claimed = await store.outbox.claim(count, now=time.time(), lease_s=600, channel=TG)
        sent = NOW.isoformat()
        updates = [
            ItemUpdate(
                id=i.id,
                status=OutboxStatus.SENT,
                attempts=0,
                parts_done=1,
                sent_at=sent,
                message_ids=(1000 + i.id,),
            )
            for i in claimed
        ]
        await store.outbox.apply(updates)

    done = await queue(store, "post:1", [(TG, "1"), (TG, "2")])
    await send(2)
    assert [j.id for j in await store.outbox.finish_jobs([done], NOW)] == [done]
    everyone = [(TG, str(n)) for n in range(1, 41)] + [(EMAIL, "reader@example.com")]
    await queue(store, f"post:{three}", everyone)  # delivering when the copy is taken
    await send(2)
    sending = await store.outbox.claim(10, now=time.time(), lease_s=600, channel=TG)
    assert len(sending) == 10


async def snapshot(store: Store) -> dict[str, Any]:
    """What a reader or an operator would see of a database."""
    subscribers = [
        (
            s.id,
            s.channel,
            s.address,
            s.status,
            s.breaking,
            s.daily,
            s.every_post,
            s.created_at,
            s.topics,
            s.quiet,
            s.digest_at,
            s.tz,
        )
        async for s in store.subscribers.all()
    ]
    slots = sorted(await store.subscribers.digest_slots(), key=repr)
    return {
        "digest groups": [await store.subscribers.digest_groups(s, "2026-01-15") for s in slots],
        # Every column as the transfer sees it (revised, digest_day, message_ids, ...).
        "subscriber records": [r async for r in store.transfer.export_subscribers()],
        "post records": [r async for r in store.transfer.export_posts()],
        "row records": sorted(
            [r async for r in store.transfer.export_items()], key=lambda r: r.key
        ),
        "revisions": await store.posts.revisions(),
        "corrected": await store.posts.corrected_since(NOW, NOW + timedelta(1)),
        "subscribers": subscribers,
        "counts": await store.subscribers.counts(),
        "preferences": await store.subscribers.preference_counts(),
        "reports": await store.subscribers.report_counts(),
        "latest": [(p.path, p.title, p.url) for p in await store.posts.latest(10)],
        "announced": [p.path for p in await store.posts.announced_since(NOW, NOW + timedelta(1))],
        "pending": await store.posts.pending(),
        "files": await store.posts.file_versions(),
        "baseline": await store.posts.get_meta("watcher.baseline_done"),
        "digest": await store.digests.last_until(),
    }


def settings_for(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url)


async def copy(into: str, source: str) -> str:
    out = io.StringIO()
    assert await migrate(settings_for(into), out, copy_from=source) == 0
    return out.getvalue()


async def test_a_sqlite_database_copied_into_postgresql_twice_is_copied_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Everything a reader or an operator sees comes over; a second run copies nothing."""
    sqlite = f"sqlite:///{tmp_path / 'herald.db'}"
    async with open_store(sqlite) as source:
        await fill(source)
        before = await snapshot(source)
        totals = await source.outbox.totals()
    first = await copy(postgres_url, sqlite)
    assert "45 of 45 subscribers" in first and "4 of 4 posts" in first
    assert "1 of 1 unfinished jobs with 41 of 41 outbox rows" in first
    assert "39 messages wait to be sent" in first  # 29 queued and 10 that were sending
    again = await copy(postgres_url, sqlite)
    assert "0 of 45 subscribers" in again and "0 of 4 posts" in again
    assert "0 of 1 unfinished jobs with 0 of 41 outbox rows" in again and "0 of 1 digests" in again
    async with open_store(postgres_url) as target:
        assert await snapshot(target) == before  # ids too: links in sent emails still work
        moved = await target.outbox.totals()
        assert (
            moved[OutboxStatus.QUEUED] == totals[OutboxStatus.QUEUED] + totals[OutboxStatus.SENDING]
        )
        assert moved[OutboxStatus.SENT] == 2 and moved[OutboxStatus.SENDING] == 0


async def test_nothing_announced_is_announced_again_after_the_copy(
    tmp_path: Path, postgres_url: str
) -> None:
    """In the copy, no post waits to be announced, a scan finds no new post, and only the
    messages not yet delivered are queued, each once, to the same subscribers."""
    sqlite = f"sqlite:///{tmp_path / 'herald.db'}"
    async with open_store(sqlite) as source:
        await fill(source)
        reader = await source.subscribers.get(EMAIL, "reader@example.com")
    await copy(postgres_url, sqlite)
    async with open_store(postgres_url) as target:
        assert await target.posts.pending() == []
        seen = [post(1), post(2), replace(post(3), body="Edited.")]
        assert await target.posts.record(seen, announced=True, now=NOW) == []  # a scan
        claimed = await target.outbox.claim(100, now=time.time(), lease_s=600)
        assert len(claimed) == 39 and len({i.key for i in claimed}) == 39
        assert not {i.key for i in claimed} & {"post:1:telegram:1", "post:1:telegram:2"}
        email = [i for i in claimed if i.channel is EMAIL]
        assert reader is not None and [(i.subscriber_id, i.address) for i in email] == [
            (reader.id, "reader@example.com")
        ]
        # The soft bounces in a row came over: the third one bounces the reader.
        status = await target.subscribers.record_report(
            reader.id, ReportKind.SOFT, sent_at=NOW + timedelta(days=2), now=NOW, soft_limit=3
        )
        assert status is Status.BOUNCED


async def test_postgresql_copied_back_into_a_new_sqlite_database(
    tmp_path: Path, postgres_url: str
) -> None:
    """The way back works as well: PostgreSQL into SQLite keeps what a reader sees."""
    first = f"sqlite:///{tmp_path / 'first.db'}"
    async with open_store(first) as source:
        await fill(source)
        before = await snapshot(source)
    await copy(postgres_url, first)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    out = await copy(back, postgres_url)
    assert "45 of 45 subscribers" in out and "39 messages wait" in out
    async with open_store(back) as copied:
        assert await snapshot(copied) == before
        assert await copied.posts.pending() == []


def test_herald_migrate_applies_the_schema_and_refuses_to_copy_a_database_into_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`herald migrate` says the schema is up to date; --copy-from the same database exits 1."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HERALD_DATABASE_URL", "sqlite:///data/herald.db")
    assert main(["migrate"]) == 0
    out, _ = capsys.readouterr()
    assert f"database {tmp_path / 'data' / 'herald.db'}: schema up to date" in out
    assert main(["migrate", "--copy-from", "data/herald.db"]) == 1
    _, err = capsys.readouterr()
    assert "--copy-from" in err and "already" in err


async def test_a_move_from_sqlite_keeps_the_secret_key_links_were_signed_with(
    tmp_path: Path, postgres_url: str
) -> None:
    """An unsubscribe link emailed while on SQLite still verifies on PostgreSQL after the move."""
    sqlite = f"sqlite:///{tmp_path / 'herald.db'}"
    async with open_store(sqlite) as source:
        await source.subscribers.upsert(EMAIL, "reader@example.com")
    old = Settings(_env_file=None, database_url=sqlite)  # type: ignore[call-arg]
    key = secret_key(old)  # what herald run on SQLite signed its links with
    link = Tokens(key).make(Purpose.UNSUBSCRIBE, 1)
    said = await copy(postgres_url, sqlite)
    assert "secret key: the one of" in said and "is kept in the database" in said
    async with open_store(postgres_url) as target:
        signing = await secret_for(Settings(_env_file=None, database_url=postgres_url), target)  # type: ignore[call-arg]
        assert Tokens(signing).read(Purpose.UNSUBSCRIBE, link) == 1
        # A database that already had a key of its own keeps it, and the copy says what to do.
        other = tmp_path / "other"
        other.mkdir()
        (other / "secret_key").write_text("another key\n", encoding="ascii")
    elsewhere = f"sqlite:///{other / 'herald.db'}"
    async with open_store(elsewhere) as source:
        await source.subscribers.upsert(EMAIL, "second@example.com")
    warned = await copy(postgres_url, elsewhere)
    assert "set HERALD_SECRET_KEY" in warned

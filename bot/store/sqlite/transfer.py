"""Export and import of whole areas, for `herald migrate --copy-from` (see `bot.store.transfer`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from bot.models import Channel, Kind, OutboxStatus, Status
from bot.store.sqlite.db import iso, transaction
from bot.store.transfer import DigestRecord, ItemRecord, JobRecord, PostRecord, SubscriberRecord

PAGE = 1000  # rows per keyset page when exporting, and per executemany when importing


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _at(text: str) -> datetime:
    when = _when(text)
    assert when is not None
    return when


def _iso(when: datetime | None) -> str | None:
    return None if when is None else iso(when)


def _stamp(when: datetime | None) -> str | None:
    # soft_bounce_sent_at compares as text: always with microseconds, as mail_reports writes.
    return None if when is None else when.astimezone(UTC).isoformat(timespec="microseconds")


# An id taken in the target gives way to a new one (NULL: SQLite picks the next rowid).
_FREE_ID = "CASE WHEN EXISTS (SELECT 1 FROM {table} WHERE id = ?) THEN NULL ELSE ? END"

_SUBSCRIBER_COLUMNS = (
    "channel, address, breaking, daily, every_post, topics, status, created_at, updated_at,"
    " confirmed_at, left_at, hard_bounces, soft_bounces, soft_bounce_sent_at,"
    " hard_bounce_reports, soft_bounce_reports, complaints, quiet, digest_at, tz, digest_day,"
    " digest_until"
)
_POST_COLUMNS = (
    "path, url, fingerprint, title, published_at, breaking, first_seen_at, announced, data,"
    " revision, revised, withdrawn, corrected_at"
)


class SqliteTransfer:
    """Whole areas of a SQLite database as records, streamed in pages."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def _pages(self, sql: str, args: Sequence[object] = ()) -> AsyncIterator[Any]:
        """`sql` (ending `… > ? ORDER BY … LIMIT ?`, its first column the key) in pages."""
        after: object = -1
        while True:
            async with self._conn.execute(sql, [*args, after, PAGE]) as cur:
                rows = list(await cur.fetchall())
            for row in rows:
                yield row
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    async def _write(self, sql: str, rows: AsyncIterable[Sequence[object]]) -> int:
        """Run `sql` for every row in one transaction, PAGE at a time; rows changed."""
        before = self._conn.total_changes
        async with transaction(self._conn):
            batch: list[Sequence[object]] = []
            async for row in rows:
                batch.append(row)
                if len(batch) == PAGE:
                    await self._conn.executemany(sql, batch)
                    batch = []
            await self._conn.executemany(sql, batch)
        return self._conn.total_changes - before

    # -- subscribers -----------------------------------------------------------------------
    async def export_subscribers(self) -> AsyncIterator[SubscriberRecord]:
        async for r in self._pages(
            f"SELECT id, {_SUBSCRIBER_COLUMNS} FROM subscribers WHERE id > ? ORDER BY id LIMIT ?"
        ):
            yield SubscriberRecord(
                id=int(r[0]),
                channel=Channel(r[1]),
                address=str(r[2]),
                breaking=bool(r[3]),
                daily=bool(r[4]),
                every_post=bool(r[5]),
                topics=str(r[6]),
                status=Status(r[7]),
                created_at=_at(r[8]),
                updated_at=_at(r[9]),
                confirmed_at=_when(r[10]),
                left_at=_when(r[11]),
                hard_bounces=int(r[12]),
                soft_bounces=int(r[13]),
                soft_bounce_sent_at=_when(r[14]),
                hard_bounce_reports=int(r[15]),
                soft_bounce_reports=int(r[16]),
                complaints=int(r[17]),
                quiet=r[18],
                digest_at=r[19],
                tz=r[20],
                digest_day=r[21],
                digest_until=_when(r[22]),
            )

    async def import_subscribers(self, records: AsyncIterable[SubscriberRecord]) -> int:
        async def rows() -> AsyncIterator[Sequence[object]]:
            async for s in records:
                yield (
                    s.id,
                    s.id,
                    s.channel.value,
                    s.address,
                    int(s.breaking),
                    int(s.daily),
                    int(s.every_post),
                    s.topics,
                    s.status.value,
                    iso(s.created_at),
                    iso(s.updated_at),
                    _iso(s.confirmed_at),
                    _iso(s.left_at),
                    s.hard_bounces,
                    s.soft_bounces,
                    _stamp(s.soft_bounce_sent_at),
                    s.hard_bounce_reports,
                    s.soft_bounce_reports,
                    s.complaints,
                    s.quiet,
                    s.digest_at,
                    s.tz,
                    s.digest_day,
                    _iso(s.digest_until),
                )

        return await self._write(
            f"INSERT INTO subscribers(id, {_SUBSCRIBER_COLUMNS}) VALUES"
            f" ({_FREE_ID.format(table='subscribers')}, {', '.join('?' * 22)})"
            " ON CONFLICT(channel, address) DO NOTHING",
            rows(),
        )

    # -- the post log ----------------------------------------------------------------------
    async def export_posts(self) -> AsyncIterator[PostRecord]:
        async for r in self._pages(
            f"SELECT id, {_POST_COLUMNS} FROM posts WHERE id > ? ORDER BY id LIMIT ?"
        ):
            yield PostRecord(
                id=int(r[0]),
                path=str(r[1]),
                url=str(r[2]),
                fingerprint=str(r[3]),
                title=str(r[4]),
                published_at=_at(r[5]),
                breaking=bool(r[6]),
                first_seen_at=_at(r[7]),
                state=int(r[8]),
                data=str(r[9]),
                revision=int(r[10]),
                revised=int(r[11]),
                withdrawn=bool(r[12]),
                corrected_at=_when(r[13]),
            )

    async def import_posts(self, records: AsyncIterable[PostRecord]) -> int:
        async def rows() -> AsyncIterator[Sequence[object]]:
            async for p in records:
                yield (
                    p.id,
                    p.id,
                    p.path,
                    p.url,
                    p.fingerprint,
                    p.title,
                    iso(p.published_at),
                    int(p.breaking),
                    iso(p.first_seen_at),
                    p.state,
                    p.data,
                    p.revision,
                    p.revised,
                    int(p.withdrawn),
                    _iso(p.corrected_at),
                    p.path,
                )

        return await self._write(
            f"INSERT INTO posts(id, {_POST_COLUMNS}) SELECT {_FREE_ID.format(table='posts')},"
            f" {', '.join('?' * 13)} WHERE NOT EXISTS (SELECT 1 FROM posts WHERE path = ?)",
            rows(),
        )

    async def export_notes(self) -> tuple[dict[str, str], dict[str, str]]:
        async with self._conn.execute("SELECT key, value FROM meta") as cur:
            meta = {str(r[0]): str(r[1]) for r in await cur.fetchall()}
        async with self._conn.execute("SELECT path, version FROM post_files") as cur:
            files = {str(r[0]): str(r[1]) for r in await cur.fetchall()}
        return meta, files

    async def import_notes(self, meta: Mapping[str, str], files: Mapping[str, str]) -> int:
        before = self._conn.total_changes
        async with transaction(self._conn):
            await self._conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                list(meta.items()),
            )
            await self._conn.executemany(
                "INSERT INTO post_files(path, version) VALUES (?, ?) ON CONFLICT(path) DO NOTHING",
                list(files.items()),
            )
        return self._conn.total_changes - before

    # -- the outbox ------------------------------------------------------------------------
    async def export_jobs(self) -> AsyncIterator[JobRecord]:
        async for r in self._pages(
            "SELECT id, key, kind, title, payload, created_at, planned FROM outbox_jobs"
            " WHERE finished_at IS NULL AND id > ? ORDER BY id LIMIT ?"
        ):
            yield JobRecord(
                id=int(r[0]),
                key=str(r[1]),
                kind=str(r[2]),
                title=str(r[3]),
                payload=str(r[4]),
                created_at=_at(r[5]),
                planned=bool(r[6]),
            )

    async def import_jobs(self, records: AsyncIterable[JobRecord]) -> int:
        async def rows() -> AsyncIterator[Sequence[object]]:
            async for j in records:
                yield (
                    j.id,
                    j.id,
                    j.key,
                    j.kind,
                    j.title,
                    j.payload,
                    iso(j.created_at),
                    int(j.planned),
                )

        return await self._write(
            "INSERT INTO outbox_jobs(id, key, kind, title, payload, created_at, planned)"
            f" VALUES ({_FREE_ID.format(table='outbox_jobs')}, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(key) DO NOTHING",
            rows(),
        )

    async def export_items(self) -> AsyncIterator[ItemRecord]:
        async for r in self._pages(
            "SELECT i.id, j.key, i.key, i.kind, i.channel, s.channel, s.address, i.address,"
            " i.priority, i.status, i.attempts, i.parts_done, i.plain, i.next_attempt_at,"
            " i.last_error, i.sent_at, i.subscriber_id, i.message_ids FROM outbox_items i"
            " JOIN outbox_jobs j ON j.id = i.job_id"
            " LEFT JOIN subscribers s ON s.id = i.subscriber_id"
            " WHERE j.finished_at IS NULL AND i.id > ? ORDER BY i.id LIMIT ?"
        ):
            if r[16] is not None and r[5] is None:
                continue  # its subscriber was removed: claim() would cancel it
            status = OutboxStatus(r[9])
            yield ItemRecord(
                job_key=str(r[1]),
                key=str(r[2]),
                kind=Kind(r[3]),
                channel=Channel(r[4]),
                subscriber=None if r[5] is None else (Channel(r[5]), str(r[6])),
                address=str(r[7]),
                priority=int(r[8]),
                status=OutboxStatus.QUEUED if status is OutboxStatus.SENDING else status,
                attempts=int(r[10]),
                parts_done=int(r[11]),
                plain=int(r[12]),
                next_attempt_at=float(r[13]),
                last_error=None if r[14] is None else str(r[14]),
                sent_at=_when(r[15]),
                message_ids=str(r[17]),
            )

    async def import_items(self, records: AsyncIterable[ItemRecord]) -> int:
        async def rows() -> AsyncIterator[Sequence[object]]:
            async for i in records:
                who = i.subscriber
                yield (
                    i.key,
                    i.kind.value,
                    i.channel.value,
                    i.address,
                    i.priority,
                    i.status.value,
                    i.attempts,
                    i.parts_done,
                    i.plain,
                    i.next_attempt_at,
                    i.last_error,
                    _iso(i.sent_at),
                    None if who is None else who[0].value,
                    None if who is None else who[1],
                    i.job_key,
                    None if who is None else 1,
                    i.message_ids,
                )

        return await self._write(
            "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id, address,"
            " priority, status, attempts, parts_done, plain, next_attempt_at, last_error,"
            " sent_at, message_ids) SELECT j.id, ?1, ?2, ?3, s.id, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
            " ?11, ?12, ?17"
            " FROM outbox_jobs j LEFT JOIN subscribers s ON s.channel = ?13 AND s.address = ?14"
            " WHERE j.key = ?15 AND (?16 IS NULL OR s.id IS NOT NULL)"
            " ON CONFLICT(key) DO NOTHING",
            rows(),
        )

    # -- digests ---------------------------------------------------------------------------
    async def export_digests(self) -> list[DigestRecord]:
        async with self._conn.execute(
            "SELECT d.day, d.since, d.until, d.posts, j.key, d.created_at FROM digests d"
            " LEFT JOIN outbox_jobs j ON j.id = d.job_id ORDER BY d.day"
        ) as cur:
            return [
                DigestRecord(
                    day=str(r[0]),
                    since=_at(r[1]),
                    until=_at(r[2]),
                    posts=int(r[3]),
                    job_key=None if r[4] is None else str(r[4]),
                    created_at=_at(r[5]),
                )
                for r in await cur.fetchall()
            ]

    async def import_digests(self, records: Iterable[DigestRecord]) -> int:
        async def rows() -> AsyncIterator[Sequence[object]]:
            for d in records:
                yield (d.day, iso(d.since), iso(d.until), d.posts, d.job_key, iso(d.created_at))

        return await self._write(
            "INSERT INTO digests(day, since, until, posts, job_id, created_at) VALUES"
            " (?, ?, ?, ?, (SELECT id FROM outbox_jobs WHERE key = ?), ?)"
            " ON CONFLICT(day) DO NOTHING",
            rows(),
        )

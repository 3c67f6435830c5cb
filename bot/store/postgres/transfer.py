"""Export and import of whole areas, for `herald migrate --copy-from` (see `bot.store.transfer`).

Imports stream the records with COPY into a temporary table, then insert what the target
lacks in one statement; everything in one transaction per area.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

from asyncpg import Record

from bot.models import Channel, Kind, OutboxStatus, Status
from bot.store.postgres.db import Conn, Pool, affected, transaction
from bot.store.transfer import DigestRecord, ItemRecord, JobRecord, PostRecord, SubscriberRecord

R = TypeVar("R")
T = TypeVar("T")
STREAM_CHUNK = 1000

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


def _free_id(table: str) -> str:
    """SQL for the id of a staged row `t`: its own where the target has it free, else a new
    one (the sequence was moved past every staged id first, so the two never meet)."""
    return (
        f"CASE WHEN EXISTS (SELECT 1 FROM {table} x WHERE x.id = t.id)"
        f" THEN nextval(pg_get_serial_sequence('{table}', 'id')) ELSE t.id END"
    )


async def _past_staged(conn: Conn, table: str, staged: str) -> None:
    await conn.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT"
        f" COALESCE(MAX(id), 0) FROM {table}), (SELECT COALESCE(MAX(id), 0) FROM {staged}), 1))"
    )


async def _tuples(
    records: AsyncIterable[R], row: Callable[[R], tuple[Any, ...]]
) -> AsyncIterator[tuple[Any, ...]]:
    async for record in records:
        yield row(record)


class PostgresTransfer:
    """Whole areas of a PostgreSQL database as records, streamed with server-side cursors."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def _stream(self, sql: str, build: Callable[[Record], T | None]) -> AsyncIterator[T]:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            async for row in conn.cursor(sql, prefetch=STREAM_CHUNK):
                if (built := build(row)) is not None:
                    yield built

    async def _import(
        self,
        table: str,
        staging: str,
        rows: AsyncIterable[tuple[Any, ...]],
        insert: str,
        *,
        keep_ids: bool = True,
    ) -> int:
        """COPY `rows` into a temporary table (`staging`: its columns) and `insert` from it
        (`{t}`) into `table`. Each table has a staging name of its own: asyncpg remembers a
        table's columns by name."""
        name = f"copied_{table}"
        async with transaction(self._pool) as conn:
            await conn.execute(f"CREATE TEMP TABLE {name} ({staging}) ON COMMIT DROP")
            await conn.copy_records_to_table(name, records=rows)
            if keep_ids:
                await _past_staged(conn, table, name)
            return affected(await conn.execute(insert.format(t=name)))

    # -- subscribers -----------------------------------------------------------------------
    def export_subscribers(self) -> AsyncIterator[SubscriberRecord]:
        def build(r: Record) -> SubscriberRecord:
            return SubscriberRecord(
                id=r[0],
                channel=Channel(r[1]),
                address=r[2],
                breaking=r[3],
                daily=r[4],
                every_post=r[5],
                topics=r[6],
                status=Status(r[7]),
                created_at=r[8],
                updated_at=r[9],
                confirmed_at=r[10],
                left_at=r[11],
                hard_bounces=r[12],
                soft_bounces=r[13],
                soft_bounce_sent_at=r[14],
                hard_bounce_reports=r[15],
                soft_bounce_reports=r[16],
                complaints=r[17],
                quiet=r[18],
                digest_at=r[19],
                tz=r[20],
                digest_day=r[21],
                digest_until=r[22],
            )

        return self._stream(f"SELECT id, {_SUBSCRIBER_COLUMNS} FROM subscribers ORDER BY id", build)

    async def import_subscribers(self, records: AsyncIterable[SubscriberRecord]) -> int:
        def row(s: SubscriberRecord) -> tuple[Any, ...]:
            return (
                s.id,
                s.channel.value,
                s.address,
                s.breaking,
                s.daily,
                s.every_post,
                s.topics,
                s.status.value,
                s.created_at,
                s.updated_at,
                s.confirmed_at,
                s.left_at,
                s.hard_bounces,
                s.soft_bounces,
                s.soft_bounce_sent_at,
                s.hard_bounce_reports,
                s.soft_bounce_reports,
                s.complaints,
                s.quiet,
                s.digest_at,
                s.tz,
                s.digest_day,
                s.digest_until,
            )

        return await self._import(
            "subscribers",
            "id BIGINT, channel TEXT, address TEXT, breaking BOOLEAN, daily BOOLEAN,"
            " every_post BOOLEAN, topics TEXT, status TEXT, created_at TIMESTAMPTZ,"
            " updated_at TIMESTAMPTZ, confirmed_at TIMESTAMPTZ, left_at TIMESTAMPTZ,"
            " hard_bounces INTEGER, soft_bounces INTEGER, soft_bounce_sent_at TIMESTAMPTZ,"
            " hard_bounce_reports INTEGER, soft_bounce_reports INTEGER, complaints INTEGER,"
            " quiet TEXT, digest_at TEXT, tz TEXT, digest_day TEXT, digest_until TIMESTAMPTZ",
            _tuples(records, row),
            f"INSERT INTO subscribers(id, {_SUBSCRIBER_COLUMNS})"
            f" SELECT {_free_id('subscribers')}, {_SUBSCRIBER_COLUMNS} FROM {{t}} t"
            " ORDER BY t.id ON CONFLICT (channel, address) DO NOTHING",
        )

    # -- the post log ----------------------------------------------------------------------
    def export_posts(self) -> AsyncIterator[PostRecord]:
        def build(r: Record) -> PostRecord:
            return PostRecord(
                id=r[0],
                path=r[1],
                url=r[2],
                fingerprint=r[3],
                title=r[4],
                published_at=r[5],
                breaking=r[6],
                first_seen_at=r[7],
                state=r[8],
                data=r[9],
                revision=r[10],
                revised=r[11],
                withdrawn=r[12],
                corrected_at=r[13],
            )

        return self._stream(f"SELECT id, {_POST_COLUMNS} FROM posts ORDER BY id", build)

    async def import_posts(self, records: AsyncIterable[PostRecord]) -> int:
        def row(p: PostRecord) -> tuple[Any, ...]:
            return (
                p.id,
                p.path,
                p.url,
                p.fingerprint,
                p.title,
                p.published_at,
                p.breaking,
                p.first_seen_at,
                p.state,
                p.data,
                p.revision,
                p.revised,
                p.withdrawn,
                p.corrected_at,
            )

        return await self._import(
            "posts",
            "id BIGINT, path TEXT, url TEXT, fingerprint TEXT, title TEXT,"
            " published_at TIMESTAMPTZ, breaking BOOLEAN, first_seen_at TIMESTAMPTZ,"
            " announced SMALLINT, data TEXT, revision INTEGER, revised INTEGER,"
            " withdrawn BOOLEAN, corrected_at TIMESTAMPTZ",
            _tuples(records, row),
            f"INSERT INTO posts(id, {_POST_COLUMNS})"
            f" SELECT {_free_id('posts')}, {_POST_COLUMNS} FROM {{t}} t"
            " WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.path = t.path) ORDER BY t.id",
        )

    async def export_notes(self) -> tuple[dict[str, str], dict[str, str]]:
        meta = await self._pool.fetch("SELECT key, value FROM meta")
        files = await self._pool.fetch("SELECT path, version FROM post_files")
        return {r[0]: r[1] for r in meta}, {r[0]: r[1] for r in files}

    async def import_notes(self, meta: Mapping[str, str], files: Mapping[str, str]) -> int:
        async with transaction(self._pool) as conn:
            notes = await conn.execute(
                "INSERT INTO meta(key, value) SELECT * FROM unnest($1::text[], $2::text[])"
                " ON CONFLICT (key) DO NOTHING",
                list(meta),
                list(meta.values()),
            )
            versions = await conn.execute(
                "INSERT INTO post_files(path, version) SELECT * FROM unnest($1::text[],"
                " $2::text[]) ON CONFLICT (path) DO NOTHING",
                list(files),
                list(files.values()),
            )
        return affected(notes) + affected(versions)

    # -- the outbox ------------------------------------------------------------------------
    def export_jobs(self) -> AsyncIterator[JobRecord]:
        def build(r: Record) -> JobRecord:
            return JobRecord(
                id=r[0],
                key=r[1],
                kind=r[2],
                title=r[3],
                payload=r[4],
                created_at=r[5],
                planned=r[6],
            )

        return self._stream(
            "SELECT id, key, kind, title, payload, created_at, planned FROM outbox_jobs"
            " WHERE finished_at IS NULL ORDER BY id",
            build,
        )

    async def import_jobs(self, records: AsyncIterable[JobRecord]) -> int:
        def row(j: JobRecord) -> tuple[Any, ...]:
            return (j.id, j.key, j.kind, j.title, j.payload, j.created_at, j.planned)

        return await self._import(
            "outbox_jobs",
            "id BIGINT, key TEXT, kind TEXT, title TEXT, payload TEXT, created_at TIMESTAMPTZ,"
            " planned BOOLEAN",
            _tuples(records, row),
            "INSERT INTO outbox_jobs(id, key, kind, title, payload, created_at, planned)"
            f" SELECT {_free_id('outbox_jobs')}, key, kind, title, payload, created_at,"
            " planned FROM {t} t ORDER BY t.id ON CONFLICT (key) DO NOTHING",
        )

    def export_items(self) -> AsyncIterator[ItemRecord]:
        def build(r: Record) -> ItemRecord | None:
            if r[15] is not None and r[4] is None:
                return None  # its subscriber was removed: claim() would cancel it
            status = OutboxStatus(r[8])
            return ItemRecord(
                job_key=r[0],
                key=r[1],
                kind=Kind(r[2]),
                channel=Channel(r[3]),
                subscriber=None if r[4] is None else (Channel(r[4]), r[5]),
                address=r[6],
                priority=r[7],
                status=OutboxStatus.QUEUED if status is OutboxStatus.SENDING else status,
                attempts=r[9],
                parts_done=r[10],
                plain=r[11],
                next_attempt_at=r[12],
                last_error=r[13],
                sent_at=r[14],
                message_ids=r[16],
            )

        return self._stream(
            "SELECT j.key, i.key, i.kind, i.channel, s.channel, s.address, i.address,"
            " i.priority, i.status, i.attempts, i.parts_done, i.plain, i.next_attempt_at,"
            " i.last_error, i.sent_at, i.subscriber_id, i.message_ids FROM outbox_items i"
            " JOIN outbox_jobs j ON j.id = i.job_id"
            " LEFT JOIN subscribers s ON s.id = i.subscriber_id"
            " WHERE j.finished_at IS NULL ORDER BY i.id",
            build,
        )

    async def import_items(self, records: AsyncIterable[ItemRecord]) -> int:
        def row(i: ItemRecord) -> tuple[Any, ...]:
            who = i.subscriber
            return (
                i.job_key,
                i.key,
                i.kind.value,
                i.channel.value,
                None if who is None else who[0].value,
                None if who is None else who[1],
                i.address,
                i.priority,
                i.status.value,
                i.attempts,
                i.parts_done,
                i.plain,
                i.next_attempt_at,
                i.last_error,
                i.sent_at,
                i.message_ids,
            )

        return await self._import(
            "outbox_items",
            "job_key TEXT, key TEXT, kind TEXT, channel TEXT, sub_channel TEXT,"
            " sub_address TEXT, address TEXT, priority SMALLINT, status TEXT, attempts INTEGER,"
            " parts_done INTEGER, plain SMALLINT, next_attempt_at DOUBLE PRECISION,"
            " last_error TEXT, sent_at TIMESTAMPTZ, message_ids TEXT",
            _tuples(records, row),
            "INSERT INTO outbox_items(job_id, key, kind, channel, subscriber_id, address,"
            " priority, status, attempts, parts_done, plain, next_attempt_at, last_error,"
            " sent_at, message_ids) SELECT j.id, t.key, t.kind, t.channel, s.id, t.address,"
            " t.priority, t.status, t.attempts, t.parts_done, t.plain, t.next_attempt_at,"
            " t.last_error, t.sent_at, t.message_ids FROM {t} t"
            " JOIN outbox_jobs j ON j.key = t.job_key"
            " LEFT JOIN subscribers s ON s.channel = t.sub_channel AND s.address = t.sub_address"
            " WHERE t.sub_channel IS NULL OR s.id IS NOT NULL ON CONFLICT (key) DO NOTHING",
            keep_ids=False,
        )

    # -- digests ---------------------------------------------------------------------------
    async def export_digests(self) -> list[DigestRecord]:
        rows = await self._pool.fetch(
            "SELECT d.day, d.since, d.until, d.posts, j.key, d.created_at FROM digests d"
            " LEFT JOIN outbox_jobs j ON j.id = d.job_id ORDER BY d.day"
        )
        return [
            DigestRecord(
                day=r[0], since=r[1], until=r[2], posts=r[3], job_key=r[4], created_at=r[5]
            )
            for r in rows
        ]

    async def import_digests(self, records: Iterable[DigestRecord]) -> int:
        async def rows() -> AsyncIterator[tuple[Any, ...]]:
            for d in records:
                yield (d.day, d.since, d.until, d.posts, d.job_key, d.created_at)

        return await self._import(
            "digests",
            "day TEXT, since TIMESTAMPTZ, until TIMESTAMPTZ, posts INTEGER, job_key TEXT,"
            " created_at TIMESTAMPTZ",
            rows(),
            "INSERT INTO digests(day, since, until, posts, job_id, created_at)"
            " SELECT t.day, t.since, t.until, t.posts, j.id, t.created_at FROM {t} t"
            " LEFT JOIN outbox_jobs j ON j.key = t.job_key ON CONFLICT (day) DO NOTHING",
            keep_ids=False,
        )

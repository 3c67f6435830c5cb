"""Subscribers of both channels, their preferences and their status (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime

from asyncpg import Record

from bot.models import Channel, PreferenceCounts, Status, Subscriber
from bot.store.interface import ImportRow
from bot.store.postgres.db import Pool, affected, transaction
from bot.store.postgres.mail_reports import MailReports

MIGRATIONS = [
    """
    CREATE TABLE subscribers (
        id BIGSERIAL PRIMARY KEY,
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        breaking BOOLEAN NOT NULL DEFAULT TRUE,
        daily BOOLEAN NOT NULL DEFAULT TRUE,
        every_post BOOLEAN NOT NULL DEFAULT FALSE,
        topics TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        confirmed_at TIMESTAMPTZ,
        left_at TIMESTAMPTZ,
        hard_bounces INTEGER NOT NULL DEFAULT 0,
        soft_bounces INTEGER NOT NULL DEFAULT 0,
        soft_bounce_sent_at TIMESTAMPTZ,
        hard_bounce_reports INTEGER NOT NULL DEFAULT 0,
        soft_bounce_reports INTEGER NOT NULL DEFAULT 0,
        complaints INTEGER NOT NULL DEFAULT 0,
        UNIQUE (channel, address)
    );
    CREATE INDEX subscribers_status ON subscribers(status, channel);
    -- A fan-out streams the active ones in id order straight from these, with no sort.
    CREATE INDEX subscribers_active ON subscribers(id) WHERE status = 'active';
    CREATE INDEX subscribers_active_channel ON subscribers(channel, id) WHERE status = 'active'
    """,
]

STREAM_CHUNK = 1000  # rows a server-side cursor fetches at a time
PREFETCH = 2  # chunks read ahead of the caller
_COLUMNS = "id, channel, address, breaking, daily, every_post, status, created_at"

# Statuses an import may overwrite: someone who unsubscribed, blocked the bot or bounced
# stays out even when an old list names them again. A name given twice: the last one wins.
_IMPORT_UPSERT = (
    "INSERT INTO subscribers(channel, address, breaking, daily, status, created_at,"
    " updated_at, confirmed_at)"
    " SELECT DISTINCT ON (channel, address) channel, address, breaking, daily, 'active',"
    " $1, $1, $1 FROM import_rows ORDER BY channel, address, n DESC"
    " ON CONFLICT (channel, address) DO UPDATE SET breaking = excluded.breaking,"
    " daily = excluded.daily, status = 'active', updated_at = excluded.updated_at,"
    " confirmed_at = COALESCE(subscribers.confirmed_at, excluded.confirmed_at)"
    " WHERE subscribers.status IN ('active', 'pending')"
)


def _now() -> datetime:
    return datetime.now(UTC)


# Looked up, not called: Channel("email") costs as much as the rest of a row.
_CHANNEL = {c.value: c for c in Channel}
_STATUS = {s.value: s for s in Status}


def _row(row: Record) -> Subscriber:
    return Subscriber(
        id=row[0],
        channel=_CHANNEL[row[1]],
        address=row[2],
        breaking=row[3],
        daily=row[4],
        every_post=row[5],
        status=_STATUS[row[6]],
        created_at=row[7],
    )


def _numbered(rows: Iterable[ImportRow]) -> Iterator[tuple[int, str, str, bool, bool]]:
    for n, (channel, address, breaking, daily) in enumerate(rows):
        yield n, channel.value, address, breaking, daily


class Subscribers(MailReports):
    """The `subscribers` table. Scans stream rows; nothing loads the whole table."""

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)

    async def get(self, channel: Channel, address: str) -> Subscriber | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM subscribers WHERE channel = $1 AND address = $2",
            channel.value,
            address,
        )
        return _row(row) if row else None

    async def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM subscribers WHERE id = $1", subscriber_id
        )
        return _row(row) if row else None

    async def upsert(
        self,
        channel: Channel,
        address: str,
        *,
        breaking: bool = True,
        daily: bool = True,
        every_post: bool = False,
        status: Status = Status.ACTIVE,
    ) -> Subscriber:
        """Add a subscriber or update the preferences and status of a known one."""
        now = _now()
        row = await self._pool.fetchrow(
            "INSERT INTO subscribers(channel, address, breaking, daily, every_post, status,"
            " created_at, updated_at, confirmed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)"
            " ON CONFLICT (channel, address) DO UPDATE SET breaking = excluded.breaking,"
            " daily = excluded.daily, every_post = excluded.every_post,"
            " status = excluded.status, updated_at = excluded.updated_at,"
            " confirmed_at = COALESCE(subscribers.confirmed_at, excluded.confirmed_at),"
            " left_at = NULL, hard_bounces = 0, soft_bounces = 0"
            f" RETURNING {_COLUMNS}",
            channel.value,
            address,
            breaking,
            daily,
            every_post,
            status.value,
            now,
            now if status is Status.ACTIVE else None,
        )
        assert row is not None
        return _row(row)

    async def request_email(self, address: str, *, breaking: bool, daily: bool) -> Subscriber:
        """Start double opt-in for `address`: a pending subscriber, or the known one as it is.

        An active subscriber is left untouched (a stranger must not change its preferences);
        one that left (unsubscribed, bounced) or is still pending becomes pending again with
        the preferences asked for, so the confirmation link brings it back.
        """
        now = _now()
        async with transaction(self._pool) as conn:
            await conn.execute(
                "INSERT INTO subscribers(channel, address, breaking, daily, status, created_at,"
                " updated_at) VALUES ('email', $1, $2, $3, 'pending', $4, $4)"
                " ON CONFLICT (channel, address) DO UPDATE SET breaking = excluded.breaking,"
                " daily = excluded.daily, status = 'pending', updated_at = excluded.updated_at"
                " WHERE subscribers.status != 'active'",
                address,
                breaking,
                daily,
                now,
            )
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM subscribers WHERE channel = 'email' AND address = $1",
                address,
            )
        assert row is not None  # written or found in the same transaction
        return _row(row)

    async def confirm(self, subscriber_id: int) -> Subscriber | None:
        """Pending → active (confirmed now); an active one stays as it is; None if unknown."""
        now = _now()
        await self._pool.execute(
            "UPDATE subscribers SET status = 'active', confirmed_at = $1, updated_at = $1,"
            " left_at = NULL, hard_bounces = 0, soft_bounces = 0"
            " WHERE id = $2 AND status = 'pending'",
            now,
            subscriber_id,
        )
        return await self.get_by_id(subscriber_id)

    async def set_prefs(
        self, subscriber_id: int, *, breaking: bool, daily: bool, every_post: bool
    ) -> None:
        await self._pool.execute(
            "UPDATE subscribers SET breaking = $1, daily = $2, every_post = $3, updated_at = $4"
            " WHERE id = $5",
            breaking,
            daily,
            every_post,
            _now(),
            subscriber_id,
        )

    async def set_status(self, subscriber_id: int, status: Status) -> None:
        now = _now()
        left = now if status in (Status.UNSUBSCRIBED, Status.BLOCKED, Status.BOUNCED) else None
        await self._pool.execute(
            "UPDATE subscribers SET status = $1, updated_at = $2, left_at = $3,"
            " confirmed_at = CASE WHEN $1 = 'active' THEN COALESCE(confirmed_at, $2)"
            " ELSE confirmed_at END WHERE id = $4",
            status.value,
            now,
            left,
            subscriber_id,
        )

    async def change_address(self, subscriber_id: int, address: str) -> None:
        """A Telegram group became a supergroup: keep the subscriber, store its new chat id.

        A subscriber already at the new address gives way (SQLite's UPDATE OR REPLACE).
        """
        async with transaction(self._pool) as conn:
            await conn.execute(
                "DELETE FROM subscribers WHERE address = $2 AND id != $1 AND channel ="
                " (SELECT channel FROM subscribers WHERE id = $1)",
                subscriber_id,
                address,
            )
            await conn.execute(
                "UPDATE subscribers SET address = $1, updated_at = $2 WHERE id = $3",
                address,
                _now(),
                subscriber_id,
            )

    async def remove(self, channel: Channel, address: str) -> bool:
        """Delete a subscriber and everything known about it; False when there was none."""
        status = await self._pool.execute(
            "DELETE FROM subscribers WHERE channel = $1 AND address = $2", channel.value, address
        )
        return affected(status) > 0

    async def import_rows(self, rows: Iterable[ImportRow]) -> int:
        """Add or update many confirmed subscribers in one transaction; returns rows written.

        Known subscribers get the imported preferences; those who unsubscribed, blocked the
        bot or bounced are left out (an old list must not bring them back). The rows are
        streamed in with COPY, then upserted in one statement.
        """
        async with transaction(self._pool) as conn:
            await conn.execute(
                "CREATE TEMP TABLE import_rows (n BIGINT, channel TEXT, address TEXT,"
                " breaking BOOLEAN, daily BOOLEAN) ON COMMIT DROP"
            )
            await conn.copy_records_to_table("import_rows", records=_numbered(rows))
            return affected(await conn.execute(_IMPORT_UPSERT, _now()))

    async def add_hard_bounce(self, subscriber_id: int) -> int:
        """Count one permanent failure; returns the count so far."""
        count = await self._pool.fetchval(
            "UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = $1"
            " RETURNING hard_bounces",
            subscriber_id,
        )
        return int(count or 0)

    async def recipients(
        self,
        channel: Channel | None = None,
        *,
        breaking: bool | None = None,
        daily: bool | None = None,
        every_post: bool | None = None,
    ) -> AsyncIterator[Subscriber]:
        """Active subscribers matching every given preference, streamed in id order."""
        where = ["status = 'active'"]
        args: list[object] = []
        if channel is not None:
            args.append(channel.value)
            where.append(f"channel = ${len(args)}")
        for column, wanted in (
            ("breaking", breaking),
            ("daily", daily),
            ("every_post", every_post),
        ):
            if wanted is not None:
                args.append(wanted)
                where.append(f"{column} = ${len(args)}")
        sql = f"SELECT {_COLUMNS} FROM subscribers WHERE {' AND '.join(where)} ORDER BY id"
        async for sub in self._stream(sql, args):
            yield sub

    async def all(
        self, channel: Channel | None = None, status: Status | None = None
    ) -> AsyncIterator[Subscriber]:
        """Every subscriber (optionally of one channel and status), streamed in id order."""
        where = ["TRUE"]
        args: list[object] = []
        if channel is not None:
            args.append(channel.value)
            where.append(f"channel = ${len(args)}")
        if status is not None:
            args.append(status.value)
            where.append(f"status = ${len(args)}")
        sql = f"SELECT {_COLUMNS} FROM subscribers WHERE {' AND '.join(where)} ORDER BY id"
        async for sub in self._stream(sql, args):
            yield sub

    async def _stream(self, sql: str, args: list[object]) -> AsyncIterator[Subscriber]:
        """`sql` read through a server-side cursor, STREAM_CHUNK rows at a time.

        A task reads ahead (at most PREFETCH chunks): the next rows are fetched and built
        while the caller awaits its own writes (a fan-out's inserts), instead of after.
        The cursor holds one pooled connection (and its snapshot) until the scan ends; the
        caller's writes go through other connections, and MVCC lets both go on.
        """
        chunks: asyncio.Queue[list[Subscriber] | BaseException | None] = asyncio.Queue(PREFETCH)

        async def read() -> None:
            try:
                async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                    cursor = await conn.cursor(sql, *args)
                    while rows := await cursor.fetch(STREAM_CHUNK):
                        await chunks.put([_row(r) for r in rows])
                await chunks.put(None)
            except Exception as exc:  # handed to the reader, raised there
                await chunks.put(exc)

        reader = asyncio.create_task(read())
        try:
            while (chunk := await chunks.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                for sub in chunk:
                    yield sub
        finally:
            reader.cancel()
            with suppress(asyncio.CancelledError):
                await reader

    async def counts(self) -> dict[tuple[str, str], int]:
        """(channel, status) → number of subscribers."""
        rows = await self._pool.fetch(
            "SELECT channel, status, COUNT(*) FROM subscribers GROUP BY channel, status"
        )
        return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}

    async def preference_counts(self) -> dict[Channel, PreferenceCounts]:
        """Per channel: active subscribers and how many of them want each kind of message."""
        result = {channel: PreferenceCounts() for channel in Channel}
        rows = await self._pool.fetch(
            "SELECT channel, COUNT(*), COUNT(*) FILTER (WHERE breaking),"
            " COUNT(*) FILTER (WHERE daily), COUNT(*) FILTER (WHERE every_post)"
            " FROM subscribers WHERE status = 'active' GROUP BY channel"
        )
        for r in rows:
            result[Channel(r[0])] = PreferenceCounts(
                active=int(r[1]), breaking=int(r[2]), daily=int(r[3]), every_post=int(r[4])
            )
        return result

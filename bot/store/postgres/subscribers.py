"""Subscribers of both channels, their preferences and their status (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime

from asyncpg import Record

from bot.choices import topics_of, topics_text
from bot.models import Channel, DigestGroup, PreferenceCounts, Status, Subscriber
from bot.store.interface import DigestSlot, ImportRow
from bot.store.postgres.db import Pool, affected, transaction
from bot.store.postgres.mail_reports import MailReports
from bot.store.rules import BY_HAND_DAY

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
    # Reader choices (issue 15): quiet hours, own digest time and zone (NULL: the site's),
    # and where the reader's own digest stands: the local day of the last one and where
    # its window ended (the next one starts there).
    """
    ALTER TABLE subscribers ADD COLUMN quiet TEXT;
    ALTER TABLE subscribers ADD COLUMN digest_at TEXT;
    ALTER TABLE subscribers ADD COLUMN tz TEXT;
    ALTER TABLE subscribers ADD COLUMN digest_day TEXT;
    ALTER TABLE subscribers ADD COLUMN digest_until TIMESTAMPTZ;
    CREATE INDEX subscribers_digest_slot ON subscribers(digest_at, tz)
        WHERE status = 'active' AND daily
    """,
]

STREAM_CHUNK = 1000  # rows a server-side cursor fetches at a time
PREFETCH = 2  # chunks read ahead of the caller
_COLUMNS = (
    "id, channel, address, breaking, daily, every_post, status, created_at,"
    " topics, quiet, digest_at, tz"
)


def matches(column: str, param: str, value: object) -> str:
    """`column` equal to `param`, NULL matching NULL, written for the value at hand so that
    an index on `column` serves it (IS NOT DISTINCT FROM would scan the table)."""
    return f"{column} IS NULL AND {param} IS NULL" if value is None else f"{column} = {param}"


def due_sql(slot: DigestSlot) -> str:
    """Readers of `slot` (digest_at $1, tz $2) still due for the local day $3."""
    return (
        f"status = 'active' AND daily AND {matches('digest_at', '$1::text', slot[0])}"
        f" AND {matches('tz', '$2::text', slot[1])}"
        " AND (digest_day IS NULL OR digest_day < $3)"
    )


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
# Then the reader choices a row gives (NULL in `import_rows`: left out, kept; "": cleared)
# for those the upsert let in, new ones included.
_IMPORT_CHOICES = (
    "UPDATE subscribers s SET"
    " topics = COALESCE(i.topics, s.topics), quiet = CASE WHEN i.quiet IS NULL THEN s.quiet"
    " ELSE NULLIF(i.quiet, '') END, digest_at = CASE WHEN i.digest_at IS NULL THEN"
    " s.digest_at ELSE NULLIF(i.digest_at, '') END, tz = CASE WHEN i.tz IS NULL THEN s.tz"
    " ELSE NULLIF(i.tz, '') END"
    " FROM (SELECT DISTINCT ON (channel, address) * FROM import_rows"
    " ORDER BY channel, address, n DESC) i"
    " WHERE s.channel = i.channel AND s.address = i.address AND s.status = 'active'"
    " AND (i.topics IS NOT NULL OR i.quiet IS NOT NULL OR i.digest_at IS NOT NULL"
    " OR i.tz IS NOT NULL)"
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
        topics=topics_of(row[8]),
        quiet=row[9] or None,
        digest_at=row[10] or None,
        tz=row[11] or None,
    )


_ImportRecord = tuple[int, str, str, bool, bool, str | None, str | None, str | None, str | None]


def _numbered(rows: Iterable[ImportRow]) -> Iterator[_ImportRecord]:
    for n, given in enumerate(rows):
        row = ImportRow(*given)  # a plain (channel, address, breaking, daily) tuple too
        topics = None if row.topics is None else topics_text(row.topics)
        yield (
            n, row.channel.value, row.address, row.breaking, row.daily,
            topics, row.quiet, row.digest_at, row.tz,
        )  # fmt: skip


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

    async def _set(self, subscriber_id: int, column: str, value: str | None) -> None:
        await self._pool.execute(
            f"UPDATE subscribers SET {column} = $1, updated_at = $2 WHERE id = $3",
            value,
            _now(),
            subscriber_id,
        )

    async def set_topics(self, subscriber_id: int, topics: Collection[str]) -> None:
        """The reader's topics (casefolded here); empty: everything."""
        await self._set(subscriber_id, "topics", topics_text(topics))

    async def set_quiet(self, subscriber_id: int, quiet: str | None) -> None:
        """Quiet hours as "HH:MM-HH:MM" (validated by the caller), or None: off."""
        await self._set(subscriber_id, "quiet", quiet or None)

    async def set_digest_time(self, subscriber_id: int, at: str | None) -> None:
        """The reader's digest time "HH:MM" (validated by the caller), or None: the site's."""
        await self._set(subscriber_id, "digest_at", at or None)

    async def set_timezone(self, subscriber_id: int, tz: str | None) -> None:
        """The reader's IANA zone (validated by the caller), or None: the site's."""
        await self._set(subscriber_id, "tz", tz or None)

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
                " breaking BOOLEAN, daily BOOLEAN, topics TEXT, quiet TEXT, digest_at TEXT,"
                " tz TEXT) ON COMMIT DROP"
            )
            await conn.copy_records_to_table("import_rows", records=_numbered(rows))
            written = affected(await conn.execute(_IMPORT_UPSERT, _now()))
            await conn.execute(_IMPORT_CHOICES)
            return written

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

    async def digest_slots(self) -> list[DigestSlot]:
        """The distinct (digest_at, tz) of active subscribers with the digest on."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT digest_at, tz FROM subscribers WHERE status = 'active' AND daily"
            " ORDER BY digest_at, tz"
        )
        return [(r[0], r[1]) for r in rows]

    async def digest_groups(self, slot: DigestSlot, day: str | None) -> list[DigestGroup]:
        """Active digest readers of `slot` not done for local `day`, grouped by (topics,
        since); a NULL part of the slot matches NULL."""
        rows = await self._pool.fetch(
            "SELECT topics, digest_until, COUNT(*) FROM subscribers"
            f" WHERE {due_sql(slot)} GROUP BY topics, digest_until"
            " ORDER BY topics, digest_until",
            *slot,
            BY_HAND_DAY if day is None else day,
        )
        return [DigestGroup(topics=topics_of(r[0]), since=r[1], readers=int(r[2])) for r in rows]

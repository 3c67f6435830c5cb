"""Subscribers of both channels, their preferences and their status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable
from datetime import UTC, datetime

import aiosqlite

from bot.choices import topics_of, topics_text
from bot.models import Channel, DigestGroup, PreferenceCounts, Status, Subscriber
from bot.store.interface import DigestSlot, ImportRow
from bot.store.rules import BY_HAND_DAY
from bot.store.sqlite.db import transaction
from bot.store.sqlite.mail_reports import MailReports

MIGRATIONS = [
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        breaking INTEGER NOT NULL DEFAULT 1,
        daily INTEGER NOT NULL DEFAULT 1,
        every_post INTEGER NOT NULL DEFAULT 0,
        topics TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        confirmed_at TEXT,
        left_at TEXT,
        hard_bounces INTEGER NOT NULL DEFAULT 0,
        UNIQUE (channel, address)
    );
    CREATE INDEX subscribers_status ON subscribers(status, channel)
    """,
    # Scans of every channel stream in id order straight from this index, with no sort.
    "CREATE INDEX subscribers_by_status ON subscribers(status)",
    # What the bounce listener was told: the soft bounces in a row (and when the last bounced
    # email was sent), and every hard bounce, soft bounce and complaint received.
    """
    ALTER TABLE subscribers ADD COLUMN soft_bounces INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE subscribers ADD COLUMN soft_bounce_sent_at TEXT;
    ALTER TABLE subscribers ADD COLUMN hard_bounce_reports INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE subscribers ADD COLUMN soft_bounce_reports INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE subscribers ADD COLUMN complaints INTEGER NOT NULL DEFAULT 0
    """,
    # Reader choices (issue 15): quiet hours, own digest time and zone (NULL: the site's),
    # and where the reader's own digest stands: the local day of the last one and where
    # its window ended (the next one starts there).
    """
    ALTER TABLE subscribers ADD COLUMN quiet TEXT;
    ALTER TABLE subscribers ADD COLUMN digest_at TEXT;
    ALTER TABLE subscribers ADD COLUMN tz TEXT;
    ALTER TABLE subscribers ADD COLUMN digest_day TEXT;
    ALTER TABLE subscribers ADD COLUMN digest_until TEXT;
    CREATE INDEX subscribers_digest_slot ON subscribers(digest_at, tz)
    """,
]

STREAM_CHUNK = 1000
# Readers of a slot (digest_at, tz) still due for a local day: three parameters.
DUE_SQL = (
    "status = 'active' AND daily AND digest_at IS ? AND tz IS ?"
    " AND (digest_day IS NULL OR digest_day < ?)"
)
_COLUMNS = (
    "id, channel, address, breaking, daily, every_post, status, created_at,"
    " topics, quiet, digest_at, tz"
)

# Statuses an import may overwrite: someone who unsubscribed, blocked the bot or bounced
# stays out even when an old list names them again. A reader choice left out of the row
# (its `*_given` 0) keeps what a known subscriber chose.
_IMPORT_UPSERT = (
    "INSERT INTO subscribers(channel, address, breaking, daily, status, created_at,"
    " updated_at, confirmed_at, topics, quiet, digest_at, tz) VALUES (:channel, :address,"
    " :breaking, :daily, 'active', :now, :now, :now, :topics, :quiet, :digest_at, :tz) "
    "ON CONFLICT(channel, address) DO UPDATE SET breaking = excluded.breaking,"
    " daily = excluded.daily, status = 'active', updated_at = excluded.updated_at,"
    " confirmed_at = COALESCE(subscribers.confirmed_at, excluded.confirmed_at),"
    " topics = CASE WHEN :topics_given THEN excluded.topics ELSE subscribers.topics END,"
    " quiet = CASE WHEN :quiet_given THEN excluded.quiet ELSE subscribers.quiet END,"
    " digest_at = CASE WHEN :digest_at_given THEN excluded.digest_at"
    " ELSE subscribers.digest_at END,"
    " tz = CASE WHEN :tz_given THEN excluded.tz ELSE subscribers.tz END"
    " WHERE subscribers.status IN ('active', 'pending')"
)


def import_params(row: ImportRow, now: str) -> dict[str, object]:
    """One import row as the named parameters of `_IMPORT_UPSERT` ("" clears: NULL)."""
    row = ImportRow(*row)  # a plain (channel, address, breaking, daily) tuple too
    return {
        "channel": row.channel.value,
        "address": row.address,
        "breaking": int(row.breaking),
        "daily": int(row.daily),
        "now": now,
        "topics": topics_text(row.topics or ()),
        "topics_given": int(row.topics is not None),
        "quiet": row.quiet or None,
        "quiet_given": int(row.quiet is not None),
        "digest_at": row.digest_at or None,
        "digest_at_given": int(row.digest_at is not None),
        "tz": row.tz or None,
        "tz_given": int(row.tz is not None),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _row(row: aiosqlite.Row) -> Subscriber:
    return Subscriber(
        id=int(row[0]),
        channel=Channel(row[1]),
        address=str(row[2]),
        breaking=bool(row[3]),
        daily=bool(row[4]),
        every_post=bool(row[5]),
        status=Status(row[6]),
        created_at=datetime.fromisoformat(row[7]) if row[7] else None,
        topics=topics_of(row[8]),
        quiet=row[9] or None,
        digest_at=row[10] or None,
        tz=row[11] or None,
    )


class Subscribers(MailReports):
    """The `subscribers` table. Scans stream rows; nothing loads the whole table."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)

    async def get(self, channel: Channel, address: str) -> Subscriber | None:
        async with self._conn.execute(
            f"SELECT {_COLUMNS} FROM subscribers WHERE channel = ? AND address = ?",
            (channel.value, address),
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        async with self._conn.execute(
            f"SELECT {_COLUMNS} FROM subscribers WHERE id = ?", (subscriber_id,)
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def _get_required(self, channel: Channel, address: str) -> Subscriber:
        found = await self.get(channel, address)
        if found is None:  # only after a concurrent delete; the caller's row is gone
            raise LookupError(f"subscriber {channel.value}:{address} vanished")
        return found

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
        confirmed = now if status is Status.ACTIVE else None
        await self._conn.execute(
            "INSERT INTO subscribers(channel, address, breaking, daily, every_post, status,"
            " created_at, updated_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(channel, address) DO UPDATE SET breaking = excluded.breaking,"
            " daily = excluded.daily, every_post = excluded.every_post,"
            " status = excluded.status, updated_at = excluded.updated_at,"
            " confirmed_at = COALESCE(subscribers.confirmed_at, excluded.confirmed_at),"
            " left_at = NULL, hard_bounces = 0, soft_bounces = 0",
            (
                channel.value,
                address,
                int(breaking),
                int(daily),
                int(every_post),
                status.value,
                now,
                now,
                confirmed,
            ),
        )
        return await self._get_required(channel, address)

    async def request_email(self, address: str, *, breaking: bool, daily: bool) -> Subscriber:
        """Start double opt-in for `address`: a pending subscriber, or the known one as it is.

        An active subscriber is left untouched (a stranger must not change its preferences);
        one that left (unsubscribed, bounced) or is still pending becomes pending again with
        the preferences asked for, so the confirmation link brings it back.
        """
        now = _now()
        await self._conn.execute(
            "INSERT INTO subscribers(channel, address, breaking, daily, status, created_at,"
            " updated_at) VALUES ('email', ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT(channel, address) DO UPDATE SET breaking = excluded.breaking,"
            " daily = excluded.daily, status = 'pending', updated_at = excluded.updated_at"
            " WHERE subscribers.status != 'active'",
            (address, int(breaking), int(daily), now, now),
        )
        return await self._get_required(Channel.EMAIL, address)

    async def confirm(self, subscriber_id: int) -> Subscriber | None:
        """Pending → active (confirmed now); an active one stays as it is; None if unknown."""
        now = _now()
        await self._conn.execute(
            "UPDATE subscribers SET status = 'active', confirmed_at = ?, updated_at = ?,"
            " left_at = NULL, hard_bounces = 0, soft_bounces = 0"
            " WHERE id = ? AND status = 'pending'",
            (now, now, subscriber_id),
        )
        return await self.get_by_id(subscriber_id)

    async def set_prefs(
        self, subscriber_id: int, *, breaking: bool, daily: bool, every_post: bool
    ) -> None:
        await self._conn.execute(
            "UPDATE subscribers SET breaking = ?, daily = ?, every_post = ?, updated_at = ? "
            "WHERE id = ?",
            (int(breaking), int(daily), int(every_post), _now(), subscriber_id),
        )

    async def set_status(self, subscriber_id: int, status: Status) -> None:
        now = _now()
        left = now if status in (Status.UNSUBSCRIBED, Status.BLOCKED, Status.BOUNCED) else None
        await self._conn.execute(
            "UPDATE subscribers SET status = ?, updated_at = ?, left_at = ?,"
            " confirmed_at = CASE WHEN ? = 'active' THEN COALESCE(confirmed_at, ?)"
            " ELSE confirmed_at END WHERE id = ?",
            (status.value, now, left, status.value, now, subscriber_id),
        )

    async def _set(self, subscriber_id: int, column: str, value: str | None) -> None:
        await self._conn.execute(
            f"UPDATE subscribers SET {column} = ?, updated_at = ? WHERE id = ?",
            (value, _now(), subscriber_id),
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
        """A Telegram group became a supergroup: keep the subscriber, store its new chat id."""
        await self._conn.execute(
            "UPDATE OR REPLACE subscribers SET address = ?, updated_at = ? WHERE id = ?",
            (address, _now(), subscriber_id),
        )

    async def remove(self, channel: Channel, address: str) -> bool:
        """Delete a subscriber and everything known about it; False when there was none."""
        cur = await self._conn.execute(
            "DELETE FROM subscribers WHERE channel = ? AND address = ?", (channel.value, address)
        )
        return cur.rowcount > 0

    async def import_rows(self, rows: Iterable[ImportRow]) -> int:
        """Add or update many confirmed subscribers in one transaction; returns rows written.

        Known subscribers get the imported preferences; those who unsubscribed, blocked the
        bot or bounced are left out (an old list must not bring them back).
        """
        now = _now()
        params = [import_params(row, now) for row in rows]
        before = self._conn.total_changes
        async with transaction(self._conn):
            await self._conn.executemany(_IMPORT_UPSERT, params)
        return self._conn.total_changes - before

    async def add_hard_bounce(self, subscriber_id: int) -> int:
        """Count one permanent failure; returns the count so far."""
        await self._conn.execute(
            "UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = ?",
            (subscriber_id,),
        )
        async with self._conn.execute(
            "SELECT hard_bounces FROM subscribers WHERE id = ?", (subscriber_id,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

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
            where.append("channel = ?")
            args.append(channel.value)
        for column, wanted in (
            ("breaking", breaking),
            ("daily", daily),
            ("every_post", every_post),
        ):
            if wanted is not None:
                where.append(f"{column} = ?")
                args.append(int(wanted))
        sql = (
            f"SELECT {_COLUMNS} FROM subscribers WHERE {' AND '.join(where)}"
            " AND id > ? ORDER BY id LIMIT ?"
        )
        async for sub in self._pages(sql, args):
            yield sub

    async def all(
        self, channel: Channel | None = None, status: Status | None = None
    ) -> AsyncIterator[Subscriber]:
        """Every subscriber (optionally of one channel and status), streamed in id order."""
        where: list[str] = []
        args: list[object] = []
        if channel is not None:
            where.append("channel = ?")
            args.append(channel.value)
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        sql = f"SELECT {_COLUMNS} FROM subscribers WHERE {' AND '.join(where) or '1'}"
        async for sub in self._pages(sql + " AND id > ? ORDER BY id LIMIT ?", args):
            yield sub

    async def _pages(self, sql: str, args: list[object]) -> AsyncIterator[Subscriber]:
        """`sql` (ending `id > ? ORDER BY id LIMIT ?`) read in keyset pages.

        Each page is its own short statement: the caller (a fan-out) writes between pages,
        and a read left open across those writes would see rows change under it and hold an
        old snapshot, making them fail with "database is locked" once another process wrote.
        """
        after = -1
        while True:
            async with self._conn.execute(sql, [*args, after, STREAM_CHUNK]) as cur:
                rows = list(await cur.fetchall())
            for row in rows:
                yield _row(row)
            if len(rows) < STREAM_CHUNK:
                return
            after = int(rows[-1][0])

    async def counts(self) -> dict[tuple[str, str], int]:
        """(channel, status) → number of subscribers."""
        async with self._conn.execute(
            "SELECT channel, status, COUNT(*) FROM subscribers GROUP BY channel, status"
        ) as cur:
            return {(str(r[0]), str(r[1])): int(r[2]) for r in await cur.fetchall()}

    async def preference_counts(self) -> dict[Channel, PreferenceCounts]:
        """Per channel: active subscribers and how many of them want each kind of message."""
        result = {channel: PreferenceCounts() for channel in Channel}
        async with self._conn.execute(
            "SELECT channel, COUNT(*), SUM(breaking), SUM(daily), SUM(every_post)"
            " FROM subscribers WHERE status = 'active' GROUP BY channel"
        ) as cur:
            for r in await cur.fetchall():
                result[Channel(r[0])] = PreferenceCounts(
                    active=int(r[1]),
                    breaking=int(r[2] or 0),
                    daily=int(r[3] or 0),
                    every_post=int(r[4] or 0),
                )
        return result

    async def digest_slots(self) -> list[DigestSlot]:
        """The distinct (digest_at, tz) of active subscribers with the digest on."""
        async with self._conn.execute(
            "SELECT DISTINCT digest_at, tz FROM subscribers WHERE status = 'active' AND daily"
            " ORDER BY digest_at, tz"
        ) as cur:
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def digest_groups(self, slot: DigestSlot, day: str | None) -> list[DigestGroup]:
        """Active digest readers of `slot` not done for local `day`, grouped by (topics,
        since); a NULL part of the slot matches NULL (`IS`)."""
        async with self._conn.execute(
            "SELECT topics, digest_until, COUNT(*) FROM subscribers"
            f" WHERE {DUE_SQL} GROUP BY topics, digest_until ORDER BY topics, digest_until",
            (*slot, BY_HAND_DAY if day is None else day),
        ) as cur:
            rows = list(await cur.fetchall())
        return [
            DigestGroup(
                topics=topics_of(r[0]),
                since=datetime.fromisoformat(r[1]) if r[1] else None,
                readers=int(r[2]),
            )
            for r in rows
        ]

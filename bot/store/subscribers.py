"""Subscribers of both channels, their preferences and their status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiosqlite

from bot.models import Channel, Status, Subscriber

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
]

_COLUMNS = "id, channel, address, breaking, daily, every_post, status, created_at"


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
    )


class Subscribers:
    """The `subscribers` table. Scans stream rows; nothing loads the whole table."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

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
            " hard_bounces = 0",
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
        found = await self.get(channel, address)
        assert found is not None
        return found

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

    async def change_address(self, subscriber_id: int, address: str) -> None:
        """A Telegram group became a supergroup: keep the subscriber, store its new chat id."""
        await self._conn.execute(
            "UPDATE OR REPLACE subscribers SET address = ?, updated_at = ? WHERE id = ?",
            (address, _now(), subscriber_id),
        )

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
        sql = f"SELECT {_COLUMNS} FROM subscribers WHERE {' AND '.join(where)} ORDER BY id"
        async with self._conn.execute(sql, args) as cur:
            async for row in cur:
                yield _row(row)

    async def all(self, channel: Channel | None = None) -> AsyncIterator[Subscriber]:
        """Every subscriber whatever its status, streamed in id order."""
        sql = f"SELECT {_COLUMNS} FROM subscribers"
        args: tuple[object, ...] = ()
        if channel is not None:
            sql += " WHERE channel = ?"
            args = (channel.value,)
        async with self._conn.execute(sql + " ORDER BY id", args) as cur:
            async for row in cur:
                yield _row(row)

    async def counts(self) -> dict[tuple[str, str], int]:
        """(channel, status) → number of subscribers."""
        async with self._conn.execute(
            "SELECT channel, status, COUNT(*) FROM subscribers GROUP BY channel, status"
        ) as cur:
            return {(str(r[0]), str(r[1])): int(r[2]) for r in await cur.fetchall()}

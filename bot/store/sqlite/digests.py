"""Digests sent so far: one row per digest day, so a scheduled digest never goes out twice."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.store.sqlite.db import iso

MIGRATIONS = [
    # IF NOT EXISTS: databases made before this area existed got the table from the outbox.
    """
    CREATE TABLE IF NOT EXISTS digests (
        day TEXT PRIMARY KEY,
        since TEXT NOT NULL,
        until TEXT NOT NULL,
        posts INTEGER NOT NULL,
        job_id INTEGER,
        created_at TEXT NOT NULL
    )
    """,
]


class Digests:
    """The `digests` table."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def done(self, name: str) -> bool:
        """Whether the digest `name` (a day, `2026-01-15`) was already sent or found empty."""
        async with self._conn.execute("SELECT 1 FROM digests WHERE day = ?", (name,)) as cur:
            return await cur.fetchone() is not None

    async def record(
        self,
        name: str,
        *,
        since: datetime,
        until: datetime,
        posts: int,
        job_id: int | None,
        now: datetime,
    ) -> bool:
        """Remember that digest `name` went out (or was empty); False if it already had."""
        cur = await self._conn.execute(
            "INSERT INTO digests(day, since, until, posts, job_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(day) DO NOTHING",
            (name, iso(since), iso(until), posts, job_id, iso(now)),
        )
        return cur.rowcount > 0

    async def last_until(self) -> datetime | None:
        """Where the previous digest's window ended: the next one starts there."""
        async with self._conn.execute("SELECT MAX(until) FROM digests") as cur:
            row = await cur.fetchone()
        return None if row is None or row[0] is None else datetime.fromisoformat(str(row[0]))

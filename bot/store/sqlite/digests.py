"""Digests sent so far: one row per digest day, so a scheduled digest never goes out twice.

The `digests` table is created by the outbox area's first migration (it shipped there).
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiosqlite


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


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
            (name, _iso(since), _iso(until), posts, job_id, _iso(now)),
        )
        return cur.rowcount > 0

    async def last_until(self) -> datetime | None:
        """Where the previous digest's window ended: the next one starts there."""
        async with self._conn.execute("SELECT MAX(until) FROM digests") as cur:
            row = await cur.fetchone()
        return None if row is None or row[0] is None else datetime.fromisoformat(str(row[0]))

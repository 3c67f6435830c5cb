"""Digests sent so far: one row per digest day, so a scheduled digest never goes out twice."""

from __future__ import annotations

from datetime import datetime

from bot.store.postgres.db import Pool, affected

MIGRATIONS = [
    """
    CREATE TABLE digests (
        day TEXT PRIMARY KEY,
        since TIMESTAMPTZ NOT NULL,
        until TIMESTAMPTZ NOT NULL,
        posts INTEGER NOT NULL,
        job_id BIGINT,
        created_at TIMESTAMPTZ NOT NULL
    )
    """,
]


class Digests:
    """The `digests` table."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def done(self, name: str) -> bool:
        """Whether the digest `name` (a day, `2026-01-15`) was already sent or found empty."""
        return bool(
            await self._pool.fetchval("SELECT EXISTS(SELECT 1 FROM digests WHERE day = $1)", name)
        )

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
        status = await self._pool.execute(
            "INSERT INTO digests(day, since, until, posts, job_id, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (day) DO NOTHING",
            name,
            since,
            until,
            posts,
            job_id,
            now,
        )
        return affected(status) > 0

    async def last_until(self) -> datetime | None:
        """Where the previous digest's window ended: the next one starts there."""
        found: datetime | None = await self._pool.fetchval("SELECT MAX(until) FROM digests")
        return found

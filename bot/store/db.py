"""The SQLite connection and schema migrations, kept per area (posts, subscribers, ...)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

# One list of steps per area; a step is one SQL script. Append, never edit a shipped step.
Migrations = Sequence[str]

# Coroutines share one connection: a transaction open across an `await` must not meet
# another one's BEGIN, so transactions take turns.
_LOCKS: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error), one transaction at a time per connection."""
    lock = _LOCKS.setdefault(conn, asyncio.Lock())
    async with lock:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


async def connect(path: Path) -> aiosqlite.Connection:
    """Open the database in WAL mode, creating its folder."""
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=5000")
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version"
        " (area TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    return conn


async def migrate(conn: aiosqlite.Connection, area: str, steps: Migrations) -> None:
    """Apply the steps of `area` the database has not seen yet, each in a transaction."""
    async with conn.execute("SELECT version FROM schema_version WHERE area = ?", (area,)) as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    for version, script in enumerate(steps[current:], start=current + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version(area, version) VALUES (?, ?) "
                "ON CONFLICT(area) DO UPDATE SET version = excluded.version",
                (area, version),
            )
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        log.info("database: %s schema at version %d", area, version)

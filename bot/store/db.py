"""The SQLite connection and schema migrations, kept per area (posts, subscribers, ...)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
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
        try:
            await conn.execute("BEGIN IMMEDIATE")
            yield
            await conn.execute("COMMIT")
        except BaseException:
            await _rollback(conn)
            raise


async def _rollback(conn: aiosqlite.Connection) -> None:
    # aiosqlite runs a statement on its thread even when the awaiting task is cancelled, so
    # a BEGIN (or a failed COMMIT) can leave a transaction open that nobody would ever end;
    # statements run in order, so this ROLLBACK comes after it. None open: nothing to undo.
    with suppress(sqlite3.OperationalError):
        await conn.execute("ROLLBACK")


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
        async with transaction(conn):
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version(area, version) VALUES (?, ?) "
                "ON CONFLICT(area) DO UPDATE SET version = excluded.version",
                (area, version),
            )
        log.info("database: %s schema at version %d", area, version)

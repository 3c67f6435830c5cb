"""The SQLite connection and schema migrations, kept per area (posts, subscribers, ...)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

# One list of steps per area; a step is one SQL script. Append, never edit a shipped step.
Migrations = Sequence[str]


class SerialConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements take turns with open transactions.

    Coroutines share one connection, and SQLite has one transaction per connection: a
    statement from another coroutine sent while a transaction is open would run inside
    it (and be lost if it rolls back), and a second BEGIN would fail. So while one task
    holds a transaction, every other task's statements wait until it ends.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self.turn = asyncio.Lock()
        self.owner: asyncio.Task[Any] | None = None

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.owner is not None and self.owner is asyncio.current_task():
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        async with self.turn:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error); other tasks' statements wait meanwhile."""
    if not isinstance(conn, SerialConnection):
        raise TypeError("transactions need a connection from bot.store.db.connect()")
    async with conn.turn:
        conn.owner = asyncio.current_task()
        try:
            await conn.execute("BEGIN IMMEDIATE")
            yield
            await conn.execute("COMMIT")
        except BaseException:
            await _rollback(conn)
            raise
        finally:
            conn.owner = None


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
    conn = await SerialConnection(
        partial(sqlite3.connect, str(path), isolation_level=None), iter_chunk_size=64
    )
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

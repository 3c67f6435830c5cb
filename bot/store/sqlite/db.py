"""The SQLite connection and schema migrations, kept per area (posts, subscribers, ...)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from aiosqlite.context import contextmanager as aiosqlite_contextmanager

log = logging.getLogger(__name__)

# One list of steps per area; a step is one SQL script. Append, never edit a shipped step.
Migrations = Sequence[str]


def iso(when: datetime) -> str:
    """A time as stored: ISO 8601 in UTC."""
    return when.astimezone(UTC).isoformat()


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

    @aiosqlite_contextmanager
    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> aiosqlite.Cursor:
        """Run `sql` and read all its rows in one turn: no other task's statement can change
        the tables between the first row and the last (SQLite gives garbage rows then)."""
        found = await self._execute(_run_buffered, self._conn, sql, list(parameters or ()))
        return aiosqlite.Cursor(self, found)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.owner is not None and self.owner is asyncio.current_task():
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        async with self.turn:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]


class _BufferedCursor:
    """The part of `sqlite3.Cursor` aiosqlite uses, over rows already read."""

    def __init__(self, cursor: sqlite3.Cursor, rows: list[Any]) -> None:
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.description = cursor.description
        self.arraysize = cursor.arraysize
        self._rows = rows
        self._at = 0
        cursor.close()

    def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        start, self._at = self._at, min(len(self._rows), self._at + (size or self.arraysize))
        return self._rows[start : self._at]

    def fetchall(self) -> list[Any]:
        start, self._at = self._at, len(self._rows)
        return self._rows[start:]

    def close(self) -> None:
        self._rows = []


def _run_buffered(conn: sqlite3.Connection, sql: str, parameters: list[Any]) -> _BufferedCursor:
    cursor = conn.execute(sql, parameters)
    return _BufferedCursor(cursor, cursor.fetchall())


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error); other tasks' statements wait meanwhile."""
    if not isinstance(conn, SerialConnection):
        raise TypeError("transactions need a connection from bot.store.sqlite.db.connect()")
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


async def connect(path: Path, *, busy_timeout_ms: int = 5000) -> aiosqlite.Connection:
    """Open the database in WAL mode, creating its folder.

    A statement that finds the database locked by another connection waits up to
    `busy_timeout_ms` for it, then fails with SQLITE_BUSY (`is_busy`).
    """
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = await SerialConnection(
        partial(sqlite3.connect, str(path), isolation_level=None), iter_chunk_size=64
    )
    try:
        conn.row_factory = aiosqlite.Row
        # First: it covers the statements after it, journal_mode included.
        await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (area TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
    except BaseException:
        await conn.close()
        raise
    return conn


async def check_writable(conn: aiosqlite.Connection) -> None:
    """Write a row and roll it back: a read-only file or folder, or a write lock held by
    another program, shows now (as sqlite3.Error) rather than at the first real write."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute("INSERT OR REPLACE INTO schema_version(area, version) VALUES ('', 0)")
    finally:
        await _rollback(conn)


def is_busy(exc: sqlite3.Error) -> bool:
    """The database is locked by another connection (SQLITE_BUSY or SQLITE_LOCKED)."""
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


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

"""The SQLite backend: one file, one shared connection, WAL mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from bot.store.sqlite import db, digests, outbox, posts, subscribers


class SqliteStore:
    """Open SQLite database: `posts`, `subscribers`, `outbox` and `digests`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.posts = posts.PostLog(conn)
        self.subscribers = subscribers.Subscribers(conn)
        self.outbox = outbox.Outbox(conn)
        self.digests = digests.Digests(conn)


# Applied in this order: the outbox refers to subscribers.
AREAS: dict[str, db.Migrations] = {
    "posts": posts.MIGRATIONS,
    "subscribers": subscribers.MIGRATIONS,
    "outbox": outbox.MIGRATIONS,
    "digests": digests.MIGRATIONS,
}


@asynccontextmanager
async def open_sqlite(path: Path) -> AsyncIterator[SqliteStore]:
    """Connect, migrate every area, and close on exit."""
    conn = await db.connect(path)
    try:
        for area, steps in AREAS.items():
            await db.migrate(conn, area, steps)
        yield SqliteStore(conn)
    finally:
        await conn.close()

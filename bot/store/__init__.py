"""The database: the only package that speaks SQL. `Store` groups one object per area."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from bot.store import db
from bot.store import digests as digests_area
from bot.store import outbox as outbox_area
from bot.store import posts as posts_area
from bot.store import subscribers as subscribers_area


class Store:
    """Open database: `posts`, `subscribers`, `outbox` and `digests`, one object per area."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.posts = posts_area.PostLog(conn)
        self.subscribers = subscribers_area.Subscribers(conn)
        self.outbox = outbox_area.Outbox(conn)
        self.digests = digests_area.Digests(conn)


AREAS: dict[str, db.Migrations] = {
    "posts": posts_area.MIGRATIONS,
    "subscribers": subscribers_area.MIGRATIONS,
    "outbox": outbox_area.MIGRATIONS,
}


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[Store]:
    """Connect, migrate every area, and close on exit."""
    conn = await db.connect(path)
    try:
        for area, steps in AREAS.items():
            await db.migrate(conn, area, steps)
        yield Store(conn)
    finally:
        await conn.close()

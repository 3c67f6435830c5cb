"""The database: the only package that speaks SQL, behind the Protocols of `interface`.

Other packages import from here, never from a backend module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.store.interface import Digests, ImportRow, Outbox, PostLog, Store, Subscribers
from bot.store.report import gather_stats
from bot.store.sqlite import open_sqlite

__all__ = [
    "Digests",
    "ImportRow",
    "Outbox",
    "PostLog",
    "Store",
    "Subscribers",
    "gather_stats",
    "open_store",
]


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[Store]:
    """Open (and migrate) the database; closed on exit."""
    async with open_sqlite(path) as store:
        yield store

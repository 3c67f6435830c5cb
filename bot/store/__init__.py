"""The database: the only package that speaks SQL, behind the Protocols of `interface`.

Other packages import from here, never from a backend module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.store.interface import (
    Cluster,
    Digests,
    ImportRow,
    Outbox,
    PostLog,
    Store,
    StoreError,
    Subscribers,
)
from bot.store.report import gather_stats
from bot.store.sqlite import open_sqlite

__all__ = [
    "Cluster",
    "Digests",
    "ImportRow",
    "Outbox",
    "PostLog",
    "Store",
    "StoreError",
    "Subscribers",
    "gather_stats",
    "open_store",
]


@asynccontextmanager
async def open_store(path: Path, *, run: bool = False, fresh: bool = False) -> AsyncIterator[Store]:
    """Open (and migrate) the database, waiting while another program locks it; closed on exit.

    `run`: for `herald run`, which must be the only one on the database: a second is
    refused, and so is an empty database where a post log was kept, unless `fresh`.
    Raises StoreError, whose one line names the database and the fix.
    """
    async with open_sqlite(path, run=run, fresh=fresh) as store:
        yield store

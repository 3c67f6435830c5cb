"""The database: the only package that speaks SQL, behind the Protocols of `interface`.

Other packages import from here, never from a backend module.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.settings import Settings, secret_key
from bot.store.interface import (
    Digests,
    DigestSlot,
    ImportRow,
    Outbox,
    PostLog,
    Store,
    StoreError,
    Subscribers,
)
from bot.store.report import gather_stats
from bot.store.sqlite import open_sqlite
from bot.store.sqlite.backup import Backup, backup_sqlite

__all__ = [
    "Backup",
    "DigestSlot",
    "Digests",
    "ImportRow",
    "Outbox",
    "PostLog",
    "Store",
    "StoreError",
    "Subscribers",
    "backup_sqlite",
    "database_name",
    "gather_stats",
    "open_store",
    "same_database",
    "secret_for",
]

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")


@asynccontextmanager
async def open_store(
    url: str | os.PathLike[str], *, run: bool = False, fresh: bool = False
) -> AsyncIterator[Store]:
    """Open (and migrate) the database HERALD_DATABASE_URL names; closed on exit.

    `url`: `sqlite:///relative/path`, `sqlite:////absolute/path` (a Path is a SQLite file
    too), or `postgresql://user:password@host:5432/database`.

    `run`: for `herald run`. On SQLite it must be the only one on the database: a second is
    refused, and so is an empty database where a post log was kept, unless `fresh`; a
    database another program locks is waited for. On PostgreSQL several may share it.
    Raises StoreError, whose one line names the database and the fix.
    """
    path = _path(url)
    if path is None and not str(url).startswith(POSTGRES):
        text = str(url)
        shown = f"{text.partition('://')[0]}://" if "://" in text else repr(text)  # no password
        raise StoreError(
            f"{shown} is not a database Herald can open: set"
            " HERALD_DATABASE_URL to sqlite:///path/to/herald.db or"
            " postgresql://user:password@host:5432/database"
        )
    if path is not None:
        async with open_sqlite(path, run=run, fresh=fresh) as store:
            yield store
        return
    from bot.store.postgres import open_postgres  # asyncpg only where PostgreSQL is used

    assert isinstance(url, str)
    async with open_postgres(url, run=run) as pg:
        yield pg


def _path(url: str | os.PathLike[str]) -> Path | None:
    """The SQLite file `url` names, or None for a PostgreSQL URL."""
    if isinstance(url, os.PathLike):
        return Path(url)
    if url.startswith(SQLITE):
        return Path(url.removeprefix(SQLITE))
    return None


def database_name(url: str | os.PathLike[str]) -> str:
    """The database for messages: a SQLite file's absolute path, or PostgreSQL's
    host:port/database (never a password)."""
    path = _path(url)
    if path is not None:
        return str(path.absolute())
    from bot.store.postgres.db import server_of

    return server_of(str(url))


def same_database(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two URLs name one database (one file, or one server's database)."""
    first, second = _path(a), _path(b)
    if first is not None and second is not None:
        return first.resolve() == second.resolve()
    return first is None and second is None and database_name(a) == database_name(b)


async def secret_for(settings: Settings, store: Store) -> str:
    """The key tokens are signed with: HERALD_SECRET_KEY if set, else the one the database
    keeps for every process (PostgreSQL), else the one in the data folder."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    shared = await store.shared_secret()
    return shared if shared is not None else secret_key(settings)

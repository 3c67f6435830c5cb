"""The SQLite backend: one file, one shared connection, WAL mode."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import aiosqlite

from bot.store.interface import StoreError
from bot.store.sqlite import cluster, db, digests, outbox, posts, subscribers
from bot.store.sqlite.files import FileIdentity, PostLogMarker, RunLock, unwritable
from bot.store.sqlite.transfer import SqliteTransfer

log = logging.getLogger(__name__)

HEALTH_CHECK_S = 2.0  # how often the file at the path is compared with the one opened
OPEN_BUSY_MS = 1000  # while opening, a lock held elsewhere is noticed (and said) this soon
BUSY_MS = 5000  # afterwards, how long a statement waits for another connection's write
RETRY_MAX_S = 5.0


class SqliteStore:
    """Open SQLite database: `posts`, `subscribers`, `outbox`, `digests` and `cluster`."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path | None = None,
        lock: RunLock | None = None,
    ) -> None:
        self.conn = conn
        self.marker = PostLogMarker(path) if path is not None else None
        self.posts = posts.PostLog(conn, self.marker)
        self.subscribers = subscribers.Subscribers(conn)
        self.outbox = outbox.Outbox(conn)
        self.digests = digests.Digests(conn)
        self.transfer = SqliteTransfer(conn)  # herald migrate --copy-from
        self.cluster = cluster.SqliteCluster(path, holds_run_lock=lock is not None)
        self._identity = FileIdentity(path) if path is not None else None
        self._lock = lock

    def health(self) -> str | None:
        """None while the file at the path is the database opened (and its lock held)."""
        for part in (self._identity, self._lock):
            if part is not None and (problem := part.problem()) is not None:
                return problem
        return None

    async def shared_secret(self, adopt: str | None = None) -> str | None:
        """None: on SQLite the secret key stays in its file in the data folder."""
        return None

    async def watch(self, every_s: float) -> None:
        """Check `health` every `every_s`; log each new problem loudly, once."""
        said: str | None = None
        while True:
            await asyncio.sleep(every_s)
            problem = self.health()
            if problem is not None and problem != said:
                log.error("database: %s", problem)
            said = problem


# Applied in this order: the outbox refers to subscribers.
AREAS: dict[str, db.Migrations] = {
    "posts": posts.MIGRATIONS,
    "subscribers": subscribers.MIGRATIONS,
    "outbox": outbox.MIGRATIONS,
    "digests": digests.MIGRATIONS,
}


@asynccontextmanager
async def open_sqlite(
    path: Path, *, run: bool = False, fresh: bool = False
) -> AsyncIterator[SqliteStore]:
    """Connect, migrate every area, and close on exit; StoreError says why it cannot.

    A database locked by another program is waited for. With `run` (the one `herald run`)
    the database's run lock is held until exit, and an empty database where a post log
    was kept before is refused unless `fresh` says to start afresh on purpose.
    """
    on_disk = str(path) != ":memory:"
    lock = RunLock(path) if run and on_disk else None
    if lock is not None:
        lock.acquire()  # first: a second run is refused before it touches anything
    try:
        conn = await _open(path)
        try:
            store = SqliteStore(conn, path if on_disk else None, lock)
            if run:
                await _check_post_log(store, fresh=fresh)
            watch = asyncio.create_task(store.watch(HEALTH_CHECK_S)) if on_disk else None
            try:
                yield store
            finally:
                if watch is not None:
                    watch.cancel()
                    with suppress(asyncio.CancelledError):
                        await watch
        finally:
            await conn.close()
    finally:
        if lock is not None:
            lock.release()


async def _open(path: Path) -> aiosqlite.Connection:
    """Connect, check that writes work and migrate; wait while another program locks it."""
    waiting_since: float | None = None
    attempt = 0
    while True:
        try:
            conn = await _connect_and_migrate(path)
        except sqlite3.Error as exc:
            if not db.is_busy(exc):
                raise StoreError(_explain(path, exc)) from exc
        except OSError as exc:  # e.g. its folder cannot be created
            raise StoreError(_explain(path, exc)) from exc
        else:
            if waiting_since is not None:
                log.info(
                    "database %s is free again after %.0f s",
                    _shown(path),
                    time.monotonic() - waiting_since,
                )
            return conn
        if waiting_since is None:
            waiting_since = time.monotonic()
            log.warning(
                "database %s is locked by another program (a write lock held open);"
                " waiting until it lets go",
                _shown(path),
            )
        await asyncio.sleep(min(RETRY_MAX_S, 0.25 * 2**attempt))
        attempt += 1


async def _connect_and_migrate(path: Path) -> aiosqlite.Connection:
    conn = await db.connect(path, busy_timeout_ms=OPEN_BUSY_MS)
    try:
        await db.check_writable(conn)
        for area, steps in AREAS.items():
            await db.migrate(conn, area, steps)
        await conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    except BaseException:
        await conn.close()
        raise
    return conn


def _shown(path: Path) -> Path:
    return path.absolute()


def _explain(path: Path, exc: sqlite3.Error | OSError) -> str:
    """One sentence naming the database and what to do about `exc`."""
    name = getattr(exc, "sqlite_errorname", "")
    if (reason := unwritable(path)) is not None:
        return reason
    if name.startswith("SQLITE_READONLY"):
        return (
            f"the database {path.absolute()} is read-only ({exc}): make it and its folder"
            " writable by the user running herald"
        )
    if name.startswith("SQLITE_NOTADB"):
        return f"{path.absolute()} is not a SQLite database: point HERALD_DATABASE_URL at one"
    return f"cannot open the database {path.absolute()}: {exc}"


async def _check_post_log(store: SqliteStore, *, fresh: bool) -> None:
    """Refuse a silent new baseline where a post log was kept before and is now gone."""
    marker = store.marker
    if marker is None:
        return
    if await store.posts.kept():
        marker.write()  # a database from before markers, or one moved here
        return
    if not marker.exists():
        return  # a new install: the first baseline leaves the marker
    if fresh:
        log.warning(
            "database %s is new and --fresh starts afresh on purpose: the site's posts"
            " become a new silent baseline",
            marker.db,
        )
        marker.forget()
        return
    raise StoreError(
        f"the database {marker.db} holds no post log, but {marker.path} says one was kept"
        f" here since {marker.since()}: the database was deleted or replaced, and starting"
        " afresh would lose every subscriber and record the site's posts as a silent new"
        " baseline; restore the database from a backup, or start afresh on purpose with"
        " `herald run --fresh`"
    )
